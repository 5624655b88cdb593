"""The Vault backend's token: lazy login, renewal in the background, and logging in again.

Kept apart from :mod:`secretkit.backends.vault`, which reads, and from
:mod:`secretkit.backends.vault_auth`, which holds the auth methods: this module holds the
token's life between them. ``RENEW_AT`` and :func:`held_or_waited` are shared with the
leases (:mod:`secretkit.backends._vault_leases`), which live by the same rules.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from .._errors import AccessDenied, BackendUnavailable, SecretkitError
from .vault_auth import Login, VaultAuth

__all__ = ["RENEW_AT", "TokenStatus", "VaultToken", "held_or_waited", "vault_errors"]

log = logging.getLogger("secretkit.vault")

#: A token or a lease is renewed when this fraction of its life has passed (as Vault Agent does).
RENEW_AT = 2.0 / 3.0
#: Seconds between two looks (a ``stat``) at the auth method's credential files.
CHECK_EVERY = 1.0


@dataclass(frozen=True)
class TokenStatus:
    """What the backend knows about its token, for health checks and tests. Never the token."""

    method: str
    logged_in: bool
    #: Seconds left as tracked locally; ``None`` when the token never expires or its TTL is unknown.
    ttl: float | None
    renewable: bool
    logins: int
    renewals: int


class VaultToken:
    """The token a Vault client sends: logged in on first use, renewed at 2/3 of its TTL.

    ``call`` runs a request with a valid token and, when Vault rejects the token itself
    (expired, revoked), logs in again once and retries. A renewable token is renewed in a
    background thread (``close()`` stops it); one that cannot be renewed is replaced by
    logging in again where the auth method can (``auth.relogin``). ``errors`` is
    ``hvac.exceptions``; ``url`` names the server in messages.
    """

    def __init__(
        self,
        client: Any,
        auth: VaultAuth,
        *,
        errors: Any,
        url: str,
        clock: Callable[[], float],
        lock_wait: float,
    ) -> None:
        self._client = client
        self.auth = auth
        self._exc = errors
        self._url = url
        self._clock = clock
        self._lock_wait = lock_wait
        self._closed = False
        self._generation = 0  # bumped at every login; 0 = not logged in yet
        self._expires: float | None = None
        self._ttl = 0.0
        self._renewable = False
        self._capped = False
        self._renew_at: float | None = None
        self._logins = 0
        self._renewals = 0
        self._next_check = 0.0
        self._new_sync()

    def _new_sync(self) -> None:
        # Everything a forked child must rebuild: its parent's threads do not exist there.
        self._cond = threading.Condition()
        self._login_lock = threading.Lock()
        self._renewer: threading.Thread | None = None

    # -- using the token -----------------------------------------------------------------

    def call(
        self,
        call: Callable[[], Any],
        error: Callable[[BaseException], SecretkitError],
        rejected: Callable[[], SecretkitError],
    ) -> Any:
        """``call()`` with a valid token: logs in first if needed, and once again on a rejected token.

        ``error`` maps what ``call`` raised; ``rejected`` is raised when Vault rejected the
        token and the auth method cannot log in again.
        """
        generation = self._ensure()
        try:
            return call()
        except Exception as exc:
            if not isinstance(exc, self._exc.Forbidden) or not self._token_rejected():
                raise error(exc) from exc
            if not self.auth.relogin:
                raise rejected() from exc
            log.info("vault: the token was rejected; logging in again (%s)", self.auth.method)
        self._login(generation)
        try:
            return call()
        except Exception as exc:
            raise error(exc) from exc

    def _ensure(self) -> int:
        generation = self._generation
        if generation:
            expires = self._expires
            if expires is None or self._clock() < expires or not self.auth.relogin:
                if self._credential_changed():
                    self._login_on_change(generation)
                return self._generation
        self._login(generation)
        return self._generation

    def _credential_changed(self) -> bool:
        """Whether the auth method's credential files changed since its login (a stat, once a second)."""
        now = self._clock()
        if now < self._next_check:
            return False
        self._next_check = now + CHECK_EVERY
        changed = getattr(self.auth, "changed", None)
        return bool(self.auth.relogin and changed is not None and changed())

    def _login_on_change(self, generation: int) -> None:
        try:
            self._login(generation)
        except SecretkitError as exc:
            # A half-written or wrong new file must not cost the token that still works.
            log.warning(
                "vault: a credential file of %s changed, but logging in with it failed (%s); "
                "keeping the current token",
                self.auth.method,
                type(exc).__name__,
            )

    def _login(self, seen: int) -> None:
        """Log in, unless another thread already replaced the token generation ``seen``."""
        with held_or_waited(self._login_lock, self._lock_wait):
            if self._generation != seen:
                return
            try:
                login = self.auth.login(self._client)
            except Exception as exc:
                error = exc if isinstance(exc, SecretkitError) else self._login_error(exc)
                if seen and not isinstance(error, BackendUnavailable):
                    # Logging in worked before: a refusal now is an outage of the login, not a
                    # verdict on the secrets, and the store serves held values within max_stale.
                    raise BackendUnavailable(
                        f"the vault backend could not log in again with {self.auth!r}: {error}"
                    ) from exc
                if error is exc:
                    raise
                raise error from exc
            self._client.token = login.token
            self._adopt(login)

    def _adopt(self, login: Login) -> None:
        now = self._clock()
        with self._cond:
            self._ttl = login.ttl or 0.0
            self._expires = now + login.ttl if login.ttl else None
            self._renewable = login.renewable
            self._capped = False
            self._generation += 1
            self._logins += 1
            due = None
            if login.ttl and (login.renewable or self.auth.relogin):
                due = now + login.ttl * RENEW_AT
            self._schedule_locked(due)
        log.debug("vault: logged in (%s, ttl=%s, renewable=%s)", self.auth.method, login.ttl, login.renewable)

    def _token_rejected(self) -> bool:
        """Whether a 403 came from the token itself (expired, revoked) rather than its policies."""
        try:
            self._client.auth.token.lookup_self()
        except self._exc.Forbidden:
            return True
        except Exception:
            return False
        return False

    def _login_error(self, exc: BaseException) -> SecretkitError:
        errors = self._exc
        if isinstance(
            exc, (errors.InvalidRequest, errors.Forbidden, errors.Unauthorized, errors.InvalidPath)
        ):
            return AccessDenied(
                f"the vault backend could not log in with {self.auth!r} ({vault_errors(exc)}); "
                "check the auth method's mount, role and credentials"
            )
        from ._vault_nodes import NodeError  # requests, which comes with hvac

        if isinstance(exc, NodeError):
            # It names the nodes tried and what each did (addresses, never a token).
            return BackendUnavailable(f"the vault backend could not log in with {self.auth!r}: {exc}")
        return BackendUnavailable(
            f"the vault backend could not log in to {self._url} with {self.auth!r} ({type(exc).__name__}); "
            "check that Vault is reachable"
        )

    # -- renewal -------------------------------------------------------------------------

    def _schedule_locked(self, due: float | None) -> None:
        # Called with self._cond held.
        self._renew_at = due
        if due is None or self._closed:
            return
        if self._renewer is None or not self._renewer.is_alive():
            self._renewer = threading.Thread(
                target=self._renew_loop, name="secretkit-vault-renew", daemon=True
            )
            self._renewer.start()
        self._cond.notify_all()

    def _renew_loop(self) -> None:
        while True:
            with self._cond:
                while True:
                    due = self._renew_at
                    if self._closed or due is None:
                        # Nothing to renew: let the thread go; the next login starts another.
                        self._renewer = None
                        return
                    delay = due - self._clock()
                    if delay <= 0:
                        break
                    self._cond.wait(delay)
                self._renew_at = None
                generation = self._generation
            try:
                self._renew(generation)
            except Exception as exc:
                self._renewal_failed(generation, exc)

    def _renew(self, generation: int) -> None:
        if not (self._renewable and not self._capped):
            if self.auth.relogin:
                self._login(generation)
            return
        increment = round(self._ttl)
        try:
            response = self._client.auth.token.renew_self(increment=increment)
        except self._exc.Forbidden:
            if not self.auth.relogin:
                raise
            log.info("vault: the token could not be renewed; logging in again (%s)", self.auth.method)
            self._login(generation)
            return
        granted = float(response["auth"].get("lease_duration") or 0)
        now = self._clock()
        with self._cond:
            if self._generation != generation:
                return  # a login replaced the token meanwhile; it has its own schedule
            self._renewals += 1
            self._expires = now + granted if granted else None
            # Capped by the token's max TTL: renewing again gains nothing; log in again
            # at 2/3 of what is left, or let it run out if we cannot.
            self._capped = granted < increment
            due = None
            if granted and (not self._capped or self.auth.relogin):
                due = now + granted * RENEW_AT
            self._schedule_locked(due)
        log.debug("vault: token renewed for %.0fs", granted)

    def _renewal_failed(self, generation: int, exc: BaseException) -> None:
        log.warning("vault: renewing the token failed (%s); will retry", type(exc).__name__)
        now = self._clock()
        with self._cond:
            if self._generation != generation:
                return
            expires = self._expires
            left = None if expires is None else expires - now
            if left is not None and left <= 0:
                # Expired: the next request logs in again (or reports the rejected token).
                self._schedule_locked(None)
            else:
                self._schedule_locked(now + min(30.0, max(1.0, (left or 90.0) / 3)))

    # -- status and lifecycle ------------------------------------------------------------

    def status(self) -> TokenStatus:
        """The token's method, remaining TTL and renewability, and login/renewal counts."""
        with self._cond:
            expires = self._expires
            return TokenStatus(
                method=self.auth.method,
                logged_in=self._generation > 0,
                ttl=None if expires is None else max(expires - self._clock(), 0.0),
                renewable=self._renewable,
                logins=self._logins,
                renewals=self._renewals,
            )

    def close(self) -> bool:
        """Stop renewing; ``False`` when it was already closed."""
        with self._cond:
            if self._closed:
                return False
            self._closed = True
            self._renew_at = None
            self._cond.notify_all()
            renewer = self._renewer
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(5.0)
        return True

    def after_fork(self) -> None:
        """In a forked child: new locks, and the renewal thread started again if one was due."""
        due = self._renew_at
        self._new_sync()
        if due is not None and not self._closed:
            with self._cond:
                self._schedule_locked(due)


@contextmanager
def held_or_waited(lock: threading.Lock, wait: float) -> Iterator[None]:
    """Hold ``lock`` for the block, or run it without the lock once ``wait`` seconds have passed.

    Serialising logins and lease renewals saves duplicate requests, nothing more: a second
    login or credential is harmless, while a caller stuck behind a hung request is not.
    """
    acquired = lock.acquire(timeout=wait)
    try:
        yield
    finally:
        if acquired:
            lock.release()


def vault_errors(exc: BaseException) -> str:
    """Vault's error strings for ``exc``, cut short: they describe the request, never a secret."""
    # A role, a claim, a path: what Vault's errors name.
    found = getattr(exc, "errors", None)
    text = "; ".join(str(e).strip() for e in found) if found else type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."
