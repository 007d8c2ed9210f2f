"""`xmpp-lite demo`: a local server, five simulated boards over a GPRS-like link, and the controller's monitor.

In order:

1. start the server (Prosody, or ejabberd with ``--engine ejabberd``) from a generated config in a
   temporary state directory, on a free loopback port, STARTTLS required, with a throw-away test CA
   (host_tools.engines);
2. provision five device accounts (sensor-1 ... sensor-5) and the controller's, by in-band registration;
3. start the five boards: firmware/main.py on the MicroPython VM, each with its config.json and the fake
   ESP32 modules, connected through the link emulator's "gprs" profile (host_tools.fleet);
4. show the monitor: on a terminal the live screen (table, plot, a prompt for commands; q quits),
   otherwise the table every few seconds; the controller also sends "read" to the first board and
   shows its answer;
5. stop everything and remove the temporary directory.

Every wait is bounded; a failure is one DemoError line.
"""

import os
import shutil
import signal
import sys
import tempfile
import threading
import time

from host_tools.engines import DEFAULT_ENGINE, ServerError, create

DEVICES = 5
DEVICE_PREFIX = "sensor-"
CONTROLLER_USER = "controller"
LINK_PROFILE = "gprs"
REPORT_INTERVAL_S = 5
DURATION_S = 30  # without a terminal; on one, until q
REPORTING_TIMEOUT_S = 60  # every board must have reported by then (logins over GPRS take seconds)
ANSWER_TIMEOUT_S = 20
VM_HEAPSIZE = "256k"
ENGINE_NAMES = {"prosody": "Prosody", "ejabberd": "ejabberd"}
ENGINE_TOOLS = {"prosody": "prosody", "ejabberd": "ejabberdctl"}


class DemoError(Exception):
    """The demo could not run or went wrong; the message is one line for the user."""


def say(line):
    print(line, flush=True)


def first_line(error):
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _wait_for(predicate, timeout, what, fleet=None):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise DemoError("%s within %d s%s" % (what, timeout, _fleet_problem(fleet)))
        time.sleep(0.2)


def _fleet_problem(fleet):
    if fleet is None:
        return ""
    snapshot = fleet.snapshot()
    for device in fleet.devices:
        lines = getattr(device, "lines", [])
        if device.state in ("stopped", "exited") and lines:
            return "; %s: %s" % (device.name, lines[-1])
    return "; %d of %d online" % (snapshot["online"], snapshot["devices"])


def _show_answer(observer, jid, since):
    for when, sender, body in list(observer.replies):
        if when >= since and (sender or "").split("/")[0] == jid:
            return body
    return None


def _session(work, duration, interactive, resources, engine=DEFAULT_ENGINE):
    from host_tools.fleet import Fleet, FleetError, create_accounts
    from host_tools.monitor import MonitorScreen, run_plain, table_lines

    server = create(engine, os.path.join(work, "server"))
    resources.append(server.stop)  # before start: a half-started server is stopped too
    server.start()
    say("demo: local %s on 127.0.0.1:%d (STARTTLS required, certificate from a test CA)"
        % (ENGINE_NAMES[engine], server.c2s_port))
    users = ["%s%d" % (DEVICE_PREFIX, number) for number in range(1, DEVICES + 1)]
    try:
        accounts = create_accounts(server, users + [CONTROLLER_USER])
        say("demo: provisioned %s .. %s and %s" % (server.jid(users[0]), server.jid(users[-1]),
                                                 server.jid(CONTROLLER_USER)))
        fleet = Fleet(server, accounts[:-1], accounts[-1], runtime="micropython", profile=LINK_PROFILE,
                      interval_s=REPORT_INTERVAL_S, work_dir=work, heap=VM_HEAPSIZE)
        resources.append(fleet.stop)
        fleet.start()
    except FleetError as error:
        raise DemoError(str(error))
    say("demo: %d boards (firmware/main.py on the MicroPython VM) through the %s link emulator, "
        "reporting every %d s" % (DEVICES, LINK_PROFILE, REPORT_INTERVAL_S))
    observer = fleet.observer
    for user in users:
        observer.subscribe(server.jid(user))
    _wait_for(lambda: fleet.snapshot()["reporting"] == DEVICES, REPORTING_TIMEOUT_S,
              "not every board reported", fleet)
    say("demo: all %d boards report" % DEVICES)
    if interactive:
        import curses

        curses.wrapper(MonitorScreen(observer, title="xmpp-lite demo", duration=duration).run)
    else:
        say("\n".join(table_lines(observer.view())))
        first = server.jid(users[0])
        asked = time.time()
        say('demo: the controller sends "read" to %s' % first)
        observer.command(first, "read")
        _wait_for(lambda: _show_answer(observer, first, asked) is not None, ANSWER_TIMEOUT_S,
                  "no answer from %s" % first, fleet)
        say('demo: %s answers "%s"' % (first, _show_answer(observer, first, asked)))
        run_plain(observer, duration=max(duration - (time.time() - asked), 1))
    snapshot = fleet.snapshot()
    say("demo: %d/%d online, %d reports, %d reconnects" % (snapshot["online"], snapshot["devices"],
                                                         snapshot["messages"], snapshot["reconnects"]))


def run_demo(duration=DURATION_S, keep_running=False, interactive=None, engine=DEFAULT_ENGINE):
    """The whole demo; raises DemoError (one line) on failure. ``interactive``: None means "stdout is a TTY"."""
    if engine not in ENGINE_TOOLS:
        raise DemoError("unknown engine %r (known engines: %s)" % (engine, ", ".join(ENGINE_TOOLS)))
    if shutil.which(ENGINE_TOOLS[engine]) is None:
        raise DemoError("%s is not installed: apt-get install %s"
                        % (ENGINE_TOOLS[engine], engine))
    if interactive is None:
        interactive = sys.stdout.isatty()
    started = time.monotonic()
    work = tempfile.mkdtemp(prefix="xmpp-lite-demo-")
    resources = []  # what to stop, in reverse order
    previous_handler = None
    if threading.current_thread() is threading.main_thread():
        # A plain `kill` should clean up as Ctrl-C does: no Prosody or VM left behind.
        previous_handler = signal.signal(signal.SIGTERM, _terminate)
    try:
        _session(work, 0 if keep_running else duration, interactive, resources, engine)
    except KeyboardInterrupt:
        say("demo: interrupted")
    except ServerError as error:
        raise DemoError("local %s: %s" % (ENGINE_NAMES[engine], first_line(error))) from None
    except DemoError:
        raise
    except Exception as error:  # noqa: BLE001 - anything else still ends in one line
        raise DemoError("%s: %s" % (type(error).__name__, first_line(error))) from None
    finally:
        for stop in reversed(resources):
            try:
                stop()
            except Exception:  # noqa: BLE001 - stop the rest whatever one of them does
                pass
        shutil.rmtree(work, ignore_errors=True)
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
    say("demo: everything stopped; done in %.1f s" % (time.monotonic() - started))


def _terminate(signum, frame):
    raise KeyboardInterrupt


def main(argv=None):
    """`python -m host_tools.demo [options]`, the same as `xmpp-lite demo`."""
    from host_tools.__main__ import main as cli_main

    return cli_main(["demo"] + list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
