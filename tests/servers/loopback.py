"""A small server of a test's own on a free loopback port, served from a thread inside a ``with`` block.

The tests' impostors (a host fishing for a key, a redirecting Vault standby, an API whose
key rotates, a fake PostgreSQL) differ only in what they answer; starting, serving and
stopping them is this one class.
"""

from __future__ import annotations

import http.client
import socketserver
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

__all__ = ["LoopbackServer", "QuietHandler", "forward", "http_server"]


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing: the request line would go to stderr for every call."""

    def log_message(self, format: str, *args: object) -> None:
        pass


#: Headers that belong to one connection, not to the request: never passed on by ``forward``.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)


def forward(
    handler: BaseHTTPRequestHandler, target: tuple[str, int], body: bytes | None, *, timeout: float
) -> None:
    """Send ``handler``'s request (its ``body`` already read) to ``target`` and answer with the reply."""
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in HOP_BY_HOP}
    upstream = http.client.HTTPConnection(*target, timeout=timeout)
    try:
        upstream.request(handler.command, handler.path, body=body, headers=headers)
        answer = upstream.getresponse()
        data = answer.read()
        handler.send_response_only(answer.status, answer.reason)
        for key, value in answer.getheaders():
            if key.lower() not in HOP_BY_HOP:
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    finally:
        upstream.close()


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
