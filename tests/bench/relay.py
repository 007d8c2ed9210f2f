"""A byte-counting TCP relay on loopback, for comparing what clients put on the wire.

    relay = Relay("127.0.0.1", server_port).start()
    ... point one client at 127.0.0.1:relay.port, run it, close it ...
    link = relay.wait_link(timeout=5)     # the first connection, once both sides closed
    link.sent, link.received, link.flights_before(b"<presence")
    relay.stop()

Each accepted connection is one Link. The relay forwards bytes unchanged and
records, per Link, the bytes each way and the client's *flights*: a flight
starts with the first client bytes, and again with every client chunk that
arrives after the relay has forwarded new server bytes since the previous
client chunk. So the number of flights before some point is the number of
server answers the client waited for until then: its round trips.

Plaintext only is meaningful for content markers; byte counts work for TLS too.
"""

import selectors
import socket
import threading
import time

LOOPBACK = "127.0.0.1"
CHUNK = 65536
SELECT_TIMEOUT = 0.05  # seconds; how soon stop() is noticed
CONNECT_TIMEOUT = 5.0


class Link:
    """One relayed connection: counts and the client's flights."""

    def __init__(self):
        self.sent = 0  # client -> server bytes
        self.received = 0  # server -> client bytes
        self.client_data = bytearray()  # everything the client sent
        self.server_data = bytearray()  # everything the server sent
        self.flight_starts = []  # offsets in client_data where a flight starts
        self.closed = threading.Event()  # set once both directions are finished
        self._server_spoke = True  # new server bytes since the last client chunk

    def from_client(self, data):
        if self._server_spoke:
            self.flight_starts.append(len(self.client_data))
            self._server_spoke = False
        self.client_data += data
        self.sent += len(data)

    def from_server(self, data):
        if data:
            self._server_spoke = True
        self.server_data += data
        self.received += len(data)

    @property
    def flights(self):
        return len(self.flight_starts)

    def flights_before(self, marker):
        """Flights that ended before the flight carrying the first ``marker``; None without it."""
        position = bytes(self.client_data).find(marker)
        if position < 0:
            return None
        return sum(1 for start in self.flight_starts if start <= position) - 1


class _Pipe:
    __slots__ = ("link", "client", "server", "client_open", "server_open")

    def __init__(self, link, client, server):
        self.link = link
        self.client = client
        self.server = server
        self.client_open = True  # the client has not ended its side yet
        self.server_open = True


class Relay:
    """Forward every connection to 127.0.0.1 on ``port`` to ``target``, counting; one thread."""

    def __init__(self, target_host, target_port, port=0):
        self.target = (target_host, target_port)
        self.links = []
        self._listener = socket.create_server((LOOPBACK, port))
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._selector = selectors.DefaultSelector()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)
        self._new_link = threading.Condition()
        self.error = None

    def start(self):
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._thread.start()
        return self

    def stop(self):
        self._stopping.set()
        self._thread.join(5)
        for key in list(self._selector.get_map().values()):
            try:
                key.fileobj.close()
            except OSError:
                pass
        self._selector.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def wait_link(self, index=0, timeout=10.0):
        """Link number ``index`` once both its sides have closed; raises TimeoutError."""
        deadline = time.monotonic() + timeout
        with self._new_link:
            while len(self.links) <= index:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("relay: no connection %d within %.0f s" % (index, timeout))
                self._new_link.wait(left)
        link = self.links[index]
        if not link.closed.wait(max(deadline - time.monotonic(), 0)):
            raise TimeoutError("relay: connection %d still open after %.0f s" % (index, timeout))
        return link

    # -- the relay thread ---------------------------------------------------------------------------

    def _run(self):
        try:
            while not self._stopping.is_set():
                ready = [key.data for key, _ in self._selector.select(SELECT_TIMEOUT)]
                if None in ready:
                    self._accept()
                # Client bytes first: what the client sent before this round cannot answer server
                # bytes forwarded in this round.
                ready = [data for data in ready if data is not None]
                ready.sort(key=lambda data: not data[1])
                for pipe, from_client in ready:
                    if (pipe.client_open if from_client else pipe.server_open):
                        self._forward(pipe, from_client)
        except Exception as error:  # noqa: BLE001 - reported to the caller through .error
            self.error = error

    def _accept(self):
        try:
            client, _ = self._listener.accept()
        except BlockingIOError:
            return
        server = socket.create_connection(self.target, timeout=CONNECT_TIMEOUT)
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # Blocking writes: a slow reader holds up the relay, never loses bytes.
            sock.settimeout(CONNECT_TIMEOUT)
        pipe = _Pipe(Link(), client, server)
        self._selector.register(client, selectors.EVENT_READ, (pipe, True))
        self._selector.register(server, selectors.EVENT_READ, (pipe, False))
        with self._new_link:
            self.links.append(pipe.link)
            self._new_link.notify_all()

    def _forward(self, pipe, from_client):
        source, sink = (pipe.client, pipe.server) if from_client else (pipe.server, pipe.client)
        try:
            data = source.recv(CHUNK)
        except OSError:
            data = b""
        if data:
            # Counted before it is passed on: the other side cannot answer bytes it has not seen yet.
            if from_client:
                pipe.link.from_client(data)
            else:
                pipe.link.from_server(data)
            try:
                sink.sendall(data)
            except OSError:
                pass
            return
        # This direction is done: pass the end on as a half-close.
        self._selector.unregister(source)
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        if from_client:
            pipe.client_open = False
        else:
            pipe.server_open = False
        if not pipe.client_open and not pipe.server_open:
            pipe.client.close()
            pipe.server.close()
            pipe.link.closed.set()
