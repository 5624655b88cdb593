"""An ``httpx.Auth`` (sync and async clients) that sends the current secret with every request.

On a 401 or 403 it asks secretkit again (the refreshed value, then the pending one) and
resends the request once, only if that brought a different value: a rotated key costs one
extra round trip, a wrong key costs none.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator

from .._errors import MissingDependency
from ._http import AUTH_STATUSES, HeaderAuth

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
    """

    requires_request_body = True  # a resend needs the body again

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        sent = self.credential.current()
        request.headers[sent.name] = sent.value
        response = yield request
        if response.status_code in AUTH_STATUSES:
            recovered = self.credential.recover(sent)
            if recovered is not None:
                response.read()
                request.headers[recovered.name] = recovered.value
                self.resent += 1
                yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        # The store's reads are cache hits; a miss or a recovery fetches, so run those off the loop.
        sent = await asyncio.to_thread(self.credential.current)
        request.headers[sent.name] = sent.value
        response = yield request
        if response.status_code in AUTH_STATUSES:
            recovered = await asyncio.to_thread(self.credential.recover, sent)
            if recovered is not None:
                await response.aread()
                request.headers[recovered.name] = recovered.value
                self.resent += 1
                yield request
