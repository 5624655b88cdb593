"""The leases of dynamic Vault secrets the backend holds: handed out while young, renewed, replaced.

Kept apart from :mod:`secretkit.backends.vault`, which issues the credentials: this module
decides, per reference, whether the credential held is still the one to hand out, renews
its lease at 2/3 of its life while Vault allows, and otherwise lets a new one be issued.
It sends nothing itself; the backend passes in the calls that reach Vault.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from .._backend import Fetched
from .._errors import BackendUnavailable, SecretkitError
from .._refs import SecretRef
from ._vault_token import RENEW_AT, held_or_waited

__all__ = ["Issued", "VaultLeases"]

log = logging.getLogger("secretkit.vault")

#: What Vault answered for a new credential: ``(value, lease id, lease duration, renewable)``;
#: an empty lease id for a response that is not leased.
Issued = tuple[str | bytes, str, float, bool]


class _Lease:
    """A dynamic credential this backend holds, and when to renew or replace it."""

    __slots__ = ("duration", "expires_at", "lease_id", "renewable", "value")

    def __init__(
        self, value: str | bytes, lease_id: str, duration: float, renewable: bool, now: float
    ) -> None:
        self.value = value
        self.lease_id = lease_id
        self.duration = duration
        self.renewable = renewable
        self.expires_at = now + duration

    def fetched(self, now: float) -> Fetched:
        return Fetched(
            self.value,
            version=self.lease_id,
            ttl=max(self.expires_at - now, 0.0),
            metadata={"lease_id": self.lease_id, "renewable": str(self.renewable).lower()},
        )


class VaultLeases:
    """The credentials held per reference, one lock per reference so one request issues each.

    ``renew(ref, lease_id, increment)`` asks Vault to extend a lease and returns its
    response (``sys/leases/renew``); ``clock`` times the leases; ``lock_wait`` bounds how
    long a reader waits behind another one's request.
    """

    def __init__(
        self,
        renew: Callable[[SecretRef, str, int], Mapping[str, Any]],
        *,
        clock: Callable[[], float],
        lock_wait: float,
    ) -> None:
        self._renew_call = renew
        self._clock = clock
        self._lock_wait = lock_wait
        self._held: dict[SecretRef, _Lease] = {}
        self._new_sync()

    def _new_sync(self) -> None:
        # A forked child rebuilds these: a lock held by a parent's thread would never be released.
        self._guard = threading.Lock()
        self._locks: dict[SecretRef, threading.Lock] = {}

    def fetch(self, ref: SecretRef, issue: Callable[[], Issued], *, replace: bool = False) -> Fetched:
        """The credential held for ``ref`` while young or renewable, else a new one from ``issue()``.

        ``replace``: the held one was refused somewhere (revoked early, its user dropped), so
        a new one is issued whatever its age, for every reader of ``ref``.
        """
        with held_or_waited(self._lock(ref), self._lock_wait):
            lease = self._held.get(ref)
            if lease is not None and not replace:
                now = self._clock()
                remaining = lease.expires_at - now
                if remaining > lease.duration * (1.0 - RENEW_AT):
                    # Still young: hand out the credential we hold, so every reader (and
                    # every #field of it) sees one credential, not a new one per read.
                    return lease.fetched(now)
                if lease.renewable and remaining > 0 and self._renew(ref, lease):
                    return lease.fetched(self._clock())
            self._held.pop(ref, None)
            value, lease_id, duration, renewable = issue()
            if not lease_id:
                return Fetched(value, ttl=duration or None)
            lease = _Lease(value, lease_id, duration, renewable, self._clock())
            if duration > 0:
                self._held[ref] = lease
            log.debug(
                "vault: new lease for %s (%.0fs, renewable=%s)", ref.path.strip("/"), duration, renewable
            )
            return lease.fetched(self._clock())

    def _renew(self, ref: SecretRef, lease: _Lease) -> bool:
        """Extend ``lease`` by its own duration; ``False`` when a new credential is needed."""
        increment = round(lease.duration)
        try:
            response = self._renew_call(ref, lease.lease_id, increment)
        except BackendUnavailable:
            raise  # Vault is unreachable: the store keeps serving the credential it has
        except SecretkitError as exc:
            log.info(
                "vault: lease for %s cannot be renewed (%s); fetching a new one", ref.path, type(exc).__name__
            )
            return False
        granted = float(response.get("lease_duration") or 0)
        if granted < increment:
            # Vault capped the renewal at the lease's max_ttl: take a new credential now,
            # while the old one still works for whoever is using it.
            return False
        lease.expires_at = self._clock() + granted
        return True

    def _lock(self, ref: SecretRef) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(ref)
            if lock is None:
                lock = self._locks[ref] = threading.Lock()
            return lock

    def clear(self) -> None:
        """Forget every held lease (they run out on their own)."""
        self._held.clear()

    def after_fork(self) -> None:
        self._new_sync()
