"""xmpp_lite firmware: runs first at every boot, before main.py.

Kept small on purpose: anything that fails here can lock a person out of the REPL. It only says
why the board (re)started, which is what one wants to know about a board in the field.
"""

import machine

_CAUSES = {
    getattr(machine, "PWRON_RESET", -1): "power on",
    getattr(machine, "HARD_RESET", -2): "hard reset",
    getattr(machine, "WDT_RESET", -3): "watchdog reset (the main loop was stuck or offline too long)",
    getattr(machine, "DEEPSLEEP_RESET", -4): "wake from deep sleep",
    getattr(machine, "SOFT_RESET", -5): "soft reset",
}
print("xmpp_lite: boot (%s)" % _CAUSES.get(machine.reset_cause(), "reset cause %d" % machine.reset_cause()))
