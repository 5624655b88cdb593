"""A ``requests`` auth that sends the current secret with every request.

On a 401 or 403 it asks secretkit again (the refreshed value, then the pending one) and
resends the request once, only if that brought a different value — the same pattern as
requests' own ``HTTPDigestAuth``, through a response hook.

The credential goes to one origin only (see ``_destination.py``). requests strips only
``Authorization`` when it follows a redirect to another host, and builds each hop as a copy
of the request the response answered, after that response's hooks ran: so the hook removes
the credential's header from that request when the redirect leaves the origin.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

from .._errors import MissingDependency
from ._http import AUTH_STATUSES, HeaderAuth, origin_or_none

try:
    import requests
    from requests.auth import AuthBase
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingDependency("requests integration", "requests", "requests") from exc

__all__ = ["SecretAuth"]

_SENT = "secretkit_sent"


class SecretAuth(HeaderAuth, AuthBase):
    """``requests.get(url, auth=SecretAuth("API_TOKEN"))``: a bearer token, a header, or basic auth.

    Same options as :class:`secretkit.integrations.httpx.SecretAuth`, the same origin rule:
    the credential goes only to ``origin=`` or the first request's origin, never into a
    redirect hop to another origin, and a 401 from another origin starts no recovery.
    """

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.admits(request.url or "") is None:
            request.headers.pop(self.header_name, None)
            return request
        sent = self.credential.current()
        request.headers[sent.name] = sent.value
        setattr(request, _SENT, sent)
        request.register_hook("response", self._on_response)
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        # Redirect hops are copies of the request and keep this hook, though not _SENT.
        self._keep_on_origin(response, response.request)
        sent = getattr(response.request, _SENT, None)
        if response.status_code not in AUTH_STATUSES or sent is None:
            return response
        origin = self.admits(response.request.url or "")
        if origin is None:
            return response
        verified = origin.authenticates_server and kwargs.get("verify", True) is not False
        recovered = self.credential.recover(sent, server_authenticated=verified)
        if recovered is None:
            return response
        # Drain and release the refused response's connection before sending again.
        _ = response.content
        response.close()
        # requests follows a redirect of the resent request from the original one: give it the new value too.
        response.request.headers[recovered.name] = recovered.value
        retry = response.request.copy()
        retry.deregister_hook("response", self._on_response)  # once only
        self.resent += 1
        assert response.connection is not None
        again: requests.Response = response.connection.send(retry, **kwargs)
        again.history.append(response)
        again.request = retry
        self._keep_on_origin(again, retry, response.request)
        return again

    def _keep_on_origin(self, response: requests.Response, *requests_: requests.PreparedRequest) -> None:
        """A redirect to another origin: its next hop (a copy of these) goes without the credential."""
        if not response.is_redirect:
            return
        location = response.headers["location"]
        try:
            # As requests reads it: the header's bytes are UTF-8 sent as Latin-1.
            location = location.encode("latin1").decode("utf8")
        except UnicodeError:
            pass
        target = origin_or_none(urljoin(response.url, location))
        if target is None or not self.pin.admits(target):
            for request in requests_:
                request.headers.pop(self.header_name, None)
