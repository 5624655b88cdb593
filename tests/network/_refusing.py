"""A loopback HTTP forwarder that can answer "too many requests" for a while, as an overloaded server does.

The fault proxy works on bytes and cannot speak HTTP; a server under load answers 429 or
503 with ``Retry-After``. This sits in front of a real server (OpenBao): it forwards every
request as it is while ``refusing`` is ``None``, and answers ``refusing`` (a status) with
``Retry-After: retry_after`` otherwise. It counts the requests that reached it either way.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from servers.loopback import forward

__all__ = ["Refusing"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 would drop a burst of connections for a second


class Refusing:
    """``http://127.0.0.1:<port>`` forwarding to ``target`` (host, port), or refusing."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.refusing: int | None = None
        self.retry_after: str | None = None
        self.requests = 0
        self.refused = 0
        self._lock = threading.Lock()
        shim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with shim._lock:
                    shim.requests += 1
                    status, wait = shim.refusing, shim.retry_after
                    if status is not None:
                        shim.refused += 1
                if status is not None:
                    payload = b'{"errors":["rate limit quota exceeded"]}'
                    self.send_response(status)
                    if wait is not None:
                        self.send_header("Retry-After", wait)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                forward(self, shim.target, body, timeout=10)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _any

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="refusing", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Refusing:
        self._thread.start()
        return self

    def refuse(self, status: int | None, retry_after: str | None = None) -> None:
        """Answer ``status`` (with ``Retry-After``) to every request from now; ``None``: forward again."""
        with self._lock:
            self.refusing, self.retry_after = status, retry_after

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
