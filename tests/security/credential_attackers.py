"""Loopback servers that want a credential they should not get, for tests/security/test_credential_senders.py.

``HttpServers`` is an API and a host elsewhere: the API redirects to the other host, which
records every header it is sent and answers 401 (as a host fishing for a key would).
``FakePostgres`` speaks just enough of PostgreSQL's startup protocol to ask for a password in
clear, record it and refuse it with SQLSTATE 28P01, so every password a client offers shows.
Either can run behind TLS with a certificate from ``trustme``, for a server that proves who it is.
"""

from __future__ import annotations

import socket
import socketserver
import ssl
import struct
import threading
from types import TracebackType
from typing import Any

from servers.loopback import LoopbackServer, QuietHandler, http_server

__all__ = ["FakePostgres", "HttpServers", "RecordingHttp"]


class RecordingHttp(LoopbackServer):
    """An HTTP server on loopback that records the headers of every request and answers by path.

    ``/redirect`` answers 302 to ``redirect_to``; ``/same`` answers 302 to ``/ok`` on itself;
    ``/ok`` answers 200; anything else 401.
    """

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.redirect_to = ""
        self._lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                with server._lock:
                    server.seen.append((self.path, dict(self.headers.items())))
                if self.path == "/redirect":
                    self._answer(302, {"Location": server.redirect_to})
                elif self.path == "/same":
                    self._answer(302, {"Location": "/ok"})
                elif self.path == "/ok":
                    self._answer(200, {})
                else:
                    self._answer(401, {})

            def _answer(self, status: int, headers: dict[str, str]) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(http_server(Handler), tls)

    def values(self) -> str:
        """Every header value this server was sent, joined: a credential in it shows."""
        with self._lock:
            return "\n".join(value for _, headers in self.seen for value in headers.values())

    def header(self, name: str) -> list[str]:
        """The values of header ``name`` (any case) it was sent, in order."""
        with self._lock:
            return [
                value
                for _, headers in self.seen
                for key, value in headers.items()
                if key.lower() == name.lower()
            ]


class HttpServers:
    """``api`` (an auth's origin) redirecting ``/redirect`` to ``elsewhere``: another port, another origin."""

    def __init__(self) -> None:
        self.api = RecordingHttp()
        self.elsewhere = RecordingHttp()
        self.api.redirect_to = self.elsewhere.url + "/collect"

    def __enter__(self) -> HttpServers:
        self.api.__enter__()
        self.elsewhere.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.api.__exit__(exc_type, exc, tb)
        self.elsewhere.__exit__(exc_type, exc, tb)


_SSL_REQUEST = 80877103
_GSSENC_REQUEST = 80877104
_AUTH_CLEARTEXT = 3


class FakePostgres(LoopbackServer):
    """A PostgreSQL impostor: asks every client for its password in clear, records it, refuses it."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.passwords: list[str] = []
        self._lock = threading.Lock()
        self._tls = tls
        fake = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                fake._serve(self.request)

        super().__init__(socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler))

    def _serve(self, plain: socket.socket) -> None:
        plain.settimeout(10)
        sock: socket.socket = plain
        try:
            while True:
                length, code = struct.unpack("!ii", _read(sock, 8))
                body = _read(sock, length - 8)
                if code == _SSL_REQUEST and self._tls is not None:
                    sock.sendall(b"S")
                    sock = self._tls.wrap_socket(sock, server_side=True)
                elif code in (_SSL_REQUEST, _GSSENC_REQUEST):
                    sock.sendall(b"N")
                else:
                    break
            self._login(sock, body)
        except (OSError, EOFError):
            pass  # the client gave up (no channel binding, a certificate it refused)
        finally:
            if sock is not plain:
                sock.close()

    def _login(self, sock: socket.socket, body: bytes) -> None:
        fields = body.split(b"\0")
        params = dict(zip(fields[0::2], fields[1::2], strict=False))
        user = params.get(b"user", b"app")
        sock.sendall(b"R" + struct.pack("!ii", 8, _AUTH_CLEARTEXT))
        kind = _read(sock, 1)
        (size,) = struct.unpack("!i", _read(sock, 4))
        payload = _read(sock, size - 4)
        if kind == b"p":
            with self._lock:
                self.passwords.append(payload.rstrip(b"\0").decode())
        message = b'password authentication failed for user "' + user + b'"'
        error = b"SFATAL\0VFATAL\0C28P01\0M" + message + b"\0\0"
        sock.sendall(b"E" + struct.pack("!i", len(error) + 4) + error)


def _read(sock: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError
        data += chunk
    return data
