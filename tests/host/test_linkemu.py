"""host_tools.linkemu with real sockets: a test server on 127.0.0.1, clients through the emulator."""

import hashlib
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from host_tools.linkemu import PROFILES, LinkEmulator, Profile, main

ROOT = Path(__file__).resolve().parents[2]
QUIET_S = 0.4  # how long a silent socket is watched to conclude nothing arrives


class Peer:
    """The server's end of one connection: what arrived, and how it ended ("eof" or "reset")."""

    def __init__(self, sock):
        self.sock = sock
        self.data = bytearray()
        self.ended = None
        self.done = threading.Event()


class Server:
    """Echo (or only record) everything; optional greeting on accept and farewell after the client's FIN."""

    def __init__(self, echo=True, greeting=b"", farewell=b"", hold=None):
        self.echo, self.greeting, self.farewell, self.hold = echo, greeting, farewell, hold
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        self.listener.settimeout(0.05)
        self.port = self.listener.getsockname()[1]
        self.peers = []
        self._stopping = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stopping:
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.settimeout(None)
            peer = Peer(sock)
            self.peers.append(peer)
            threading.Thread(target=self._serve, args=(peer,), daemon=True).start()

    def _serve(self, peer):
        sock = peer.sock
        try:
            sock.sendall(self.greeting)
            if self.hold is not None:
                self.hold.wait()
            while True:
                data = sock.recv(65536)
                if not data:
                    peer.ended = "eof"
                    sock.sendall(self.farewell)
                    break
                peer.data += data
                if self.echo:
                    sock.sendall(data)
        except OSError:
            peer.ended = "reset"
        sock.close()
        peer.done.set()

    def stop(self):
        self._stopping = True
        self.listener.close()
        for peer in self.peers:
            try:
                peer.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def wait_until(predicate, timeout=2.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def recv_exactly(sock, size, timeout=5.0):
    sock.settimeout(timeout)
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError("EOF after %d of %d bytes" % (len(data), size))
        data += chunk
    return bytes(data)


def settle(link):
    """Return once the emulator has handled every socket event that was ready when called.

    Its loop runs the commands of a turn after that turn's I/O; of two commands in a row, the second
    runs in a turn that began after the first returned, so its select saw those events.
    """
    for _ in range(2):
        link._control(lambda: None)


def assert_silent(sock, seconds=QUIET_S):
    """Nothing arrives: no data, no FIN, no RST; the recv times out."""
    sock.settimeout(seconds)
    with pytest.raises(socket.timeout):
        sock.recv(1)


def assert_closed(sock, timeout=2.0):
    """The emulator ended this connection: RST or FIN promptly, no data."""
    sock.settimeout(timeout)
    try:
        assert sock.recv(1) == b""
    except ConnectionResetError:
        pass


def echo(sock, message, timeout=5.0):
    sock.sendall(message)
    assert recv_exactly(sock, len(message), timeout) == message


@pytest.fixture
def servers():
    made = []

    def make(**options):
        made.append(Server(**options))
        return made[-1]

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def links():
    made = []

    def make(server_or_port, profile=PROFILES["perfect"], **options):
        port = server_or_port if isinstance(server_or_port, int) else server_or_port.port
        made.append(LinkEmulator(("127.0.0.1", port), profile, seed=1, **options).start())
        return made[-1]

    yield make
    for link in made:
        link.stop()
        assert link.error is None


@pytest.fixture
def clients():
    made = []

    def make(link):
        made.append(socket.create_connection(("127.0.0.1", link.port), timeout=5))
        return made[-1]

    yield make
    for sock in made:
        sock.close()


def test_bytes_pass_both_ways_intact(servers, links, clients):
    server = servers()
    link = links(server)
    payload = random.Random(7).randbytes(300_000)
    client = clients(link)
    sender = threading.Thread(target=client.sendall, args=(payload,))
    sender.start()
    assert recv_exactly(client, len(payload)) == payload
    sender.join()
    assert bytes(server.peers[0].data) == payload
    # The loop counts a send once it returns, which may be just after the reader got the bytes.
    assert wait_until(lambda: link.stats["bytes_down"] == len(payload), 1)
    stats = link.stats
    assert (stats["bytes_up"], stats["bytes_down"]) == (len(payload), len(payload))
    assert (stats["accepted"], stats["active"]) == (1, 1)


def test_jitter_never_reorders_bytes(servers, links, clients):
    link = links(servers(), Profile(latency_ms=2, jitter_ms=30))
    client = clients(link)
    chunks = [bytes([i]) * 1000 for i in range(100)]

    def send():
        for chunk in chunks:
            client.sendall(chunk)
            time.sleep(0.002)  # separate reads, so each chunk gets its own random delay

    sender = threading.Thread(target=send)
    sender.start()
    assert recv_exactly(client, 100_000) == b"".join(chunks)
    sender.join()


def round_trip(sock):
    started = time.monotonic()
    echo(sock, b"ping")
    return time.monotonic() - started


def test_latency_applies_each_way(servers, links, clients):
    link = links(servers(), Profile(latency_ms=100))
    client = clients(link)
    elapsed = round_trip(client)
    assert 0.2 <= elapsed < 0.45


def test_jitter_adds_a_random_delay_within_bounds(servers, links, clients):
    link = links(servers(), Profile(latency_ms=20, jitter_ms=60))
    client = clients(link)
    trips = [round_trip(client) for _ in range(8)]
    assert all(0.04 <= trip < 0.25 for trip in trips), trips  # 2 x (20 + 0..60) ms, with slack
    assert max(trips) - min(trips) > 0.015, trips


def test_set_profile_changes_existing_connections(servers, links, clients):
    link = links(servers())
    client = clients(link)
    assert round_trip(client) < 0.1
    link.set_profile(Profile(latency_ms=150))
    assert link.profile == Profile(latency_ms=150)
    assert 0.3 <= round_trip(client) < 0.6
    link.set_profile(PROFILES["perfect"])
    assert round_trip(client) < 0.1


def test_bandwidth_caps_each_direction(servers, links, clients):
    size = 20_000  # 160 kbit: 2 s at 80 kbit/s, in each direction at the same time
    server = servers(echo=False, greeting=b"g" * size)
    link = links(server, Profile(bandwidth_bps=80_000))
    started = time.monotonic()
    client = clients(link)
    client.sendall(b"u" * size)
    assert recv_exactly(client, size) == b"g" * size
    down = time.monotonic() - started
    assert wait_until(lambda: len(server.peers[0].data) == size, 3)
    up = time.monotonic() - started
    assert 1.8 <= down < 2.8
    assert 1.8 <= up < 2.8


def test_nat_drops_idle_mapping_silently(servers, links, clients):
    server = servers()
    # The chatty client talks every 0.1 s: ten times as often as the mapping needs, even on a busy machine.
    link = links(server, Profile(nat_idle_timeout_ms=1000))
    idle, chatty = clients(link), clients(link)
    echo(idle, b"ping")
    echo(chatty, b"ping")
    talk_errors = []
    quiet = threading.Event()

    def talk():
        try:
            while not quiet.is_set():
                echo(chatty, b"still here", timeout=1)
                quiet.wait(0.1)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            talk_errors.append(error)

    talker = threading.Thread(target=talk)
    talker.start()
    try:
        # The idle mapping is gone once the emulator counts the drop, not after a guessed sleep.
        assert wait_until(lambda: link.stats["nat_drops"] == 1, 10)
        idle.sendall(b"lost")
        settle(link)
    finally:
        quiet.set()
        talker.join()
    assert talk_errors == []
    assert_silent(idle)
    echo(chatty, b"alive")
    idle_peer = next(peer for peer in server.peers if bytes(peer.data) == b"ping")
    assert idle_peer.ended is None  # the server got neither the bytes nor a FIN
    stats = link.stats
    assert stats["nat_drops"] == 1
    assert stats["active"] == 2
    assert bytes(idle_peer.data) == b"ping"  # "lost" was read and discarded


def test_blackhole_is_silent_and_restore_serves_new_connections(servers, links, clients):
    server = servers()
    link = links(server)
    first = clients(link)
    echo(first, b"one")
    assert link.blackhole() == 1
    first.sendall(b"into the void")
    assert_silent(first)
    assert bytes(server.peers[0].data) == b"one" and server.peers[0].ended is None

    second = clients(link)  # new connections still work
    echo(second, b"two")
    assert link.blackhole(new_connections=True) == 1
    third = clients(link)
    third.sendall(b"three")
    assert_silent(third)
    assert len(server.peers) == 2  # a black-holed new connection never reaches the server

    link.restore()
    fourth = clients(link)
    echo(fourth, b"four")
    first.sendall(b"still dead")
    assert_silent(first, 0.2)
    assert link.stats["blackholed"] == 3

    # The client of a dead connection leaves: the server hears nothing until stop() closes its socket.
    first.close()
    settle(link)  # the emulator has read the client's FIN
    assert link.stats["active"] == 4  # the server side of the dead connection is still open
    assert server.peers[0].ended is None
    link.stop()
    assert server.peers[0].done.wait(2) and server.peers[0].ended == "eof"


def test_cut_resets_both_sides(servers, links, clients):
    server = servers()
    link = links(server)
    socks = [clients(link) for _ in range(2)]
    for sock in socks:
        echo(sock, b"hello")
    assert link.cut() == 2
    for sock in socks:
        sock.settimeout(1)
        with pytest.raises(ConnectionResetError):
            sock.recv(1)
    assert all(peer.done.wait(1) and peer.ended == "reset" for peer in server.peers)
    stats = link.stats
    assert (stats["cuts"], stats["active"]) == (2, 0)


def test_random_cuts_reset_connections(servers, links, clients):
    server = servers()
    link = links(server, Profile(cut_interval_ms=200))
    socks = [clients(link) for _ in range(5)]
    assert link.wait_for_connections(5, 2)
    for sock in socks:
        assert_closed(sock, timeout=3)
    assert all(peer.done.wait(1) for peer in server.peers)
    assert wait_until(lambda: link.stats["active"] == 0)
    assert link.stats["random_cuts"] == 5


def test_random_cuts_can_blackhole(servers, links, clients):
    server = servers()
    link = links(server, Profile(cut_interval_ms=200, cut_mode="blackhole"))
    socks = [clients(link) for _ in range(3)]
    assert wait_until(lambda: link.stats["random_cuts"] == 3, 3)
    for sock in socks:
        sock.sendall(b"anyone?")
        assert_silent(sock, 0.2)
    assert link.stats["active"] == 3
    assert all(peer.ended is None and not peer.data for peer in server.peers)


def test_fin_passes_on_and_half_close_works(servers, links, clients):
    server = servers(farewell=b"bye")
    link = links(server, Profile(latency_ms=20))
    client = clients(link)
    client.sendall(b"last words")
    client.shutdown(socket.SHUT_WR)
    assert recv_exactly(client, len(b"last words") + 3) == b"last wordsbye"
    assert client.recv(1) == b""
    assert server.peers[0].ended == "eof"
    assert wait_until(lambda: link.stats["active"] == 0)


def test_refused_target_closes_client(links, clients):
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # free once closed: nobody listens there
    link = links(port)
    try:
        client = clients(link)
    except ConnectionResetError:
        pass  # the RST came so fast that it beat the end of connect(): closed all the same
    else:
        assert_closed(client)
    assert wait_until(lambda: link.stats["active"] == 0)
    assert link.stats["refused"] == 1


@pytest.mark.parametrize("host", ["10.0.0.1", "0.0.0.0", "192.168.1.20", "example.com", "::", "2001:db8::1"])
def test_non_loopback_target_is_refused(host):
    with pytest.raises(ValueError, match="loopback"):
        LinkEmulator((host, 5222))


def test_loopback_targets_are_accepted():
    assert LinkEmulator(("localhost", 5222)).target == ("127.0.0.1", 5222)
    assert LinkEmulator(("127.0.0.2", 5222)).target == ("127.0.0.2", 5222)
    assert LinkEmulator(("::1", 5222)).target == ("::1", 5222)


def test_stop_closes_everything_and_ends_the_thread(servers, clients):
    server = servers()
    link = LinkEmulator(("127.0.0.1", server.port)).start()
    port = link.port
    socks = [clients(link) for _ in range(3)]
    for sock in socks:
        echo(sock, b"x")
    link.stop()
    assert not [thread for thread in threading.enumerate() if thread.name == "linkemu:%d" % port]
    for sock in socks:
        assert_closed(sock)
    assert all(peer.done.wait(2) and peer.ended == "eof" for peer in server.peers)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1)
    link.stop()  # idempotent
    assert link.cut() == 0 and link.error is None


def test_context_manager_starts_and_stops(servers):
    server = servers()
    with LinkEmulator(("127.0.0.1", server.port)) as link:
        with socket.create_connection(("127.0.0.1", link.port), timeout=5) as sock:
            echo(sock, b"hi")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", link.port), timeout=1)


def test_many_connections_through_one_emulator(servers, links, clients):
    server = servers()
    link = links(server, PROFILES["wifi"])
    socks = [clients(link) for _ in range(200)]
    assert link.wait_for_connections(200, 5)
    for index, sock in enumerate(socks):
        sock.sendall(b"client %03d" % index)
    for index, sock in enumerate(socks):
        assert recv_exactly(sock, 10) == b"client %03d" % index
    stats = link.stats
    assert (stats["accepted"], stats["active"]) == (200, 200)
    assert not link.wait_for_connections(201, 0.05)


def test_buffering_is_capped_and_drains(servers, links, clients):
    hold = threading.Event()
    server = servers(echo=False, hold=hold)  # reads nothing until released
    cap = 256 * 1024
    link = links(server, max_buffered=cap)
    client = clients(link)
    client.settimeout(0.5)
    block = random.Random(3).randbytes(65536)
    sent, digest, pending = 0, hashlib.sha256(), block
    try:
        while sent < 256 * 2 ** 20:  # far beyond any socket buffers: only a cap stops it first
            count = client.send(pending)
            digest.update(pending[:count])
            sent += count
            pending = pending[count:] or block
    except socket.timeout:
        pass
    assert sent < 128 * 2 ** 20
    assert cap // 2 <= link.stats["buffered"] <= cap
    hold.set()
    client.settimeout(5)
    client.shutdown(socket.SHUT_WR)
    peer = server.peers[0]
    assert peer.done.wait(10) and peer.ended == "eof"
    assert len(peer.data) == sent and hashlib.sha256(peer.data).digest() == digest.digest()


def test_profiles_are_named_and_validated():
    assert set(PROFILES) >= {"perfect", "wifi", "gprs", "lossy"}
    gprs = PROFILES["gprs"]
    assert gprs.bandwidth_bps == 40_000 and gprs.nat_idle_timeout_ms == 120_000
    assert 500 <= 2 * gprs.latency_ms and 2 * (gprs.latency_ms + gprs.jitter_ms) <= 1500
    assert PROFILES["lossy"].cut_interval_ms and PROFILES["lossy"].cut_mode == "reset"
    assert PROFILES["lossy"].replace(cut_interval_ms=None, cut_mode="reset") == gprs
    for bad in ({"latency_ms": -1}, {"bandwidth_bps": 0}, {"cut_mode": "explode"}):
        with pytest.raises(ValueError):
            Profile(**bad)


def test_cli_help_and_errors(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--target", "--listen", "--profile", "--seed", "gprs"):
        assert option in text
    bad = (["--target", "10.1.2.3:5222"], ["--target", "nonsense"], [], ["--target", "127.0.0.1:9", "--profile",
           "moon"], ["--target", "127.0.0.1:9", "--listen", "70000"], ["--target", "127.0.0.1:9", "--seed", "x"])
    for argv in bad:
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert err.startswith("linkemu: error: ") and err.count("\n") == 1


def test_cli_relays_and_prints_status(servers):
    server = servers()
    process = subprocess.Popen([sys.executable, "-m", "host_tools.linkemu", "--target",
                                "127.0.0.1:%d" % server.port, "--profile", "wifi", "--seed", "3"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        banner = process.stdout.readline()
        port = int(banner.split()[1].split(":")[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            echo(sock, b"via the cli")
            status = process.stdout.readline()
        assert "accepted=1" in status and "bytes_up=11" in status
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=5)
    assert process.returncode == 0, err
