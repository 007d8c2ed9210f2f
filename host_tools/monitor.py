"""The controller's view of the fleet in a terminal: a live table of devices with a plot of each one's readings.

    screen = MonitorScreen(observer)        # an Observer of host_tools.fleet
    curses.wrapper(screen.run)              # until q or Ctrl-C (or ``duration`` seconds)

Rows: device, presence, last reading, its age, reports received, reconnections (the device's own count,
carried by its status summaries), and a sparkline of the first reading over the last reports. The line at the
bottom takes commands: ``<device> <command>``, the device by its number in the table or the start of its
name (``1 read``, ``sensor-3 set relay on``); replies appear under the table. Without a terminal
(``--plain``, or stdout not a TTY) the same table is printed every few seconds instead.
"""

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


def table_lines(view, now=None):
    """The table for an Observer.view(): a header line, then one line per device, sorted by name."""
    now = time.time() if now is None else now
    lines = [" ".join(fit(title, width) for title, width in COLUMNS).rstrip()]
    for number, jid in enumerate(sorted(view), 1):
        entry = view[jid]
        last = entry["last_report"]
        presence = {True: "online", False: "offline"}.get(entry["available"], "-")
        cells = (number, jid, presence, entry["reading"] or entry["status"],
                 age_text(None if last is None else int(now - last)), entry["reports"], entry["reconnects"],
                 sparkline(entry["history"]))
        lines.append(" ".join(fit(cell, width) for cell, (_, width) in zip(cells, COLUMNS)).rstrip())
    return lines


def resolve_device(view, word):
    """The device JID a command line names: its number in the table, its full bare JID or a unique prefix."""
    names = sorted(view)
    if word.isdigit() and 1 <= int(word) <= len(names):
        return names[int(word) - 1]
    if word in view:
        return word
    matches = [jid for jid in names if jid.startswith(word)]
    if len(matches) == 1:
        return matches[0]
    return None


def parse_command(view, line):
    """(jid, command text) or (None, why not) for a line typed at the prompt."""
    words = line.strip().split(None, 1)
    if len(words) < 2:
        return None, "type: <device number or name> <command>, e.g. 1 read"
    jid = resolve_device(view, words[0])
    if jid is None:
        return None, "no single device matches %r" % words[0]
    return jid, words[1]


class MonitorScreen:
    """The curses screen over an Observer; ``send(jid, text)`` defaults to observer.command."""

    def __init__(self, observer, title="xmpp-lite monitor", duration=0):
        self.observer = observer
        self.title = title
        self.duration = duration
        self.typed = ""
        self.notes = []

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
        jid, text = parse_command(view, self.typed)
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
        rows = [header, ""] + table_lines(view, now) + [""] + self.notes
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
    started = time.time()
    try:
        while duration <= 0 or time.time() - started < duration:
            view = observer.view()
            out.write("\n".join(["-- %s, %d reports" % (time.strftime("%H:%M:%S"), observer.messages)]
                                + table_lines(view)) + "\n")
            out.flush()
            left = every if duration <= 0 else min(every, duration - (time.time() - started))
            time.sleep(max(left, 0))
    except KeyboardInterrupt:
        pass
