"""Where a credential may go: one origin rule for HTTP senders, one server-identity rule for logins.

Every sender asks these functions instead of deciding for itself. An HTTP auth sends its
credential, current or pending, only to one origin (scheme, host, port): the one given as
``origin=``, else that of the first request it signs; a redirect or a 401 from any other
origin gets nothing and starts no recovery. A refused login offers the *pending* credential
only to a server that has proved who it is before any password went out (TLS with
verification, SCRAM channel binding), unless the user opted in: a server that merely refuses
must not be able to collect the next password.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from .._errors import ConfigurationError

__all__ = [
    "Origin",
    "OriginPin",
    "asyncpg_server_authenticated",
    "libpq_server_authenticated",
]

_DEFAULT_PORTS = {"http": 80, "https": 443}


class Origin(NamedTuple):
    """A URL's scheme, host and port (the default port filled in): what a credential is pinned to."""

    scheme: str
    host: str
    port: int

    @classmethod
    def make(cls, scheme: str | bytes, host: str | bytes, port: int | None) -> Origin:
        scheme = (scheme.decode("ascii") if isinstance(scheme, bytes) else scheme).lower()
        host = (host.decode("ascii") if isinstance(host, bytes) else host).lower().strip("[]")
        if scheme not in _DEFAULT_PORTS or not host:
            raise ConfigurationError(f"not an http(s) origin: {scheme}://{host}")
        return cls(scheme, host, _DEFAULT_PORTS[scheme] if port is None else port)

    @classmethod
    def of(cls, url: str) -> Origin:
        """The origin of ``url`` (``https://api.example.com/v1`` -> https, api.example.com, 443)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ConfigurationError("not an http(s) URL: cannot tell its origin") from exc
        host = parts.hostname or ""
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise ConfigurationError("not an http(s) URL: its host name is not valid") from exc
        return cls.make(parts.scheme, host, port)

    @property
    def authenticates_server(self) -> bool:
        """Whether the server proves its identity (https, with the client's usual verification)."""
        return self.scheme == "https"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


class OriginPin:
    """The one origin an auth sends its credential to: given, or taken from the first request."""

    def __init__(self, origin: str | None = None) -> None:
        self._origin = None if origin is None else Origin.of(origin)
        self._lock = threading.Lock()

    @property
    def origin(self) -> Origin | None:
        return self._origin

    def admits(self, origin: Origin) -> bool:
        """Whether a credential may go to ``origin`` (the first origin asked about becomes the pin)."""
        pinned = self._origin
        if pinned is None:
            with self._lock:
                if self._origin is None:
                    self._origin = origin
                pinned = self._origin
        return origin == pinned


def libpq_server_authenticated(*layers: Mapping[str, Any]) -> bool:
    """Whether libpq authenticates the server before a password goes out, given these parameters.

    Later layers win, then libpq's environment (``PGSSLMODE``, ``PGCHANNELBINDING``), as libpq
    reads them. ``sslmode=verify-full`` checks the certificate and the host name;
    ``channel_binding=require`` makes the login SCRAM bound to the TLS channel, which a server
    that does not hold the password's verifier cannot complete and from which it learns no
    password. Anything else (``require``, ``verify-ca``, a service file) counts as unauthenticated.
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update({key: value for key, value in layer.items() if value not in (None, "")})
    sslmode = merged.get("sslmode") or os.environ.get("PGSSLMODE")
    binding = merged.get("channel_binding") or os.environ.get("PGCHANNELBINDING")
    return sslmode == "verify-full" or binding == "require"


def asyncpg_server_authenticated(dsn: str | None, ssl_option: Any) -> bool:
    """Whether asyncpg authenticates the server before a password goes out.

    asyncpg's order: its ``ssl=`` argument, else the DSN's ``sslmode``, else ``PGSSLMODE``.
    ``ssl=True`` and ``"verify-full"`` verify certificate and host name; an ``SSLContext``
    counts when it requires a certificate and checks the host name. asyncpg has no channel binding.
    """
    if ssl_option is None and dsn:
        try:
            query = parse_qs(urlsplit(dsn).query)
        except ValueError:
            query = {}
        modes = query.get("sslmode")
        ssl_option = modes[-1] if modes else None
    if ssl_option is None:
        ssl_option = os.environ.get("PGSSLMODE")
    if ssl_option is True:
        return True
    if isinstance(ssl_option, str):
        return ssl_option == "verify-full"
    if isinstance(ssl_option, ssl.SSLContext):
        return ssl_option.verify_mode == ssl.CERT_REQUIRED and ssl_option.check_hostname
    return False
