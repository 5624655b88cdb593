"""A loopback HTTP server that answers every request as a Vault standby with forwarding off: 307.

Vault's standby redirects a request to the active node's address (``Location`` = that address
plus the request's path); the backend follows it only to an address it was given. ``target``
is where this one points, and every request's headers are recorded, so a test can show a
token never went where it should not.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

__all__ = ["RedirectingNode"]


class RedirectingNode:
    """``http://127.0.0.1:<port>``: 307 to ``target`` + the request's path, for every method."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.seen: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _redirect(self) -> None:
                server.seen.append(dict(self.headers.items()))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(307)
                self.send_header("Location", server.target + self.path)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = _redirect

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    def __enter__(self) -> RedirectingNode:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(10)
