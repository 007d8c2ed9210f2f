"""Tests of xmpp_lite.robust that need no server: error sorting, offline queueing, bounds, stopping.

The reconnection itself runs against a real Prosody in tests/host/test_resilience.py.
"""

import errno
import socket

from support import raises

from xmpp_lite.backoff import Backoff
from xmpp_lite.keepalive import Heartbeat
from xmpp_lite.parser import XMLError
from xmpp_lite.robust import STATE_OFFLINE, STATE_STOPPED, RobustClient, is_fatal
from xmpp_lite.sasl import AuthError
from xmpp_lite.sm import QueueFull
from xmpp_lite.stream import ProtocolError, StreamError


def closed_port():
    """A loopback port nobody listens on (bound, then released)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(socket.getaddrinfo("127.0.0.1", 0)[0][-1])
    port = sock.getsockname()[1] if hasattr(sock, "getsockname") else None
    sock.close()
    return port or 1


def offline_device(**options):
    device = RobustClient("sensor1@example.net", "secret", host="127.0.0.1", port=closed_port(), tls="none",
                          insecure_plain=True, backoff=Backoff(initial_ms=60000, jitter=0),
                          heartbeat=Heartbeat(), connect_timeout_ms=2000, **options)
    states = []
    device.on_state = lambda state, detail: states.append((state, detail))
    return device, states


def test_fatal_and_retryable_errors():
    assert is_fatal(AuthError("not-authorized"))
    assert is_fatal(AuthError("account-disabled"))
    assert not is_fatal(AuthError("temporary-auth-failure"))
    assert not is_fatal(AuthError("server-signature-mismatch"))  # an impostor must not stop a device for good
    assert is_fatal(StreamError("conflict"))
    assert not is_fatal(StreamError("system-shutdown"))
    assert not is_fatal(StreamError("connection-timeout"))
    assert not is_fatal(OSError(errno.ECONNRESET, "reset"))
    assert not is_fatal(ProtocolError("no STARTTLS"))
    assert not is_fatal(XMLError("not well-formed"))
    assert not is_fatal(MemoryError("memory allocation failed"))
    assert is_fatal(ValueError("a bug or bad config"))


def test_a_refused_connection_schedules_a_retry():
    device, states = offline_device()
    assert device.connect() is False
    assert device.state == STATE_OFFLINE and device.stats["attempts"] == 1
    assert states[0][0] == STATE_OFFLINE and isinstance(states[0][1], OSError)
    # The next attempt waits for the backoff delay: polling now does not try again.
    device.poll(0)
    assert device.stats["attempts"] == 1


def test_stanzas_sent_offline_wait_in_order_up_to_the_bound():
    device, _ = offline_device(max_unacked=3)
    device.connect()
    ids = [device.send_message("controller@example.net", "reading %d" % n) for n in range(3)]
    assert len(set(ids)) == 3 and device.unacked == 3
    raises(QueueFull, device.send_message, "controller@example.net", "one too many")
    assert device.unacked == 3
    assert device.sm.unacked[0].find(b"reading 0") > 0 and device.sm.unacked[2].find(b"reading 2") > 0
    # A broadcast presence is remembered for the next stream, not queued.
    device.send_presence(status="21.5 C")
    assert device.unacked == 3


def test_close_reports_what_was_never_sent_and_stops():
    device, states = offline_device()
    device.connect()
    device.send_message("controller@example.net", "lost")
    assert device.close() == 1
    assert device.state == STATE_STOPPED and states[-1] == (STATE_STOPPED, None)
    raises(OSError, device.send_message, "controller@example.net", "after close")


def test_not_started_is_stopped():
    device, _ = offline_device()
    assert device.state == STATE_STOPPED and not device.online
    raises(OSError, device.send_message, "controller@example.net", "too early")
    device.poll(0)  # waits, does nothing
    assert device.stats["attempts"] == 0


def test_ids_are_unique_across_clients():
    first, _ = offline_device()
    second, _ = offline_device()
    assert first.new_id() != second.new_id()


def test_a_memory_error_is_counted_freed_and_retried_never_fatal():
    device, states = offline_device()

    def out_of_memory(*args, **kwargs):
        raise MemoryError("memory allocation failed, allocating 1025 bytes")

    device.client.connect = out_of_memory
    assert device.connect() is False  # an attempt: retried after the backoff, not raised
    assert device.state == STATE_OFFLINE and isinstance(device.error, MemoryError)
    assert device.stats["memory_errors"] == 1 and device.memory_errors_in_row == 1
    assert device.client.session is None
    # One in the application's own work counts the same, and on_state hears of it.
    device.drop_for_memory(MemoryError("in a callback"))
    assert device.stats["memory_errors"] == 2 and device.memory_errors_in_row == 2
    assert states[-1][0] == STATE_OFFLINE and isinstance(states[-1][1], MemoryError)
    assert device.state == STATE_OFFLINE
