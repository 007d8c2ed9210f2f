# Runs on the MicroPython VM, loaded by mp_client_bench.py for a traced run of tests/bench/bench_client.py.
import gc


def trace_stanzas():
    """Record the live heap (after a collect) around every stanza the session handles: [login, online].

    For one run at a large heap only: the collects change how the heap fragments.
    """
    from xmpp_lite.session import Session  # loaded by then: importing it allocates nothing

    handle = Session._on_stanza
    peaks = [0, 0]

    def traced(session, elem):
        online = session.state == "online"
        gc.collect()
        peaks[online] = max(peaks[online], gc.mem_alloc())
        handle(session, elem)
        gc.collect()
        peaks[online] = max(peaks[online], gc.mem_alloc())

    Session._on_stanza = traced
    return peaks
