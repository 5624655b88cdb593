"""How an HTTP auth turns a secret into a header and where it may send it, shared by httpx and requests.

The header goes only to the auth's origin (``_destination.OriginPin``): a request, redirect
hop or 401 from any other origin gets no credential and starts no recovery, and the pending
value is offered only over https unless the user opted in.
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Sequence
from typing import Any, Self

from .._errors import ConfigurationError
from .._secret import Secret
from .._store import SecretStore
from ._credentials import Credential, pending_reference
from ._destination import Origin, OriginPin

__all__ = ["AUTH_STATUSES", "Header", "HeaderAuth", "header_credential", "origin_or_none"]

#: The answers that mean "this credential is not (or no longer) accepted".
AUTH_STATUSES = frozenset({401, 403})


class Header:
    """One request header carrying a secret; its ``repr`` names the header, never the value."""

    __slots__ = ("name", "value")

    def __init__(self, name: str, value: str) -> None:
        self.name = name
        self.value = value

    def same(self, other: Header) -> bool:
        return self.name == other.name and hmac.compare_digest(self.value.encode(), other.value.encode())

    def __repr__(self) -> str:
        return f"Header({self.name!r}, '**********')"

    def __reduce_ex__(self, protocol: object) -> Any:
        raise TypeError("a Header holds a secret and cannot be pickled")


def header_credential(
    name: str,
    *,
    kind: str,
    header: str,
    prefix: str,
    username: str | None,
    pending: str | None,
    store: SecretStore | None,
    offer_pending_to_unverified_server: bool = False,
) -> Credential[Header]:
    """The credential behind an auth: ``kind`` is ``"bearer"``, ``"header"`` or ``"basic"``."""
    if kind not in ("bearer", "header", "basic"):
        raise ConfigurationError(f"unknown auth kind {kind!r}: use bearer, header or basic")

    def build(secrets: Sequence[Secret[Any]]) -> Header:
        value = secrets[0].reveal()
        if isinstance(value, bytes):
            value = value.decode()
        if kind == "basic":
            user, password = _basic_pair(secrets[0], value, username)
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            return Header("Authorization", "Basic " + token)
        return Header(header, prefix + str(value))

    pendings = None if pending is None else [pending]
    return Credential(
        [name],
        build,
        Header.same,
        pending=pendings,
        store=store,
        offer_pending_to_unverified_server=offer_pending_to_unverified_server,
    )


def origin_or_none(url: str) -> Origin | None:
    """The origin of ``url``, or None for a URL that has none a credential could be pinned to."""
    try:
        return Origin.of(url)
    except ConfigurationError:
        return None


class HeaderAuth:
    """The options, constructors and ``repr`` of ``SecretAuth``, the same for httpx and requests.

    Each library's ``SecretAuth`` subclasses this and its library's auth base, and adds only
    how a request is sent again after a refusal and how its redirects are kept on the origin.

    ``origin="https://api.example.com"`` pins the credential to that origin; without it, the
    origin of the first request the auth signs is the pin. ``offer_pending_to_unverified_server``
    offers the pending value after a refusal over plain http too (https only by default).
    """

    def __init__(
        self,
        name: str,
        *,
        kind: str = "bearer",
        header: str = "Authorization",
        prefix: str | None = None,
        username: str | None = None,
        pending: str | None = None,
        store: SecretStore | None = None,
        origin: str | None = None,
        offer_pending_to_unverified_server: bool = False,
    ) -> None:
        if prefix is None:
            prefix = "Bearer " if kind == "bearer" else ""
        self.credential: Credential[Header] = header_credential(
            name,
            kind=kind,
            header=header,
            prefix=prefix,
            username=username,
            pending=pending if pending is not None else pending_reference(name),
            store=store,
            offer_pending_to_unverified_server=offer_pending_to_unverified_server,
        )
        #: The one origin the credential is sent to.
        self.pin = OriginPin(origin)
        #: The header the credential travels in: what is removed from anything leaving the origin.
        self.header_name = "Authorization" if kind == "basic" else header
        #: Requests sent again after a refusal (a measure: at most one per request).
        self.resent = 0

    def admits(self, url: str) -> Origin | None:
        """The origin of ``url`` when the credential may go there, else None."""
        origin = origin_or_none(url)
        return origin if origin is not None and self.pin.admits(origin) else None

    @classmethod
    def header(cls, name: str, header: str = "X-API-Key", **kwargs: Any) -> Self:
        """Send the secret as the whole value of ``header``."""
        return cls(name, kind="header", header=header, **kwargs)

    @classmethod
    def basic(cls, name: str, *, username: str | None = None, **kwargs: Any) -> Self:
        """HTTP basic auth from a JSON secret (``username``, ``password``), or ``username=`` + a password."""
        return cls(name, kind="basic", username=username, **kwargs)

    def __repr__(self) -> str:
        pinned = self.pin.origin
        where = "" if pinned is None else f", origin={str(pinned)!r}"
        return f"SecretAuth({self.credential.names[0]!r}{where})"


def _basic_pair(secret: Secret[Any], value: Any, username: str | None) -> tuple[str, str]:
    if username is not None:
        return username, str(value)
    document = value
    if isinstance(value, str):
        try:
            document = json.loads(value)
        except ValueError:
            document = None
    if isinstance(document, dict) and "username" in document and "password" in document:
        return str(document["username"]), str(document["password"])
    document = value = None  # error reporters capture locals: raise with none holding the value
    raise ConfigurationError(
        f"secret {secret.name!r} is not a JSON object with username and password: pass username= "
        "for a secret that holds only the password"
    )
