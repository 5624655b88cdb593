"""A local HTTP API that accepts exactly one API key at a time, which a test rotates.

It answers 200 to a request carrying the accepted key (as ``Authorization: Bearer``,
``X-API-Key`` or basic auth's password) and 401 to anything else, and counts how many times
it saw each call (the ``X-Call-Id`` header), so a test can tell resends from calls.
"""

from __future__ import annotations

import base64
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler

from servers.loopback import LoopbackServer, QuietHandler, http_server

__all__ = ["KeyServer"]


class KeyServer(LoopbackServer):
    """``with KeyServer("key-1") as api: ... api.accept("key-2")``; ``api.url`` is its address."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.seen: Counter[str] = Counter()
        self.refused = 0
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                server._answer(self)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server._answer(self)

        super().__init__(http_server(Handler))

    def accept(self, key: str) -> None:
        """From now on only ``key`` is accepted."""
        with self._lock:
            self.key = key

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        presented = _presented(handler)
        with self._lock:
            ok = presented == self.key
            self.seen[handler.headers.get("X-Call-Id", "")] += 1
            if not ok:
                self.refused += 1
        body = b"ok" if ok else b"unauthorized"
        handler.send_response(200 if ok else 401)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)


def _presented(handler: BaseHTTPRequestHandler) -> str | None:
    if key := handler.headers.get("X-API-Key"):
        return key
    authorization = handler.headers.get("Authorization", "")
    if authorization.startswith("Bearer "):
        return authorization[len("Bearer ") :]
    if authorization.startswith("Basic "):
        decoded = base64.b64decode(authorization[len("Basic ") :]).decode()
        return decoded.partition(":")[2]
    return None
