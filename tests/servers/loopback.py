"""A small server of a test's own on a free loopback port, served from a thread inside a ``with`` block.

The tests' impostors (a host fishing for a key, a redirecting Vault standby, an API whose
key rotates, a fake PostgreSQL) differ only in what they answer; starting, serving and
stopping them is this one class.
"""

from __future__ import annotations

import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

__all__ = ["LoopbackServer", "QuietHandler", "http_server"]


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing: the request line would go to stderr for every call."""

    def log_message(self, format: str, *args: object) -> None:
        pass


def http_server(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """An HTTP server for ``handler`` bound to a free port on 127.0.0.1 (not serving yet)."""
    return ThreadingHTTPServer(("127.0.0.1", 0), handler)


class LoopbackServer:
    """Serves ``server`` (bound, not serving yet) inside a ``with`` block; over ``tls`` when given."""

    def __init__(
        self, server: ThreadingHTTPServer | socketserver.ThreadingTCPServer, tls: ssl.SSLContext | None = None
    ) -> None:
        server.daemon_threads = True
        if tls is not None:
            server.socket = tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        self.host = "127.0.0.1"
        self.port = int(server.server_address[1])
        self.url = f"{'https' if tls is not None else 'http'}://{self.host}:{self.port}"
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
