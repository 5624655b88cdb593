"""A TCP proxy that injects network faults between a real SDK and a real test server.

The cache's promises (a held key never waits, every fetch has a deadline, errors stop when
the network heals) are about the network misbehaving, and loopback never does. This proxy
sits at the TCP level, so HTTP, TLS and HTTP/2 (gRPC) pass through it untouched, and its
fault mode can be switched while clients hold pooled connections through it:

``pass``            forward both ways.
``latency`` N       each chunk the server sends reaches the client N ms after it arrived
                    (chunks are not delayed one after another: about N ms per round trip).
``reset``           connections are cut with a TCP RST (held ones at once, new ones on accept).
``blackhole``       connections are accepted and nothing is forwarded either way until the
                    mode changes (then what was held is delivered, as after a healed network).
``drip`` N          the server's bytes reach the client one at a time, one per N ms.
``close_after`` N   a connection is closed (FIN) once N bytes of response went through it.

It runs an asyncio loop in a thread of its own, so synchronous tests can drive it.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

__all__ = ["MODES", "FaultProxy", "Mode"]

Mode = Literal["pass", "latency", "reset", "blackhole", "drip", "close_after"]
MODES: tuple[Mode, ...] = ("pass", "latency", "reset", "blackhole", "drip", "close_after")
_CHUNK = 65536


@dataclass(frozen=True)
class _Fault:
    mode: Mode
    value: float


class _Link:
    """One client connection and its upstream: two pumps, aborted together."""

    def __init__(self, client: asyncio.StreamWriter, upstream: asyncio.StreamWriter | None) -> None:
        self.client = client
        self.upstream = upstream
        self.sent_down = 0
        self.closed = False

    def abort(self, *, rst: bool) -> None:
        if self.closed:
            return
        self.closed = True
        for writer in (self.client, self.upstream):
            if writer is None:
                continue
            if rst:
                sock = writer.get_extra_info("socket")
                if sock is not None:
                    # Linger 0: close() sends RST instead of FIN, as a middlebox cutting us off would.
                    with suppress(OSError):
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
            else:
                writer.close()


class FaultProxy:
    """``127.0.0.1:<port>`` forwarding to ``target_host:target_port``, with a switchable fault."""

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.host = host
        self.port = 0
        #: Client connections accepted since start (what a pool of keep-alive clients opened).
        self.connections = 0
        #: Client-to-server chunks seen, a proxy's view of requests sent (retries included).
        self.requests = 0
        self._fault = _Fault("pass", 0.0)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._changed: asyncio.Event | None = None
        self._links: set[_Link] = set()
        self._transports: set[asyncio.WriteTransport] = set()  # every socket, for stop() to close
        self._stopping = False

    # -- lifecycle --------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, for gRPC targets."""
        return f"{self.host}:{self.port}"

    @property
    def mode(self) -> Mode:
        return self._fault.mode

    def start(self) -> FaultProxy:
        if self._loop is not None:
            return self
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="faultproxy", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), loop).result(10)
        return self

    async def _listen(self) -> None:
        self._changed = asyncio.Event()
        self._server = await asyncio.start_server(self._handle, self.host, self.port or 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        """Close the listener and every connection; the port is free again afterwards."""
        loop, self._loop = self._loop, None
        if loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(10)
        # A transport closed last schedules its connection_lost for the next turn of the loop:
        # run that turn here, so nothing is left to run (and fail) once the loop is closed.
        if not loop.is_running():
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    async def _shutdown(self) -> None:
        # Every connection is cut and each handler is left to finish on its own: cancelling one
        # that has not started yet makes asyncio's stream callback log a CancelledError (3.11),
        # and one still pending when the loop closes is destroyed with its sockets open.
        self._stopping = True
        server = self._server
        loop = asyncio.get_running_loop()
        if server is not None:
            # Stop accepting, but close the server only once every connection accepted so far has
            # its transport: asyncio builds one a turn after the accept, and building it for a
            # closed server fails half-way, leaving its socket open (3.11 to 3.13).
            for sock in server.sockets:
                loop.remove_reader(sock.fileno())
        give_up = loop.time() + 10.0
        # A connection accepted just before the listener closed becomes a task a few turns of
        # the loop later (accept, then the transport, then the handler): wait for several quiet
        # turns in a row, not one, before deciding that nothing is left.
        quiet = 0
        while quiet < 3:
            for link in list(self._links):
                link.abort(rst=True)
            self._wake()
            pending = {t for t in asyncio.all_tasks() if t is not asyncio.current_task()}
            if not pending:
                quiet += 1
                await asyncio.sleep(0)
                continue
            quiet = 0
            if loop.time() > give_up:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                break
            await asyncio.wait(pending, timeout=0.05)
        if server is not None:
            server.close()
        # A connection its handler closed gracefully stays open while it has bytes its peer has
        # not read; left so, it is collected after the loop closed and fails there.
        for transport in self._transports:
            transport.abort()
        self._transports.clear()
        if server is not None and hasattr(server, "abort_clients"):
            server.abort_clients()  # 3.13+: whatever the listener accepted, handled or not
        await asyncio.sleep(0)

    def _wake(self) -> None:
        """Wake every pump waiting out a blackhole, then arm a fresh event for the next change."""
        assert self._changed is not None
        self._changed.set()
        self._changed = asyncio.Event()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- faults -----------------------------------------------------------------------

    def set(self, mode: Mode, value: float = 0.0) -> None:
        """Switch to ``mode`` now (``value``: ms for latency/drip, bytes for close_after)."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        loop = self._loop
        if loop is None:
            raise RuntimeError("the proxy is not running")
        asyncio.run_coroutine_threadsafe(self._switch(_Fault(mode, float(value))), loop).result(10)

    async def _switch(self, fault: _Fault) -> None:
        self._fault = fault
        if fault.mode == "reset":
            for link in list(self._links):
                link.abort(rst=True)
        self._wake()

    @contextmanager
    def fault(self, mode: Mode, value: float = 0.0) -> Iterator[None]:
        """``mode`` for the duration of a ``with`` block, then ``pass`` again."""
        self.set(mode, value)
        try:
            yield
        finally:
            self.set("pass")

    # -- forwarding -------------------------------------------------------------------

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Cancelled only by stop(): end quietly rather than log every open connection as an error.
        with suppress(asyncio.CancelledError):
            await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._transports.add(writer.transport)
        link = _Link(writer, None)
        self._links.add(link)
        try:
            if self._fault.mode == "reset" or self._stopping:
                link.abort(rst=True)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
            except OSError:
                # The server is down: the client sees its connection refused-then-reset.
                link.abort(rst=True)
                return
            self._transports.add(up_writer.transport)
            if link.closed:
                # Cut (reset, or stop) while connecting upstream: nothing else will close this one.
                up_writer.transport.abort()
                return
            link.upstream = up_writer
            await asyncio.gather(
                self._pump(reader, up_writer, link, down=False),
                self._pump(up_reader, writer, link, down=True),
                return_exceptions=True,
            )
        finally:
            link.abort(rst=False)
            self._links.discard(link)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link, *, down: bool
    ) -> None:
        # Chunks are stamped on arrival and written by a second task, so injected latency
        # delays each chunk by N ms without delaying the chunks behind it by N more.
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        writing = asyncio.ensure_future(self._write(queue, writer, link, down=down))
        try:
            while not link.closed:
                data = await reader.read(_CHUNK)
                if not data:
                    break
                if not down:
                    self.requests += 1
                queue.put_nowait((time.monotonic(), data))
        except (ConnectionError, OSError):
            pass
        finally:
            queue.put_nowait((0.0, b""))
            with suppress(Exception, asyncio.CancelledError):
                await writing
            if not link.closed:
                # Half-close: pass the end of stream on, as TCP would.
                with suppress(OSError, RuntimeError):
                    if writer.can_write_eof():
                        writer.write_eof()

    async def _write(
        self,
        queue: asyncio.Queue[tuple[float, bytes]],
        writer: asyncio.StreamWriter,
        link: _Link,
        *,
        down: bool,
    ) -> None:
        while True:
            arrived, data = await queue.get()
            if not data:
                return
            delayed = False
            # The fault is looked at again before every byte dripped, so switching back to
            # pass heals a connection in the middle of a response, as a real network would.
            while data:
                fault = await self._gate(link)
                if fault is None:
                    return
                if not down or fault.mode == "pass":
                    writer.write(data)
                    sent, data = len(data), b""
                elif fault.mode == "latency":
                    wait = arrived + fault.value / 1000.0 - time.monotonic()
                    if wait > 0 and not delayed:
                        delayed = True
                        await asyncio.sleep(wait)
                        continue
                    writer.write(data)
                    sent, data = len(data), b""
                elif fault.mode == "drip":
                    writer.write(data[:1])
                    sent, data = 1, data[1:]
                    await writer.drain()
                    await asyncio.sleep(fault.value / 1000.0)
                else:  # close_after
                    room = max(int(fault.value) - link.sent_down, 0)
                    writer.write(data[:room])
                    if len(data) >= room:
                        link.sent_down += room
                        await writer.drain()
                        link.abort(rst=False)
                        return
                    sent, data = len(data), b""
                await writer.drain()
                if down:
                    link.sent_down += sent

    async def _gate(self, link: _Link) -> _Fault | None:
        """The fault to apply to the next chunk, after waiting out a blackhole; None: stop."""
        while not link.closed:
            fault = self._fault
            if fault.mode == "blackhole":
                assert self._changed is not None
                await self._changed.wait()
                continue
            if fault.mode == "reset":
                link.abort(rst=True)
                return None
            return fault
        return None
