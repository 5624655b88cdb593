"""A loopback HTTP server that answers every request as a Vault standby with forwarding off: 307.

Vault's standby redirects a request to the active node's address (``Location`` = that address
plus the request's path); the backend follows it only to an address it was given. ``target``
is where this one points, and every request's headers are recorded, so a test can show a
token never went where it should not.
"""

from __future__ import annotations

from servers.loopback import LoopbackServer, QuietHandler, http_server

__all__ = ["RedirectingNode"]


class RedirectingNode(LoopbackServer):
    """``http://127.0.0.1:<port>``: 307 to ``target`` + the request's path, for every method."""

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.seen: list[dict[str, str]] = []
        server = self

        class Handler(QuietHandler):
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

        super().__init__(http_server(Handler))
