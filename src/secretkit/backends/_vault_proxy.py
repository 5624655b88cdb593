"""Leased credentials behind a Vault Agent / OpenBao Proxy: the proxy's to cache and renew, asked for again.

Kept apart from :mod:`secretkit.backends.vault` (which reads) and from
:mod:`~secretkit.backends._vault_leases` (the leases the backend holds and renews itself):
behind a proxy with ``use_auto_auth_token``, a renewable lease issued with the proxy's token
is cached and renewed by the proxy and handed to every process on the host. The backend then
holds nothing: it asks the proxy again at ``RECHECK`` of the lease's duration (a hit in the
proxy's cache, which reaches no server), and for ``&lease=new`` removes the refused lease from
the proxy's cache first, so the whole host moves to the next one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from .._backend import Fetched
from .._refs import SecretRef
from ._vault_leases import Issued, VaultLeases

__all__ = ["RECHECK", "ProxyLeases"]

log = logging.getLogger("secretkit.vault")

#: The fraction of a lease's duration after which the backend asks the proxy again. The proxy
#: gives a lease up with 10-20 % of it left (its renewer's grace) and hands out the next:
#: asking at 10 % sees the next one before the old one runs out.
RECHECK = 0.1
# References whose last lease id is remembered (for &lease=new): a bound, not a cache.
_REMEMBERED = 1024


class ProxyLeases:
    """The leases a proxy holds for the host, as one backend sees them.

    ``clear(lease_id)`` asks the proxy to drop a lease from its cache
    (``POST /proxy/v1/cache-clear``); ``held`` takes, and renews itself, a lease the proxy
    does not cache (one that is not renewable).
    """

    def __init__(self, clear: Callable[[str], Any], held: VaultLeases) -> None:
        self._clear = clear
        self._held = held
        self._last: dict[SecretRef, str] = {}

    def fetch(self, ref: SecretRef, issue: Callable[[], Issued], *, replace: bool = False) -> Fetched:
        if replace:
            self._forget(ref)
        issued = issue()
        value, lease_id, duration, renewable = issued
        if not (lease_id and renewable and duration > 0):
            # The proxy caches only what it can renew: this one is held and replaced here.
            return self._held.fetch(ref, lambda: issued, replace=True)
        if len(self._last) >= _REMEMBERED and ref not in self._last:
            self._last.pop(next(iter(self._last)))
        self._last[ref] = lease_id
        return Fetched(
            value,
            version=lease_id,
            ttl=max(duration * RECHECK, 1.0),
            metadata={"lease_id": lease_id, "renewable": "true", "renewed_by": "proxy"},
        )

    def _forget(self, ref: SecretRef) -> None:
        lease_id = self._last.get(ref)
        if lease_id is None:
            return
        try:
            # Idempotent: a process that comes second finds it gone and reads the new one.
            self._clear(lease_id)
        except Exception as exc:
            log.warning(
                "vault: the proxy did not clear the refused lease of %s (%s); it may hand it out again",
                ref.path.strip("/"),
                type(exc).__name__,
            )
