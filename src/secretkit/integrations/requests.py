"""A ``requests`` auth that sends the current secret with every request.

On a 401 or 403 it asks secretkit again (the refreshed value, then the pending one) and
resends the request once, only if that brought a different value — the same pattern as
requests' own ``HTTPDigestAuth``, through a response hook.
"""

from __future__ import annotations

from typing import Any

from .._errors import MissingDependency
from ._http import AUTH_STATUSES, HeaderAuth

try:
    import requests
    from requests.auth import AuthBase
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingDependency("requests integration", "requests", "requests") from exc

__all__ = ["SecretAuth"]

_SENT = "secretkit_sent"


class SecretAuth(HeaderAuth, AuthBase):
    """``requests.get(url, auth=SecretAuth("API_TOKEN"))``: a bearer token, a header, or basic auth.

    Same options as :class:`secretkit.integrations.httpx.SecretAuth`.
    """

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        sent = self.credential.current()
        request.headers[sent.name] = sent.value
        setattr(request, _SENT, sent)
        request.register_hook("response", self._on_response)
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        sent = getattr(response.request, _SENT, None)
        if response.status_code not in AUTH_STATUSES or sent is None:
            return response
        recovered = self.credential.recover(sent)
        if recovered is None:
            return response
        # Drain and release the refused response's connection before sending again.
        _ = response.content
        response.close()
        retry = response.request.copy()
        retry.headers[recovered.name] = recovered.value
        retry.deregister_hook("response", self._on_response)  # once only
        self.resent += 1
        assert response.connection is not None
        again: requests.Response = response.connection.send(retry, **kwargs)
        again.history.append(response)
        again.request = retry
        return again
