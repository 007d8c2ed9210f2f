"""The controller's view of the fleet in a terminal: a live table of devices with a plot of each one's readings.

    screen = MonitorScreen(observer)        # an Observer of host_tools.fleet
    curses.wrapper(screen.run)              # until q or Ctrl-C (or ``duration`` seconds)

Rows: device, presence, last reading, its age, reports received, reconnections (the device's own count,
carried by its status summaries), and a sparkline of the first reading over the last reports. The line at the
bottom takes commands: ``<device> <command>``, the device by its number in the table or the start of its
name (``1 read``, ``sensor-3 set relay on``); replies appear under the table. Rows sort naturally (sensor-2
before sensor-10); a device keeps its number for the whole session (DeviceNumbers), so ``1 read`` always
reaches the same board; a name that is some device's whole name (``sensor-1``) means that device even when
others start with it (``sensor-10``). Without a terminal
(``--plain``, or stdout not a TTY) the same table is printed every few seconds instead.
"""

import re
import time

SPARKS = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"  # eight heights of block
PLOT_POINTS = 24  # readings in a row's plot
REPLY_LINES = 6  # command replies kept under the table
REFRESH_S = 0.5
PLAIN_EVERY_S = 5.0

COLUMNS = (("#", 3), ("device", 28), ("presence", 9), ("last reading", 36), ("age", 6), ("reports", 8),
           ("reconn", 7), ("plot", PLOT_POINTS))


def sparkline(values, width=PLOT_POINTS):
    """The last ``width`` values as block characters scaled between their min and max."""
    values = list(values)[-width:]
    if not values:
        return ""
    low, high = min(values), max(values)
    span = high - low
    if span == 0:
        return SPARKS[len(SPARKS) // 2 - 1] * len(values)
    return "".join(SPARKS[min(int((value - low) / span * len(SPARKS)), len(SPARKS) - 1)] for value in values)


def age_text(seconds):
    if seconds is None:
        return "-"
    if seconds < 60:
        return "%ds" % seconds
    if seconds < 3600:
        return "%dm" % (seconds // 60)
    return "%dh" % (seconds // 3600)


def fit(text, width):
    text = str(text)
    return text[:width - 1] + "\u2026" if len(text) > width else text.ljust(width)


def natural_key(name):
    """Sort key that orders the numbers in names by value: sensor-2 before sensor-10."""
    return [int(part) if index % 2 else part for index, part in enumerate(re.split(r"(\d+)", name))]


class DeviceNumbers:
    """The number of each device in the table, kept for the whole session.

    The devices known when the table is first drawn are numbered in natural order; a device that
    appears later gets the next free number, so the numbers of the others never change.
    """

    def __init__(self):
        self._numbers = {}

    def update(self, jids):
        for jid in sorted((jid for jid in jids if jid not in self._numbers), key=natural_key):
            self._numbers[jid] = len(self._numbers) + 1
        return self

    def number(self, jid):
        return self._numbers.get(jid)

    def device(self, number):
        for jid, assigned in self._numbers.items():
            if assigned == number:
                return jid
        return None


def table_lines(view, now=None, numbers=None):
    """The table for an Observer.view(): a header line, then one line per device, in natural order of names.

    ``numbers`` (DeviceNumbers) keeps the numbers across calls; without it they follow the order.
    """
    now = time.time() if now is None else now
    numbers = (numbers or DeviceNumbers()).update(view)
    lines = [" ".join(fit(title, width) for title, width in COLUMNS).rstrip()]
    for jid in sorted(view, key=natural_key):
        number = numbers.number(jid)
        entry = view[jid]
        last = entry["last_report"]
        presence = {True: "online", False: "offline"}.get(entry["available"], "-")
        cells = (number, jid, presence, entry["reading"] or entry["status"],
                 age_text(None if last is None else int(now - last)), entry["reports"], entry["reconnects"],
                 sparkline(entry["history"]))
        lines.append(" ".join(fit(cell, width) for cell, (_, width) in zip(cells, COLUMNS)).rstrip())
    return lines


MAX_LISTED = 4  # devices named in an "ambiguous" note


def resolve_device(view, word, numbers=None):
    """(jid, None) for the device a command names, or (None, why not).

    In order: its number in the table; its whole bare JID or whole local part (an exact name wins
    over longer names that start with it); the start of exactly one device's JID.
    """
    numbers = (numbers or DeviceNumbers()).update(view)
    if word.isdigit():
        jid = numbers.device(int(word))
        if jid is not None and jid in view:
            return jid, None
    for jid in view:
        if word == jid or word == jid.split("@", 1)[0]:
            return jid, None
    matches = sorted((jid for jid in view if jid.startswith(word)), key=natural_key)
    if len(matches) == 1:
        return matches[0], None
    if not matches:
        return None, "no single device matches %r" % word
    listed = ", ".join("%s (%d)" % (jid, numbers.number(jid)) for jid in matches[:MAX_LISTED])
    more = " and %d more" % (len(matches) - MAX_LISTED) if len(matches) > MAX_LISTED else ""
    return None, "%r matches %d devices: %s%s; type more of the name, or the number" % (
        word, len(matches), listed, more)


def parse_command(view, line, numbers=None):
    """(jid, command text) or (None, why not) for a line typed at the prompt."""
    words = line.strip().split(None, 1)
    if len(words) < 2:
        return None, "type: <device number or name> <command>, e.g. 1 read"
    jid, why_not = resolve_device(view, words[0], numbers)
    if jid is None:
        return None, why_not
    return jid, words[1]


class MonitorScreen:
    """The curses screen over an Observer; ``send(jid, text)`` defaults to observer.command."""

    def __init__(self, observer, title="xmpp-lite monitor", duration=0):
        self.observer = observer
        self.title = title
        self.duration = duration
        self.typed = ""
        self.notes = []
        self.numbers = DeviceNumbers()
        self.closes_at = None  # time.time() when a screen with a duration closes, shown in its header

    def _note(self, text):
        self.notes.append(text)
        del self.notes[:-REPLY_LINES]

    def _replies(self, since):
        for when, sender, body in list(self.observer.replies):
            if when > since:
                self._note("%s: %s" % ((sender or "?").split("/")[0], body))

    def run(self, window):
        import curses

        curses.curs_set(1)
        window.nodelay(True)
        window.timeout(int(REFRESH_S * 1000))
        started = time.time()
        seen_replies = started
        self.closes_at = started + self.duration if self.duration > 0 else None
        while self.duration <= 0 or time.time() - started < self.duration:
            view = self.observer.view()
            now = time.time()
            self._replies(seen_replies)
            seen_replies = now
            self._draw(window, view, now)
            key = window.getch()
            if key == -1:
                continue
            if key in (ord("q"),) and not self.typed:
                break
            if key in (curses.KEY_BACKSPACE, 127, 8):
                self.typed = self.typed[:-1]
            elif key in (curses.KEY_ENTER, 10, 13):
                self._submit(view)
            elif 32 <= key < 127:
                self.typed += chr(key)

    def _submit(self, view):
        jid, text = parse_command(view, self.typed, self.numbers)
        if jid is None:
            self._note(text)
        else:
            self.observer.command(jid, text)  # to the bare JID: the server hands it to the device
            self._note("-> %s: %s" % (jid, text))
        self.typed = ""

    def _draw(self, window, view, now):
        height, width = window.getmaxyx()
        window.erase()
        online = sum(1 for entry in view.values() if entry["available"])
        header = "%s - %s - %d devices, %d online - %d reports" % (self.title, self.observer.jid, len(view), online,
                                                                 self.observer.messages)
        if self.closes_at is not None:
            header += " - closes in %ds" % max(self.closes_at - now + 0.5, 0)
        rows = [header, ""] + table_lines(view, now, self.numbers) + [""] + self.notes
        if self.observer.error is not None:
            rows.append("controller connection lost: %s" % self.observer.error)
        for y, text in enumerate(rows[:max(height - 2, 0)]):
            _put(window, y, text, width)
        _put(window, height - 1, "> " + self.typed + "    (<device> <command>, q to quit)", width)
        window.move(height - 1, min(2 + len(self.typed), width - 1))
        window.refresh()


def _put(window, y, text, width):
    try:
        window.addstr(y, 0, text[:max(width - 1, 0)])
    except Exception:  # noqa: BLE001 - curses refuses the bottom-right cell; the rest is drawn
        pass


def run_plain(observer, duration=0, out=None, every=PLAIN_EVERY_S):
    """Print the table every ``every`` seconds (no terminal needed) until ``duration`` s or Ctrl-C."""
    import sys

    out = out or sys.stdout
    numbers = DeviceNumbers()
    started = time.time()
    try:
        while duration <= 0 or time.time() - started < duration:
            view = observer.view()
            out.write("\n".join(["-- %s, %d reports" % (time.strftime("%H:%M:%S"), observer.messages)]
                                + table_lines(view, numbers=numbers)) + "\n")
            out.flush()
            left = every if duration <= 0 else min(every, duration - (time.time() - started))
            time.sleep(max(left, 0))
    except KeyboardInterrupt:
        pass
