"""An ``httpx.Auth`` (sync and async clients) that sends the current secret with every request.

On a 401 or 403 it asks secretkit again (the refreshed value, then the pending one) and
resends the request once, only if that brought a different value: a rotated key costs one
extra round trip, a wrong key costs none.

The credential goes to one origin only (see ``_destination.py``). httpx follows redirects
inside the client, where an auth cannot see them, and copies every header but
``Authorization`` into the next hop; so the request carries a hook of httpx's transport (the
``trace`` request extension, which httpx copies into every hop) that removes the credential's
header from a hop to another origin just before its headers are written.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator
from typing import Any

from .._errors import MissingDependency
from ._destination import Origin
from ._http import AUTH_STATUSES, HeaderAuth, origin_or_none

try:
    import httpx
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingDependency("httpx integration", "httpx", "httpx") from exc

__all__ = ["SecretAuth"]


class SecretAuth(HeaderAuth, httpx.Auth):
    """Authenticate each request with the secret ``name``, read through the store's cache.

    ``SecretAuth("API_TOKEN")`` sends ``Authorization: Bearer <token>``;
    ``SecretAuth.header("API_KEY", "X-API-Key")`` sends the key in a header of its own;
    ``SecretAuth.basic("aws-sm://svc/login")`` sends HTTP basic auth from a JSON secret with
    ``username`` and ``password`` (or ``username=`` and a password secret).

    The credential goes only to ``origin=`` or, without it, the origin of the first request;
    a redirect hop to another origin goes without it (with httpx's own transports, whose
    ``trace`` hook does the removal), and a 401 from another origin starts no recovery.
    """

    requires_request_body = True  # a resend needs the body again

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        origin = self.admits(str(request.url))
        if origin is None:
            # Another origin: nothing of ours goes, not even a copy a redirect carried over.
            request.headers.pop(self.header_name, None)
            yield request
            return
        sent = self.credential.current()
        request.headers[sent.name] = sent.value
        _SyncGuard.install(request, self)
        response = yield request
        if self._refused_by(response, origin):
            recovered = self.credential.recover(sent, server_authenticated=origin.authenticates_server)
            if recovered is not None:
                response.read()
                request.headers[recovered.name] = recovered.value
                self.resent += 1
                yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        origin = self.admits(str(request.url))
        if origin is None:
            request.headers.pop(self.header_name, None)
            yield request
            return
        # The store's reads are cache hits; a miss or a recovery fetches, so run those off the loop.
        sent = await asyncio.to_thread(self.credential.current)
        request.headers[sent.name] = sent.value
        _AsyncGuard.install(request, self)
        response = yield request
        if self._refused_by(response, origin):
            recovered = await asyncio.to_thread(
                self.credential.recover, sent, server_authenticated=origin.authenticates_server
            )
            if recovered is not None:
                await response.aread()
                request.headers[recovered.name] = recovered.value
                self.resent += 1
                yield request

    def _refused_by(self, response: httpx.Response, origin: Origin) -> bool:
        # The response may come from the end of a redirect chain: a refusal elsewhere is not ours to answer.
        return response.status_code in AUTH_STATUSES and origin_or_none(str(response.request.url)) == origin


class _Guard:
    """httpcore's ``trace`` hook: a hop leaving the auth's origin loses the credential's header.

    It runs for every request httpx's transports write, redirect hops included (httpx copies a
    request's extensions into each hop), when its headers are about to go on the wire. A
    ``trace`` the caller had set is kept and called after it.
    """

    __slots__ = ("auth", "header", "inner")

    def __init__(self, auth: SecretAuth, inner: Any) -> None:
        self.auth = auth
        self.header = auth.header_name.lower().encode("ascii")
        self.inner = inner

    @classmethod
    def install(cls, request: httpx.Request, auth: SecretAuth) -> None:
        inner = request.extensions.get("trace")
        if isinstance(inner, _Guard):
            inner = inner.inner  # sent again: one guard, not a chain of them
        request.extensions["trace"] = cls(auth, inner)

    def strip(self, event: str, info: dict[str, Any]) -> None:
        if not event.endswith(".send_request_headers.started"):
            return
        wire = info.get("request")
        headers = getattr(wire, "headers", None)
        if not isinstance(headers, list):
            return
        pinned = self.auth.pin.origin
        if pinned is None or _wire_origin(wire) != pinned:
            headers[:] = [(key, value) for key, value in headers if key.lower() != self.header]


class _SyncGuard(_Guard):
    __slots__ = ()

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        self.strip(event, info)
        if self.inner is not None:
            self.inner(event, info)


class _AsyncGuard(_Guard):
    __slots__ = ()

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        self.strip(event, info)
        if self.inner is not None:
            await self.inner(event, info)


def _wire_origin(wire: Any) -> Origin | None:
    """The origin an httpcore request goes to (through a forwarding proxy, its absolute target's)."""
    url = wire.url
    target = bytes(url.target)
    if target.startswith((b"http://", b"https://")):
        return origin_or_none(target.decode("ascii", "replace"))
    try:
        return Origin.make(url.scheme, url.host, url.port)
    except (ValueError, UnicodeError):
        return None
