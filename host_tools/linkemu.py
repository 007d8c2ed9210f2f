"""A TCP link emulator on loopback: makes a local connection behave like a GPRS/cellular link.

    link = LinkEmulator(target=("127.0.0.1", 5222), profile=PROFILES["gprs"], seed=1).start()
    ... point clients at 127.0.0.1:link.port ...
    link.blackhole()          # the carrier NAT lost every mapping: silence both ways, no FIN, no RST
    link.cut()                # reset every connection (RST both sides); returns how many
    link.set_profile(PROFILES["lossy"])
    link.wait_for_connections(3, timeout=5)   # True once 3 connections were accepted in total
    link.stats                # a snapshot dict, see below
    link.stop()               # closes everything, joins the thread; also: with LinkEmulator(...) as link:

``stats``: ``accepted`` (in total), ``active`` (connections with a socket still open, black-holed ones
included), ``bytes_up`` and ``bytes_down`` (delivered to the server, to the client), ``cuts`` (by cut()),
``blackholed`` (by blackhole(), new connections included), ``nat_drops``, ``random_cuts``, ``refused``
(the target refused the connection) and ``buffered`` (bytes held in all queues now). ``link.error`` is
an unexpected exception that ended the loop thread, or None.

The model. Every accepted client connection gets its own connection to the target, and each direction
(up: client to server, down: server to client) is a queue of chunks with a due time: arrival plus
``latency_ms`` plus a uniform 0..``jitter_ms``, never earlier than the chunk before it, so bytes stay in
order. With ``bandwidth_bps`` a direction also has a "next free" time: a chunk is cut into segments and
each one waits for the link to finish the previous one (serialisation delay). A FIN travels the same
queue behind the data. A *black-holed* (dead) connection keeps both sockets open, reads and discards
everything from both sides and sends nothing, which is what a client sees when a carrier NAT silently
drops its mapping. When its client leaves, the client socket is closed but the server socket stays
open and silent (a NAT never tells the server) until the server closes it or stop() is called.
``nat_idle_timeout_ms`` black-holes a connection idle that long; ``cut_interval_ms`` resets or
black-holes each connection after an exponentially distributed time. While new connections
are black-holed (``blackhole(new_connections=True)``) the client is accepted but no server connection
is opened: the server never hears of it.

One thread runs a ``selectors`` loop with a heap of timers and sleeps in select until the next timer
or I/O, so one emulator carries a whole fleet (mind the process's open-file limit: two descriptors a
connection). Control methods may be called from any thread; they hand a command to the loop through
a queue and a wake-up socketpair, and wait for its result. Buffering is capped per connection
direction (``max_buffered``); at the cap the emulator stops reading that side until it drains.

CLI: ``python -m host_tools.linkemu --target HOST:PORT [--listen PORT] [--profile NAME] [--seed N]``.
"""

import argparse
import collections
import concurrent.futures
import errno
import heapq
import ipaddress
import itertools
import random
import selectors
import socket
import struct
import sys
import threading
import time

LISTEN_HOST = "127.0.0.1"
LISTEN_BACKLOG = 1024
READ_SIZE = 65536
SEGMENT_BYTES = 1460  # the unit of serialisation on a capped link, so bytes trickle out, not in bursts
MAX_BUFFERED_BYTES = 1 << 20  # per connection direction; default for LinkEmulator(max_buffered=)
ACCEPT_BATCH = 64  # accepts per loop round, so a connection storm cannot starve the others
ACCEPT_RETRY_S = 0.1  # pause accepting this long when out of file descriptors
STOP_TIMEOUT_S = 5.0
STATUS_INTERVAL_S = 1.0  # CLI status line period

CUT_RESET = "reset"
CUT_BLACKHOLE = "blackhole"
CUT_MODES = (CUT_RESET, CUT_BLACKHOLE)

WIFI_LATENCY_MS = 5
WIFI_JITTER_MS = 5
GPRS_LATENCY_MS = 250  # one way
GPRS_JITTER_MS = 500  # one way 250..750 ms, so a round trip takes 500..1500 ms
GPRS_BANDWIDTH_BPS = 40000
GPRS_NAT_IDLE_TIMEOUT_MS = 120000  # carrier NATs commonly drop idle TCP mappings after ~2 minutes
LOSSY_CUT_INTERVAL_MS = 60000  # mean time between random cuts

_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, timeout 0: close() sends RST
_WAKE = object()  # selector data of the wake-up socket


class Profile:
    """How the link behaves; all times in ms. Treat it as immutable: ``replace()`` makes a changed copy."""

    def __init__(self, latency_ms=0, jitter_ms=0, bandwidth_bps=None, nat_idle_timeout_ms=None,
                 cut_interval_ms=None, cut_mode=CUT_RESET):
        for name, value in (("latency_ms", latency_ms), ("jitter_ms", jitter_ms)):
            if value < 0:
                raise ValueError("%s must be >= 0, not %r" % (name, value))
        for name, value in (("bandwidth_bps", bandwidth_bps), ("nat_idle_timeout_ms", nat_idle_timeout_ms),
                            ("cut_interval_ms", cut_interval_ms)):
            if value is not None and value <= 0:
                raise ValueError("%s must be > 0 or None, not %r" % (name, value))
        if cut_mode not in CUT_MODES:
            raise ValueError("cut_mode must be one of %s, not %r" % (", ".join(CUT_MODES), cut_mode))
        self.latency_ms = latency_ms
        self.jitter_ms = jitter_ms
        self.bandwidth_bps = bandwidth_bps
        self.nat_idle_timeout_ms = nat_idle_timeout_ms
        self.cut_interval_ms = cut_interval_ms
        self.cut_mode = cut_mode

    def replace(self, **changes):
        fields = dict(vars(self))
        fields.update(changes)
        return Profile(**fields)

    def __eq__(self, other):
        return isinstance(other, Profile) and vars(self) == vars(other)

    def __repr__(self):
        return "Profile(%s)" % ", ".join("%s=%r" % item for item in vars(self).items())


PROFILES = {
    "perfect": Profile(),
    "wifi": Profile(latency_ms=WIFI_LATENCY_MS, jitter_ms=WIFI_JITTER_MS),
    "gprs": Profile(latency_ms=GPRS_LATENCY_MS, jitter_ms=GPRS_JITTER_MS, bandwidth_bps=GPRS_BANDWIDTH_BPS,
                    nat_idle_timeout_ms=GPRS_NAT_IDLE_TIMEOUT_MS),
}
PROFILES["lossy"] = PROFILES["gprs"].replace(cut_interval_ms=LOSSY_CUT_INTERVAL_MS, cut_mode=CUT_RESET)


def loopback_address(host, port):
    """``(host, port)`` checked to be loopback, "localhost" resolved without DNS; ValueError otherwise."""
    name = "127.0.0.1" if host == "localhost" else host
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        address = None
    if address is None or not address.is_loopback:
        raise ValueError("target %r is not a loopback address (127.0.0.0/8, ::1, localhost)" % (host,))
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError("target port %r is not in 1..65535" % (port,))
    return str(address), port


class _Direction:
    """One direction of a connection: chunks in flight and bytes waiting for the sink."""

    def __init__(self, conn, upstream):
        self.conn = conn
        self.upstream = upstream  # client -> server
        self.queue = collections.deque()  # (due, bytes); b"" is the source's FIN
        self.queued = 0  # bytes in queue
        self.out = bytearray()  # due, not yet taken by the sink
        self.eof_read = False  # the source has ended (no more reading)
        self.fin_due = False  # shut the sink once out is empty
        self.done = False  # FIN passed on
        self.last_due = 0.0
        self.next_free = 0.0  # when a capped link has finished the bytes already given to it
        self.armed = False  # a release timer is pending

    def buffered(self):
        return self.queued + len(self.out)


class _Conn:
    def __init__(self, client, now):
        self.client = client
        self.server = None
        self.connecting = False
        self.dead = False  # black-holed
        self.closed = False
        self.last_activity = now
        self.idle_token = 0  # a timer whose token no longer matches is stale
        self.cut_token = 0
        self.watched = {True: 0, False: 0}  # selector events by is_client
        self.up = _Direction(self, True)
        self.down = _Direction(self, False)


class LinkEmulator:
    """Relay 127.0.0.1:``port`` to the loopback ``target`` through an emulated link; see the module doc."""

    def __init__(self, target, profile=PROFILES["perfect"], seed=None, listen_port=0,
                 max_buffered=MAX_BUFFERED_BYTES):
        self.target = loopback_address(*target)
        self._family = socket.AF_INET6 if ":" in self.target[0] else socket.AF_INET
        self._profile = profile
        self._random = random.Random(seed)
        self._listen_port = listen_port
        self.max_buffered = max_buffered
        self.port = None
        self.error = None  # an unexpected exception that ended the loop thread
        self._stats = dict.fromkeys(("accepted", "bytes_up", "bytes_down", "cuts", "blackholed",
                                     "nat_drops", "random_cuts", "refused"), 0)
        self._buffered = 0
        self._conns = set()
        self._timers = []  # heap of (when, seq, fn, args)
        self._seq = itertools.count()
        self._blackhole_new = False
        self._stopping = False
        self._lock = threading.Lock()  # guards _commands and _running
        self._commands = []
        self._running = False
        self._accepted = threading.Condition()
        self._thread = None

    # -- control, from any thread -----------------------------------------------------------------------

    def start(self):
        if self._thread is not None:
            raise RuntimeError("linkemu: already started")
        self._listener = socket.create_server((LISTEN_HOST, self._listen_port), backlog=LISTEN_BACKLOG)
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, _WAKE)
        self._running = True
        self._thread = threading.Thread(target=self._run, name="linkemu:%d" % self.port, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._thread is None:
            return
        self._control(self._request_stop)
        self._thread.join(STOP_TIMEOUT_S)

    def __enter__(self):
        return self if self._thread is not None else self.start()

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def profile(self):
        return self._profile

    def set_profile(self, profile):
        self._control(self._set_profile, profile)

    def blackhole(self, new_connections=False):
        """Silence every live connection; returns how many. With ``new_connections`` new ones too, until
        restore() (or a later blackhole() without it)."""
        return self._control(self._blackhole_all, new_connections)

    def restore(self):
        self._control(self._restore)

    def cut(self):
        """Reset every current connection, both sides with RST; returns how many."""
        return self._control(self._cut_all)

    @property
    def stats(self):
        snapshot = dict(self._stats)  # counters change only in the loop thread; keys never do
        snapshot["active"] = len(self._conns)
        snapshot["buffered"] = self._buffered
        return snapshot

    def wait_for_connections(self, n, timeout=None):
        with self._accepted:
            return self._accepted.wait_for(lambda: self._stats["accepted"] >= n, timeout)

    def _control(self, fn, *args):
        with self._lock:
            if not self._running:  # no loop (not started, or ended): nothing races with us
                return fn(*args)
            future = concurrent.futures.Future()
            self._commands.append((future, fn, args))
        self._wake()
        return future.result()  # re-raises what fn raised, in the calling thread

    def _wake(self):
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # a full pipe already holds a wake-up

    # -- commands, run in the loop thread ---------------------------------------------------------------

    def _request_stop(self):
        self._stopping = True

    def _set_profile(self, profile):
        if not isinstance(profile, Profile):
            raise TypeError("set_profile() needs a Profile, not %r" % (profile,))
        self._profile = profile
        now = time.monotonic()
        for conn in self._conns:
            if not conn.dead:
                self._arm_idle(conn)
                self._arm_cut(conn, now)

    def _blackhole_all(self, new_connections):
        self._blackhole_new = new_connections
        live = [conn for conn in self._conns if not conn.dead]
        for conn in live:
            self._kill(conn)
        self._stats["blackholed"] += len(live)
        return len(live)

    def _restore(self):
        self._blackhole_new = False

    def _cut_all(self):
        conns = list(self._conns)
        for conn in conns:
            self._close_conn(conn, rst=True)
        self._stats["cuts"] += len(conns)
        return len(conns)

    # -- the loop -----------------------------------------------------------------------------------------

    def _run(self):
        try:
            while not self._stopping:
                timeout = max(0.0, self._timers[0][0] - time.monotonic()) if self._timers else None
                for key, mask in self._selector.select(timeout):
                    self._dispatch(key, mask, time.monotonic())
                with self._lock:
                    commands, self._commands = self._commands, []
                self._run_commands(commands)
                now = time.monotonic()
                while self._timers and self._timers[0][0] <= now:
                    _, _, fn, args = heapq.heappop(self._timers)
                    fn(*args, now)
        except Exception as error:  # noqa: BLE001 - kept for the owner in .error
            self.error = error
        finally:
            with self._lock:
                self._running = False
                pending, self._commands = self._commands, []
            for conn in list(self._conns):
                self._close_conn(conn, rst=False)
            for sock in (self._listener, self._wake_r, self._wake_w):
                sock.close()
            self._selector.close()
            self._run_commands(pending)  # callers waiting on these see the emulator stopped

    @staticmethod
    def _run_commands(commands):
        for future, fn, args in commands:
            try:
                future.set_result(fn(*args))
            except Exception as error:  # noqa: BLE001 - handed to the calling thread
                future.set_exception(error)

    def _at(self, when, fn, *args):
        heapq.heappush(self._timers, (when, next(self._seq), fn, args))

    def _dispatch(self, key, mask, now):
        if key.data is None:
            self._accept(now)
        elif key.data is _WAKE:
            try:
                self._wake_r.recv(4096)
            except BlockingIOError:
                pass
        else:
            conn, is_client = key.data
            # An earlier event of this round may have closed the socket (and its fd been reused).
            if (conn.client if is_client else conn.server) is not key.fileobj:
                return
            if mask & selectors.EVENT_WRITE:
                self._on_writable(conn, is_client, now)
            if mask & selectors.EVENT_READ and (conn.client if is_client else conn.server) is key.fileobj:
                self._on_readable(conn, is_client, now)
            self._update(conn)

    def _accept(self, now):
        for _ in range(ACCEPT_BATCH):
            try:
                client, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # The backlog stays readable: pause instead of spinning until descriptors free up.
                    self._selector.unregister(self._listener)
                    self._at(now + ACCEPT_RETRY_S, self._resume_accept)
                return
            client.setblocking(False)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(client, now)
            self._conns.add(conn)
            with self._accepted:
                self._stats["accepted"] += 1
                self._accepted.notify_all()
            if self._blackhole_new:
                conn.dead = True
                self._stats["blackholed"] += 1
            else:
                self._connect(conn, now)
            self._update(conn)

    def _resume_accept(self, now):
        self._selector.register(self._listener, selectors.EVENT_READ, None)

    def _connect(self, conn, now):
        try:
            server = socket.socket(self._family, socket.SOCK_STREAM)
        except OSError:
            self._close_conn(conn, rst=True)
            return
        conn.server = server
        server.setblocking(False)
        server.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        result = server.connect_ex(self.target)
        if result not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            self._stats["refused"] += 1
            self._close_conn(conn, rst=True)
            return
        conn.connecting = result != 0
        self._arm_idle(conn)
        self._arm_cut(conn, now)

    def _on_writable(self, conn, is_client, now):
        if not is_client and conn.connecting:
            conn.connecting = False
            if conn.server.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self._stats["refused"] += 1
                if conn.dead:
                    self._close_side(conn, False, rst=False)  # the client must not notice
                else:
                    self._close_conn(conn, rst=True)
                return
            if not conn.dead:
                self._flush(conn.up, now)
        elif not conn.dead:
            self._flush(conn.down if is_client else conn.up, now)

    def _on_readable(self, conn, is_client, now):
        sock = conn.client if is_client else conn.server
        direction = conn.up if is_client else conn.down
        size = READ_SIZE if conn.dead else max(1, min(READ_SIZE, self.max_buffered - direction.buffered()))
        try:
            data = sock.recv(size)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = None  # reset or other error
        if conn.dead:
            if not data:  # a dead side is closed only once its own endpoint is gone
                self._close_side(conn, is_client, rst=False)
        elif data is None:
            self._close_conn(conn, rst=True)  # an error on one side is passed on as RST to the other
        else:
            if data:
                conn.last_activity = now
            else:
                direction.eof_read = True
            self._enqueue(direction, data, now)

    def _enqueue(self, direction, data, now):
        profile = self._profile
        bps = profile.bandwidth_bps
        pieces = [data[i:i + SEGMENT_BYTES] for i in range(0, len(data), SEGMENT_BYTES)] if bps and data \
            else [data]
        for piece in pieces:
            sent = now
            if bps and piece:
                direction.next_free = max(now, direction.next_free) + len(piece) * 8.0 / bps
                sent = direction.next_free
            delay_ms = profile.latency_ms + (self._random.uniform(0, profile.jitter_ms) if profile.jitter_ms else 0)
            # Never before the previous chunk: jitter must not reorder bytes.
            direction.last_due = max(sent + delay_ms / 1000.0, direction.last_due)
            direction.queue.append((direction.last_due, piece))
            direction.queued += len(piece)
            self._buffered += len(piece)
        if not direction.armed:
            direction.armed = True
            self._at(direction.queue[0][0], self._release, direction)

    def _release(self, direction, now):
        direction.armed = False
        conn = direction.conn
        if conn.closed or conn.dead:
            return
        queue = direction.queue
        while queue and queue[0][0] <= now:
            _, piece = queue.popleft()
            direction.queued -= len(piece)
            if piece:
                direction.out += piece
            else:
                direction.fin_due = True
        if queue:
            direction.armed = True
            self._at(queue[0][0], self._release, direction)
        self._flush(direction, now)
        self._update(conn)

    def _flush(self, direction, now):
        conn = direction.conn
        if conn.connecting:
            return
        sink = conn.server if direction.upstream else conn.client
        while direction.out:
            try:
                sent = sink.send(direction.out)
            except (BlockingIOError, InterruptedError):
                return  # _update() asks for EVENT_WRITE
            except OSError:
                self._close_conn(conn, rst=True)
                return
            del direction.out[:sent]
            self._buffered -= sent
            self._stats["bytes_up" if direction.upstream else "bytes_down"] += sent
            conn.last_activity = now
        if direction.fin_due and not direction.done:
            direction.done = True
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            if conn.up.done and conn.down.done:
                self._close_conn(conn, rst=False)

    def _update(self, conn):
        """Ask the selector for exactly the events this connection can use now."""
        if conn.closed:
            return
        read, write = selectors.EVENT_READ, selectors.EVENT_WRITE
        for is_client, sock in ((True, conn.client), (False, conn.server)):
            if sock is None:
                continue
            source, sink = (conn.up, conn.down) if is_client else (conn.down, conn.up)
            if not is_client and conn.connecting:
                events = write
            elif conn.dead:
                events = read  # keep discarding: neither end may see backpressure
            else:
                wants_read = not source.eof_read and source.buffered() < self.max_buffered
                events = (read if wants_read else 0) | (write if sink.out else 0)
            current = conn.watched[is_client]
            if events != current:
                if not current:
                    self._selector.register(sock, events, (conn, is_client))
                elif not events:
                    self._selector.unregister(sock)
                else:
                    self._selector.modify(sock, events, (conn, is_client))
                conn.watched[is_client] = events

    # -- timers and connection ends -------------------------------------------------------------------

    def _arm_idle(self, conn):
        conn.idle_token += 1
        if self._profile.nat_idle_timeout_ms is not None:
            self._at(conn.last_activity + self._profile.nat_idle_timeout_ms / 1000.0, self._check_idle, conn,
                     conn.idle_token)

    def _check_idle(self, conn, token, now):
        timeout_ms = self._profile.nat_idle_timeout_ms
        if token != conn.idle_token or conn.closed or conn.dead or timeout_ms is None:
            return
        deadline = conn.last_activity + timeout_ms / 1000.0
        if now >= deadline:
            self._stats["nat_drops"] += 1
            self._kill(conn)
        else:  # traffic since this timer was set: look again when the new idle period would end
            self._at(deadline, self._check_idle, conn, token)

    def _arm_cut(self, conn, now):
        conn.cut_token += 1
        mean_ms = self._profile.cut_interval_ms
        if mean_ms is not None:
            self._at(now + self._random.expovariate(1000.0 / mean_ms), self._random_cut, conn, conn.cut_token)

    def _random_cut(self, conn, token, now):
        if token != conn.cut_token or conn.closed or conn.dead:
            return
        self._stats["random_cuts"] += 1
        if self._profile.cut_mode == CUT_BLACKHOLE:
            self._kill(conn)
        else:
            self._close_conn(conn, rst=True)

    def _kill(self, conn):
        """Black-hole: drop what is in flight, then read and discard from both sides, send nothing."""
        conn.dead = True
        self._drop_buffers(conn)
        self._update(conn)

    def _drop_buffers(self, conn):
        for direction in (conn.up, conn.down):
            self._buffered -= direction.buffered()
            direction.queue.clear()
            direction.queued = 0
            direction.out = bytearray()

    def _close_conn(self, conn, rst):
        for is_client in (True, False):
            self._close_side(conn, is_client, rst)

    def _close_side(self, conn, is_client, rst):
        sock = conn.client if is_client else conn.server
        if sock is None:
            return
        if conn.watched[is_client]:
            self._selector.unregister(sock)
            conn.watched[is_client] = 0
        try:
            if rst:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
        except OSError:
            pass
        sock.close()
        if is_client:
            conn.client = None
        else:
            conn.server = None
            conn.connecting = False
        if conn.client is None and conn.server is None:
            conn.closed = True
            self._drop_buffers(conn)
            self._conns.discard(conn)


# -- command line -------------------------------------------------------------------------------------------

class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit 1, like every other failure
        raise _UsageError(message)


def _parse_target(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise _UsageError("--target must be HOST:PORT, not %r" % text)
    return loopback_address(host.strip("[]"), int(port))


def _listen_port(text):
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError("must be a port number 0..65535, not %r" % text)
    return int(text)


def _parser():
    parser = _Parser(prog="python -m host_tools.linkemu",
                     description="Relay a loopback TCP port to a loopback server through an emulated "
                                 "GPRS/cellular link; prints the counters once a second until Ctrl-C.")
    parser.add_argument("--target", required=True, metavar="HOST:PORT",
                        help="the server to relay to; loopback only (127.0.0.0/8, [::1], localhost)")
    parser.add_argument("--listen", type=_listen_port, default=0, metavar="PORT",
                        help="port to listen on at %s (default: a free port, printed at start)" % LISTEN_HOST)
    parser.add_argument("--profile", default="gprs", choices=sorted(PROFILES),
                        help="link behaviour (default: gprs)")
    parser.add_argument("--seed", type=int, default=None, metavar="N",
                        help="seed for jitter and random cuts, for repeatable runs (default: random)")
    return parser


def main(argv=None):
    try:
        args = _parser().parse_args(argv)
        link = LinkEmulator(_parse_target(args.target), PROFILES[args.profile], seed=args.seed,
                            listen_port=args.listen).start()
    except (_UsageError, ValueError, OSError) as error:
        print("linkemu: error: %s" % error, file=sys.stderr)
        return 1
    print("linkemu: %s:%d -> %s:%d, profile %s %r" % (LISTEN_HOST, link.port, link.target[0], link.target[1],
                                                      args.profile, link.profile), flush=True)
    try:
        while link.error is None:
            time.sleep(STATUS_INTERVAL_S)
            print(" ".join("%s=%d" % item for item in sorted(link.stats.items())), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        link.stop()
    if link.error is not None:
        print("linkemu: error: %s" % link.error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
