"""Vault's other engines (``?engine=generic``): a read or an opted-in write of any path, and its lease.

Kept apart from :mod:`secretkit.backends.vault`, which reads KV and owns the token and the
client: this module decides what a generic reference may send (a write only where
``post_paths`` allows it, with the parameters listed there), issues the credential, and hands
its lease to :mod:`~secretkit.backends._vault_leases` (held and renewed by the backend) or,
behind a Vault Agent / OpenBao Proxy, to :mod:`~secretkit.backends._vault_proxy` (the proxy's).
It sends through the backend's ``request``, so the token and the error mapping stay the backend's.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote

from .._backend import Fetched
from .._errors import AccessDenied, BackendUnavailable, InvalidReference, SecretNotFound
from .._options import check, where
from .._refs import SecretRef
from ._vault_leases import Issued, VaultLeases
from ._vault_options import GENERIC_OPTIONS, OPTIONS, value
from ._vault_proxy import ProxyLeases

__all__ = ["Request", "VaultGeneric"]

#: The backend's way to Vault: ``request(ref, api_path, call)`` runs ``call()`` with a valid
#: token and maps its errors for ``ref`` (``api_path`` is what a policy would have to allow).
Request = Callable[[SecretRef, str, Callable[[], Any]], Any]


class VaultGeneric:
    """The generic engine's reads and writes for one backend, and the leases they hold.

    ``post_paths`` maps each path pattern a reference may write to (``method=POST``) to the
    parameter names it may send there; ``proxied``: a Vault Agent / OpenBao Proxy adds its
    token and owns the leases it issues. ``clock`` times the leases held here; ``lock_wait``
    bounds how long a reader waits behind another one's request.
    """

    scheme = "vault"

    def __init__(
        self,
        client: Any,
        request: Request,
        *,
        post_paths: Mapping[str, Iterable[str]] | None,
        proxied: bool,
        clock: Callable[[], float],
        lock_wait: float,
    ) -> None:
        self._client = client
        self._request = request
        self._post_paths: dict[str, frozenset[str]] = {
            pattern.strip("/"): frozenset(params) for pattern, params in (post_paths or {}).items()
        }
        #: The option names a reference may carry: the engines' own and every ``post_paths`` parameter.
        self.options = OPTIONS.union(*self._post_paths.values())
        #: The leases held and renewed here (behind a proxy, only those it does not cache).
        self.leases = VaultLeases(self._renew_lease, clock=clock, lock_wait=lock_wait)
        self._proxy = ProxyLeases(self._clear_at_proxy, self.leases) if proxied else None

    def fetch(self, ref: SecretRef) -> Fetched:
        method = ref.options.get("method", "GET").upper()
        self._check(ref, method)
        replace = ref.options.get("lease") is not None
        if replace:
            # The credential held for the reference without lease=new was refused somewhere
            # (revoked early, its user dropped): replace it, for that reference's readers too.
            ref = ref.replace(options={k: v for k, v in ref.options.items() if k != "lease"})
        holder = self._proxy if self._proxy is not None else self.leases
        return holder.fetch(ref, lambda: self._issue(ref, method), replace=replace)

    def _check(self, ref: SecretRef, method: str) -> None:
        """Refuse, before any request, a write nobody allowed and options nobody declared."""
        path = ref.path.strip("/")
        if any(part in ("", ".", "..") for part in path.split("/")):
            raise InvalidReference(f"{where(ref)}: a Vault path has no empty, '.' or '..' segments")
        if method == "GET":
            check(
                self.scheme,
                ref,
                self.options,
                {},
                fix="remove it, or declare it as a parameter in VaultBackend(post_paths=...)",
            )
            return
        allowed = [names for pattern, names in self._post_paths.items() if fnmatch.fnmatchcase(path, pattern)]
        if not allowed:
            raise AccessDenied(
                f"{where(ref)}: a reference may not make the vault backend write (method=POST) to "
                f"{path!r}; allow it explicitly with VaultBackend(post_paths="
                f"{{{path!r}: [<parameter names>]}}) or a pattern such as 'pki/issue/*'"
            )
        check(
            self.scheme,
            ref,
            GENERIC_OPTIONS.union(*allowed),
            {},
            fix=f"it is not allowed for a write to {path!r}: list it in VaultBackend(post_paths=...) "
            "for its pattern",
        )

    def _issue(self, ref: SecretRef, method: str) -> Issued:
        """A new credential: Vault's answer to ``method`` on the reference's path."""
        path = ref.path.strip("/")
        params = {k: v for k, v in ref.options.items() if k not in GENERIC_OPTIONS}
        client = self._client
        if method == "GET":
            url = "/v1/" + quote(path, safe="/")
            response = self._request(ref, path, lambda: client.adapter.get(url, params=params or None))
        else:
            response = self._request(ref, path, lambda: client.write_data(path, data=params))
        if not isinstance(response, Mapping):
            # A 200 that is not JSON (a proxy's page, say) is an outage, not an absence: the
            # store keeps serving the last good credential.
            raise BackendUnavailable(
                f"secret {ref.path!r}: the vault backend got a response that is not Vault's JSON "
                f"for {method} {path}; check VAULT_ADDR and any proxy in between"
            )
        if response.get("data") is None:
            raise SecretNotFound(ref.path, detail=f"Vault returned no data for {method} {path}")
        return (
            value(response["data"], ref),
            str(response.get("lease_id") or ""),
            float(response.get("lease_duration") or 0),
            bool(response.get("renewable")),
        )

    def _renew_lease(self, ref: SecretRef, lease_id: str, increment: int) -> Any:
        return self._request(
            ref,
            "sys/leases/renew",
            lambda: self._client.sys.renew_lease(lease_id=lease_id, increment=increment),
        )

    def _clear_at_proxy(self, lease_id: str) -> Any:
        return self._client.adapter.post("/proxy/v1/cache-clear", json={"type": "lease", "value": lease_id})
