"""The fault-injecting proxy itself: each mode does what the network tests rely on."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import socketserver
import threading
import time
import warnings
from collections.abc import Iterator

import pytest

from servers.faultproxy import FaultProxy

REPLY = b"0123456789" * 4


class _Reply(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        # The proxy cuts connections with a reset in some tests: not an error of this server.
        with contextlib.suppress(ConnectionError):
            while self.request.recv(1024):
                self.request.sendall(REPLY)


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    """A TCP server answering every chunk it receives with 40 bytes."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Reply)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(upstream: int) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", upstream) as running:
        yield running


def _ask(proxy: FaultProxy, timeout: float = 2.0) -> tuple[bytes, float]:
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout) as sock:
        sock.sendall(b"ping")
        got = b""
        while len(got) < len(REPLY):
            chunk = sock.recv(1024)
            if not chunk:
                break
            got += chunk
    return got, time.monotonic() - started


def test_pass_forwards_both_ways(proxy: FaultProxy) -> None:
    """In pass mode the client gets the server's whole reply, and the proxy counts the request."""
    got, _ = _ask(proxy)
    assert got == REPLY
    assert proxy.connections == 1
    assert proxy.requests == 1


def test_latency_delays_each_reply(proxy: FaultProxy) -> None:
    """Latency N ms delays the reply by at least N ms."""
    proxy.set("latency", 150)
    got, took = _ask(proxy)
    assert got == REPLY
    assert took >= 0.15


def test_blackhole_holds_then_delivers_after_pass(proxy: FaultProxy) -> None:
    """A blackholed connection is accepted but silent; once back to pass, the held reply arrives."""
    proxy.set("blackhole")
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=0.3) as sock:
        sock.sendall(b"ping")
        with pytest.raises(TimeoutError):
            sock.recv(1024)
        proxy.set("pass")
        sock.settimeout(2.0)
        assert sock.recv(1024)


def test_reset_cuts_held_and_new_connections(proxy: FaultProxy) -> None:
    """Switching to reset aborts an open connection, and new ones are reset on accept."""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=2.0) as held:
        held.sendall(b"ping")
        assert held.recv(1024)
        proxy.set("reset")
        with pytest.raises(ConnectionResetError):
            held.sendall(b"ping")
            held.recv(1024)
            held.recv(1024)
    with pytest.raises((ConnectionResetError, ConnectionAbortedError, BrokenPipeError)):
        _ask(proxy)


def test_drip_sends_one_byte_at_a_time(proxy: FaultProxy) -> None:
    """Drip at 10 ms per byte makes a 40-byte reply take at least 0.3 s."""
    proxy.set("drip", 10)
    got, took = _ask(proxy)
    assert got == REPLY
    assert took >= 0.3


def test_close_after_cuts_the_reply(proxy: FaultProxy) -> None:
    """close_after N delivers N bytes of reply, then closes the connection."""
    proxy.set("close_after", 7)
    got, _ = _ask(proxy)
    assert got == REPLY[:7]


def test_fault_context_returns_to_pass(proxy: FaultProxy) -> None:
    """``with proxy.fault(mode)`` restores pass mode on exit."""
    with proxy.fault("latency", 5):
        assert proxy.mode == "latency"
    assert proxy.mode == "pass"
    assert _ask(proxy)[0] == REPLY


def test_pass_heals_a_connection_in_the_middle_of_a_drip(proxy: FaultProxy) -> None:
    """Switching from drip back to pass delivers the rest of a reply at once."""
    proxy.set("drip", 200)  # 40 bytes: 8 s if the drip went on
    timer = threading.Timer(0.3, proxy.set, ("pass",))
    timer.start()
    got, took = _ask(proxy, timeout=5.0)
    timer.join()
    assert got == REPLY
    assert took < 2.0


@pytest.mark.parametrize("mode", ["pass", "blackhole", "latency"])
def test_stop_leaves_no_task_or_socket_behind(upstream: int, mode: str) -> None:
    """Stopped while connections are still being accepted, the proxy's loop ends with nothing pending.

    A task left pending when the loop closes is destroyed later, wherever the garbage collector
    happens to run, and closing its sockets then fails on the closed loop: an error in whichever
    test is running at that moment.
    """
    running = FaultProxy("127.0.0.1", upstream).start()
    running.set(mode, 200)  # type: ignore[arg-type]
    loop = running._loop
    assert loop is not None
    clients = []
    for _ in range(30):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", running.port))
        clients.append(sock)
    time.sleep(0.02)
    for sock in clients[:10]:
        # Some requests are in flight when the proxy stops, and some connections are only accepted.
        with contextlib.suppress(OSError):
            sock.send(b"ping")
    running.stop()
    try:
        assert loop.is_closed()
        assert not [task for task in asyncio.all_tasks(loop) if not task.done()]
    finally:
        for sock in clients:
            sock.close()


def test_stop_closes_a_connection_whose_peer_never_read() -> None:
    """A connection its handler closed while the client still had unread bytes is closed by stop().

    Closing gracefully waits for the buffer to drain, which never happens with a client that
    does not read: left so, the transport is collected after the loop closed, and fails there
    (on Python 3.13.0, with a TypeError inside asyncio).
    """
    listener = socket.create_server(("127.0.0.1", 0))
    ready = threading.Event()

    def flood() -> None:
        conn, _ = listener.accept()
        with conn:
            ready.wait(10)
            conn.sendall(b"x" * (16 << 20))  # more than the kernel's buffers take

    feeder = threading.Thread(target=flood, daemon=True)
    feeder.start()
    running = FaultProxy("127.0.0.1", listener.getsockname()[1]).start()
    loop = running._loop
    assert loop is not None
    client = socket.create_connection(("127.0.0.1", running.port))
    try:
        deadline = time.monotonic() + 5
        while not running._links and time.monotonic() < deadline:
            time.sleep(0.01)
        link = next(iter(running._links))
        # Writes never wait for the client, so the handler ends with bytes still queued for it.
        loop.call_soon_threadsafe(link.client.transport.set_write_buffer_limits, 1 << 30)
        ready.set()
        feeder.join(10)
        client.shutdown(socket.SHUT_WR)  # the client is done sending, and reads nothing
        while running._links and time.monotonic() < deadline + 5:
            time.sleep(0.01)
        assert not running._links, "the handler did not end"
        running.stop()
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            gc.collect()
    finally:
        client.close()
        listener.close()


@pytest.mark.parametrize("attempt", range(5))
def test_stop_while_clients_keep_connecting_leaves_nothing_open(upstream: int, attempt: int) -> None:
    """Connections that arrive while stop() runs are closed too: no task, no socket outlives the loop.

    Abandoned SDK calls retry, and their new connections can reach the listener just as a
    test's proxy stops.
    """
    running = FaultProxy("127.0.0.1", upstream).start()
    loop = running._loop
    assert loop is not None
    hammering = threading.Event()
    done = threading.Event()
    clients: list[socket.socket] = []

    def connect_in_a_loop() -> None:
        while not done.is_set():
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", running.port))
            clients.append(sock)
            hammering.set()
            time.sleep(0.0005)

    thread = threading.Thread(target=connect_in_a_loop, daemon=True)
    thread.start()
    try:
        assert hammering.wait(5)
        time.sleep(0.05 + attempt * 0.01)
        running.stop()
        assert not [task for task in asyncio.all_tasks(loop) if not task.done()]
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            gc.collect()
    finally:
        done.set()
        thread.join(5)
        for sock in clients:
            sock.close()
