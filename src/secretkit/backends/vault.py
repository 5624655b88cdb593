"""HashiCorp Vault and OpenBao (``vault://``): KV v1/v2 secrets and leased dynamic secrets, via hvac.

Both servers speak the same HTTP API, so one backend serves both. The token's life
(lazy login, renewal, re-login) and the leases of dynamic secrets are the two pieces of
state a Vault client must hold; everything else (caching, retries, staleness) is the
store's.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .._backend import Fetched
from .._errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    InvalidReference,
    MissingDependency,
    SecretkitError,
    SecretNotFound,
    shown,
)
from .._options import Shape, check, where
from .._refs import SecretRef
from .vault_auth import AppRoleAuth, JwtAuth, KubernetesAuth, Login, TokenAuth, VaultAuth

if TYPE_CHECKING:
    from hvac import Client

__all__ = [
    "AppRoleAuth",
    "JwtAuth",
    "KubernetesAuth",
    "Login",
    "TokenAuth",
    "TokenStatus",
    "VaultAuth",
    "VaultBackend",
]

log = logging.getLogger("secretkit.vault")

#: A token or a lease is renewed when this fraction of its life has passed (as Vault Agent does).
RENEW_AT = 2.0 / 3.0
DEFAULT_ADDR = "https://127.0.0.1:8200"  # the vault CLI's default
# Per-socket timeouts (requests applies them to the connect and to each read, not to the
# whole request). hvac's default of 30 s let one dripping response hold a caller for
# minutes; the store's total deadline (5 s by default) bounds the caller, and these keep
# an attempt the store has given up on from lingering in its worker thread much longer.
DEFAULT_TIMEOUT = 3.0
CONNECT_TIMEOUT = 2.0

_KV_OPTIONS = frozenset({"engine", "version", "key", "encoding"})
# Options of an engine=generic reference that configure secretkit; the others it accepts
# (version=, and the parameters of opted-in writes) are sent to Vault as request parameters.
_GENERIC_OPTIONS = frozenset({"engine", "method", "key", "encoding", "lease"})
_OPTIONS = _KV_OPTIONS | _GENERIC_OPTIONS
_ENGINE = Shape(r"kv|generic", "kv (the default) or generic")
_ENCODING = Shape(r"base64", "base64")
_KV_SHAPES = {
    "engine": _ENGINE,
    "encoding": _ENCODING,
    "version": Shape(r"[0-9]{1,19}", "a KV v2 version number, such as 3"),
}
# An engine=generic reference's version= is a request parameter like any other: Vault judges it.
_GENERIC_SHAPES = {
    "engine": _ENGINE,
    "encoding": _ENCODING,
    "method": Shape(r"get|post", "GET (read) or POST (write)", ignore_case=True),
    "lease": Shape(r"new", "one value, new"),
}
_TRUE = frozenset({"1", "t", "true"})

_BACKENDS: weakref.WeakSet[VaultBackend] = weakref.WeakSet()


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


class VaultBackend:
    """Reads ``vault://<mount>/<path>[#key][?version=N]`` from HashiCorp Vault or OpenBao.

    With no arguments it is configured as the vault CLI is: ``VAULT_ADDR``,
    ``VAULT_TOKEN`` (else ``~/.vault-token``), ``VAULT_NAMESPACE``, ``VAULT_CACERT`` /
    ``VAULT_CAPATH`` / ``VAULT_SKIP_VERIFY`` and ``VAULT_CLIENT_CERT`` / ``VAULT_CLIENT_KEY``.

    A KV secret is its whole data map as JSON (``#key`` picks one key, through the
    store); ``?key=NAME`` returns one key's raw value instead, and ``&encoding=base64``
    decodes it to bytes. The first path segment is the mount unless ``mount=`` is given;
    the KV version comes from the mount's options (``sys/internal/ui/mounts``, as the CLI
    does) unless ``kv_version=`` is given. ``?engine=generic`` reads any other path
    (``database/creds/app``), or writes to it with ``&method=POST`` and the remaining
    options as parameters (``pki/issue/web?engine=generic&method=POST&common_name=...``);
    a leased response is held, renewed at 2/3 of its life while renewable, and replaced
    by a new credential when it cannot be renewed or its ``max_ttl`` is near, or when a
    reference asks for it with ``&lease=new`` (the next lease, after the held one was refused).

    A reference alone never makes the backend write: ``method=POST`` is refused unless its
    path matches a pattern of ``post_paths``, which maps each pattern to the parameter
    names a reference may send there (``post_paths={"pki/issue/*": ["common_name", "ttl"]}``).

    Login is lazy and happens once; a renewable token is renewed in a background
    thread at 2/3 of its TTL (``close()`` stops it); a token Vault rejects is replaced by
    logging in again once, then the request is retried.

    ``timeout`` bounds each socket read (seconds; connecting takes at most 2), for reads,
    logins and mount look-ups alike; the store's deadline bounds the whole fetch.
    ``clock`` (monotonic seconds) times tokens and leases, and is there for tests. The
    backend remembers two things besides its token, neither of them a cache of values:
    which mount holds a path (and its KV version), and the leases it holds.
    """

    scheme = "vault"
    #: The query options a reference may carry (an instance adds its ``post_paths`` parameters);
    #: the store refuses others before asking Vault.
    options: frozenset[str] = _OPTIONS

    def __init__(
        self,
        url: str | None = None,
        auth: VaultAuth | None = None,
        namespace: str | None = None,
        mount: str | None = None,
        kv_version: int | None = None,
        verify: bool | str | None = None,
        client: Client | None = None,
        *,
        post_paths: Mapping[str, Iterable[str]] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            import hvac
            import hvac.exceptions
        except ImportError as exc:
            raise MissingDependency("vault", "hvac", "vault") from exc
        if kv_version not in (None, 1, 2):
            raise ConfigurationError(f"kv_version must be 1 or 2, not {kv_version!r}")
        self._exc: Any = hvac.exceptions
        self._post_paths: dict[str, frozenset[str]] = {
            pattern.strip("/"): frozenset(params) for pattern, params in (post_paths or {}).items()
        }
        self.options = _OPTIONS.union(*self._post_paths.values())
        self._owns_client = client is None
        # How long a request waits for another one holding the login or a lease lock. A request
        # the store abandoned at its deadline (a server dripping its answer) may hold one far
        # longer than any socket timeout; past this the waiter goes ahead without it.
        self._lock_wait = min(CONNECT_TIMEOUT, timeout) + timeout
        if client is None:
            env = os.environ
            address = url or env.get("VAULT_ADDR") or DEFAULT_ADDR
            cert = None
            if env.get("VAULT_CLIENT_CERT") and env.get("VAULT_CLIENT_KEY"):
                cert = (env["VAULT_CLIENT_CERT"], env["VAULT_CLIENT_KEY"])
            client = hvac.Client(
                url=address,
                # An empty token keeps hvac from reading VAULT_TOKEN now: login is lazy.
                token="",
                namespace=namespace if namespace is not None else (env.get("VAULT_NAMESPACE") or None),
                verify=_verify_from_env() if verify is None else verify,
                cert=cert,
                timeout=(min(CONNECT_TIMEOUT, timeout), timeout),
                proxies=_proxies_from_env(address),
            )
            # requests re-reads proxy and CA-bundle variables and ~/.netrc on every request
            # (a fifth of a loopback read); they were read once above, as VAULT_ADDR is.
            client.session.trust_env = False
        elif auth is None and client.token:
            auth = TokenAuth(token=client.token)
        self._client: Any = client
        self.url: str = client.url
        self._auth: VaultAuth = auth if auth is not None else TokenAuth()
        self._mount = mount.strip("/") if mount else None
        self._kv_version = kv_version
        self._clock = clock
        # mount path (no slashes at the ends) -> (KV version, or 0 when not KV; engine type)
        self._mounts: dict[str, tuple[int, str]] = {}
        self._leases: dict[SecretRef, _Lease] = {}
        self._closed = False
        self._generation = 0  # bumped at every login; 0 = not logged in yet
        self._token_expires: float | None = None
        self._token_ttl = 0.0
        self._renewable = False
        self._capped = False
        self._renew_at: float | None = None
        self._logins = 0
        self._renewals = 0
        self._init_sync()
        _BACKENDS.add(self)

    def _init_sync(self) -> None:
        # Everything a forked child must rebuild: its parent's threads do not exist there.
        self._cond = threading.Condition()
        self._login_lock = threading.Lock()
        self._lease_guard = threading.Lock()
        self._lease_locks: dict[SecretRef, threading.Lock] = {}
        self._renewer: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"VaultBackend(url={self.url!r}, auth={self._auth!r})"

    # -- reading -------------------------------------------------------------------------

    def option_shapes(self, ref: SecretRef) -> dict[str, Shape]:
        """The shape of each option's value for ``ref``'s engine (see ``secretkit._options``)."""
        return _GENERIC_SHAPES if ref.options.get("engine") == "generic" else _KV_SHAPES

    def fetch(self, ref: SecretRef) -> Fetched:
        # Every option value is checked here, before a mount look-up, a login or a read: a
        # malformed one is the reference's fault, not an outage. Names are checked per engine
        # below, so that a write nobody allowed is refused as such first.
        check(self.scheme, ref, None, self.option_shapes(ref))
        if ref.options.get("encoding") is not None and ref.options.get("key") is None:
            raise InvalidReference(f"{where(ref)}: encoding= applies to one key; add key=NAME")
        if ref.options.get("engine", "kv") == "generic":
            return self._fetch_generic(ref)
        return self._fetch_kv(ref)

    def _fetch_kv(self, ref: SecretRef) -> Fetched:
        options = ref.options
        check(
            self.scheme,
            ref,
            _KV_OPTIONS,
            {},
            fix="remove it from the reference (engine=generic sends other options to Vault as parameters)",
        )
        mount, sub, kv_version = self._locate(ref)
        version = options.get("version")
        client = self._client
        if kv_version == 2:
            number = _version_number(ref, version)
            response = self._request(
                ref,
                f"{mount}/data/{sub}",
                lambda: client.secrets.kv.v2.read_secret_version(
                    path=sub, version=number, mount_point=mount, raise_on_deleted_version=True
                ),
            )
            body = response["data"]
            return Fetched(_value(body["data"], ref), version=str(body["metadata"]["version"]))
        if version is not None:
            raise InvalidReference(
                f"{where(ref)}: the mount {mount!r} is KV version 1, which keeps no versions; drop ?version="
            )
        response = self._request(
            ref, f"{mount}/{sub}", lambda: client.secrets.kv.v1.read_secret(path=sub, mount_point=mount)
        )
        return Fetched(_value(response["data"], ref))

    def _locate(self, ref: SecretRef) -> tuple[str, str, int]:
        """``(mount, path inside the mount, KV version)`` for a KV reference."""
        path = ref.path.strip("/")
        full = f"{self._mount}/{path}" if self._mount else path
        if "/" not in full:
            # A plain name tried by a store's chain ("API_KEY"): not a Vault path, so not
            # here, and the chain moves on.
            raise SecretNotFound(ref.path, detail="a Vault path is <mount>/<name>, e.g. secret/app/db")
        known = self._known_mount(full)
        if known is None:
            default_mount = self._mount or full.partition("/")[0]
            if self._kv_version is not None:
                known = (default_mount, self._kv_version)
            else:
                known = self._preflight(ref, full, default_mount)
        mount, kv_version = known
        sub = full[len(mount) + 1 :]
        if not sub:
            raise SecretNotFound(ref.path, detail=f"that is the mount {mount!r} itself; name a secret in it")
        return mount, sub, kv_version

    def _known_mount(self, path: str) -> tuple[str, int] | None:
        mounts = self._mounts
        cut = path.find("/")
        while cut > 0:
            hit = mounts.get(path[:cut])
            if hit is not None:
                if not hit[0]:
                    raise _not_kv(path[:cut], hit[1])
                return path[:cut], hit[0]
            cut = path.find("/", cut + 1)
        return None

    def _preflight(self, ref: SecretRef, path: str, default_mount: str) -> tuple[str, int]:
        # The vault CLI asks the same endpoint which mount holds a path and its KV version;
        # any token with a capability on the path may ask.
        api = f"sys/internal/ui/mounts/{path}"
        try:
            response = self._request(
                ref, api, lambda: self._client.adapter.get("/v1/" + quote(api, safe="/"))
            )
        except (AccessDenied, SecretNotFound):
            # No such mount, or one this token may not see: read it as KV v2 under its
            # first segment and let that read say what is wrong. Not remembered: the
            # mount may appear later.
            return default_mount, 2
        data = response["data"]
        mount = str(data["path"]).strip("/")
        engine = str(data.get("type") or "")
        kv_version = 0
        if engine in ("kv", "generic"):
            kv_version = 2 if str((data.get("options") or {}).get("version") or "1") == "2" else 1
        self._mounts[mount] = (kv_version, engine)
        if not kv_version:
            raise _not_kv(mount, engine)
        return mount, kv_version

    def _fetch_generic(self, ref: SecretRef) -> Fetched:
        method = ref.options.get("method", "GET").upper()
        self._check_generic(ref, method)
        fresh = ref.options.get("lease")
        if fresh is not None:
            # The credential held for the reference without lease=new was refused somewhere
            # (revoked early, its user dropped): replace it, for that reference's readers too.
            ref = ref.replace(options={k: v for k, v in ref.options.items() if k != "lease"})
        with _held_or_waited(self._lease_lock(ref), self._lock_wait):
            lease = self._leases.get(ref)
            if lease is not None and fresh is None:
                now = self._clock()
                remaining = lease.expires_at - now
                if remaining > lease.duration * (1.0 - RENEW_AT):
                    # Still young: hand out the credential we hold, so every reader (and
                    # every #field of it) sees one credential, not a new one per read.
                    return lease.fetched(now)
                if lease.renewable and remaining > 0 and self._renew_lease(ref, lease):
                    return lease.fetched(self._clock())
            self._leases.pop(ref, None)
            return self._new_credential(ref, method)

    def _check_generic(self, ref: SecretRef, method: str) -> None:
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
            _GENERIC_OPTIONS.union(*allowed),
            {},
            fix=f"it is not allowed for a write to {path!r}: list it in VaultBackend(post_paths=...) "
            "for its pattern",
        )

    def _new_credential(self, ref: SecretRef, method: str) -> Fetched:
        path = ref.path.strip("/")
        params = {k: v for k, v in ref.options.items() if k not in _GENERIC_OPTIONS}
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
        value = _value(response["data"], ref)
        lease_id = str(response.get("lease_id") or "")
        duration = float(response.get("lease_duration") or 0)
        if not lease_id:
            return Fetched(value, ttl=duration or None)
        lease = _Lease(value, lease_id, duration, bool(response.get("renewable")), self._clock())
        if duration > 0:
            self._leases[ref] = lease
        log.debug("vault: new lease for %s (%.0fs, renewable=%s)", path, duration, lease.renewable)
        return lease.fetched(self._clock())

    def _renew_lease(self, ref: SecretRef, lease: _Lease) -> bool:
        """Extend ``lease`` by its own duration; ``False`` when a new credential is needed."""
        increment = round(lease.duration)
        try:
            response = self._request(
                ref,
                "sys/leases/renew",
                lambda: self._client.sys.renew_lease(lease_id=lease.lease_id, increment=increment),
            )
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

    def _lease_lock(self, ref: SecretRef) -> threading.Lock:
        with self._lease_guard:
            lock = self._lease_locks.get(ref)
            if lock is None:
                lock = self._lease_locks[ref] = threading.Lock()
            return lock

    # -- requests, token and errors ------------------------------------------------------

    def _request(self, ref: SecretRef, api_path: str, call: Callable[[], Any]) -> Any:
        """``call()`` with a valid token: logs in first if needed, and once again on a rejected token."""
        if self._closed:
            raise BackendUnavailable(f"the vault backend for {self.url} is closed; build a new one")
        generation = self._ensure_token()
        try:
            return call()
        except Exception as exc:
            if not isinstance(exc, self._exc.Forbidden) or not self._token_rejected():
                raise self._error(exc, ref, api_path) from exc
            if not self._auth.relogin:
                raise self._rejected(ref) from exc
            log.info("vault: the token was rejected; logging in again (%s)", self._auth.method)
        self._login(generation)
        try:
            return call()
        except Exception as exc:
            raise self._error(exc, ref, api_path) from exc

    def _ensure_token(self) -> int:
        generation = self._generation
        if generation:
            expires = self._token_expires
            if expires is None or self._clock() < expires or not self._auth.relogin:
                return generation
        self._login(generation)
        return self._generation

    def _login(self, seen: int) -> None:
        """Log in, unless another thread already replaced the token generation ``seen``."""
        with _held_or_waited(self._login_lock, self._lock_wait):
            if self._generation != seen:
                return
            try:
                login = self._auth.login(self._client)
            except SecretkitError:
                raise
            except Exception as exc:
                raise self._login_error(exc) from exc
            self._client.token = login.token
            self._adopt(login)

    def _adopt(self, login: Login) -> None:
        now = self._clock()
        with self._cond:
            self._token_ttl = login.ttl or 0.0
            self._token_expires = now + login.ttl if login.ttl else None
            self._renewable = login.renewable
            self._capped = False
            self._generation += 1
            self._logins += 1
            due = None
            if login.ttl and (login.renewable or self._auth.relogin):
                due = now + login.ttl * RENEW_AT
            self._schedule_locked(due)
        log.debug(
            "vault: logged in (%s, ttl=%s, renewable=%s)", self._auth.method, login.ttl, login.renewable
        )

    def _token_rejected(self) -> bool:
        """Whether a 403 came from the token itself (expired, revoked) rather than its policies."""
        try:
            self._client.auth.token.lookup_self()
        except self._exc.Forbidden:
            return True
        except Exception:
            return False
        return False

    def _rejected(self, ref: SecretRef) -> AccessDenied:
        return AccessDenied(
            f"the vault backend could not read {ref.path!r}: Vault rejected the token (expired or revoked) "
            f"and {self._auth!r} cannot log in again; renew the token or use AppRoleAuth / JwtAuth / "
            "KubernetesAuth, which log in again by themselves"
        )

    def _error(self, exc: BaseException, ref: SecretRef, api_path: str) -> SecretkitError:
        if isinstance(exc, SecretkitError):
            return exc
        errors = self._exc
        if isinstance(exc, errors.InvalidPath):
            return SecretNotFound(ref.path)
        if isinstance(exc, (errors.Forbidden, errors.Unauthorized)):
            return AccessDenied(
                f"the vault backend was denied {ref.path!r}: the token's policies do not allow "
                f"{api_path!r}; grant it in the policy of the token or role "
                f'(path "{api_path}" {{ capabilities = ["read"] }})'
            )
        if isinstance(exc, errors.VaultDown):
            return BackendUnavailable(
                f"the vault backend could not read {ref.path!r}: Vault at {self.url} is sealed or "
                "unavailable (503)"
            )
        if isinstance(exc, errors.InvalidRequest):
            return ConfigurationError(
                f"the vault backend's request for {ref.path!r} was refused as invalid "
                f"(400: {_vault_errors(exc)}); check the reference and its options"
            )
        return BackendUnavailable(
            f"the vault backend could not read {ref.path!r} from {self.url} ({type(exc).__name__}); "
            "check that Vault is reachable"
        )

    def _login_error(self, exc: BaseException) -> SecretkitError:
        errors = self._exc
        if isinstance(
            exc, (errors.InvalidRequest, errors.Forbidden, errors.Unauthorized, errors.InvalidPath)
        ):
            return AccessDenied(
                f"the vault backend could not log in with {self._auth!r} ({_vault_errors(exc)}); "
                "check the auth method's mount, role and credentials"
            )
        return BackendUnavailable(
            f"the vault backend could not log in to {self.url} with {self._auth!r} ({type(exc).__name__}); "
            "check that Vault is reachable"
        )

    # -- token renewal -------------------------------------------------------------------

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
                self._renew_token(generation)
            except Exception as exc:
                self._renewal_failed(generation, exc)

    def _renew_token(self, generation: int) -> None:
        if not (self._renewable and not self._capped):
            if self._auth.relogin:
                self._login(generation)
            return
        increment = round(self._token_ttl)
        try:
            response = self._client.auth.token.renew_self(increment=increment)
        except self._exc.Forbidden:
            if not self._auth.relogin:
                raise
            log.info("vault: the token could not be renewed; logging in again (%s)", self._auth.method)
            self._login(generation)
            return
        granted = float(response["auth"].get("lease_duration") or 0)
        now = self._clock()
        with self._cond:
            if self._generation != generation:
                return  # a login replaced the token meanwhile; it has its own schedule
            self._renewals += 1
            self._token_expires = now + granted if granted else None
            # Capped by the token's max TTL: renewing again gains nothing; log in again
            # at 2/3 of what is left, or let it run out if we cannot.
            self._capped = granted < increment
            due = None
            if granted and (not self._capped or self._auth.relogin):
                due = now + granted * RENEW_AT
            self._schedule_locked(due)
        log.debug("vault: token renewed for %.0fs", granted)

    def _renewal_failed(self, generation: int, exc: BaseException) -> None:
        log.warning("vault: renewing the token failed (%s); will retry", type(exc).__name__)
        now = self._clock()
        with self._cond:
            if self._generation != generation:
                return
            expires = self._token_expires
            left = None if expires is None else expires - now
            if left is not None and left <= 0:
                # Expired: the next request logs in again (or reports the rejected token).
                self._schedule_locked(None)
            else:
                self._schedule_locked(now + min(30.0, max(1.0, (left or 90.0) / 3)))

    # -- status and lifecycle ------------------------------------------------------------

    def token_status(self) -> TokenStatus:
        """The token's method, remaining TTL and renewability, and login/renewal counts."""
        with self._cond:
            expires = self._token_expires
            return TokenStatus(
                method=self._auth.method,
                logged_in=self._generation > 0,
                ttl=None if expires is None else max(expires - self._clock(), 0.0),
                renewable=self._renewable,
                logins=self._logins,
                renewals=self._renewals,
            )

    def close(self) -> None:
        """Stop token renewal, forget held leases (they run out on their own) and close the session."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._renew_at = None
            self._cond.notify_all()
            renewer = self._renewer
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(5.0)
        self._leases.clear()
        if self._owns_client:
            self._client.adapter.close()

    def _after_fork(self) -> None:
        due = self._renew_at
        self._init_sync()
        if self._owns_client:
            import requests

            # Sharing the parent's pooled connections would interleave two processes'
            # requests on one socket.
            session = requests.Session()
            session.trust_env = False
            self._client.session = session
        if due is not None and not self._closed:
            with self._cond:
                self._schedule_locked(due)


@contextmanager
def _held_or_waited(lock: threading.Lock, wait: float) -> Iterator[None]:
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


def _after_fork_in_child() -> None:
    for backend in list(_BACKENDS):
        backend._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _verify_from_env() -> bool | str:
    env = os.environ
    if env.get("VAULT_SKIP_VERIFY", "").strip().lower() in _TRUE:
        return False
    # The vault CLI's variables first, then the ones requests itself would have honoured.
    return (
        env.get("VAULT_CACERT")
        or env.get("VAULT_CAPATH")
        or env.get("REQUESTS_CA_BUNDLE")
        or env.get("CURL_CA_BUNDLE")
        or True
    )


def _proxies_from_env(url: str) -> dict[str, str] | None:
    proxy = os.environ.get("VAULT_PROXY_ADDR") or os.environ.get("VAULT_HTTP_PROXY")
    if proxy:
        return {"http": proxy, "https": proxy}
    from requests.utils import get_environ_proxies

    # HTTP(S)_PROXY / ALL_PROXY, minus NO_PROXY, for this one address.
    found = get_environ_proxies(url)
    return dict(found) or None


def _version_number(ref: SecretRef, version: str | None) -> int | None:
    if version is None:
        return None
    if not version.isdigit():
        raise InvalidReference(f"{where(ref)}: ?version= takes a KV v2 version number")
    return int(version)


def _value(data: Any, ref: SecretRef) -> str | bytes:
    """The whole data map as JSON, or with ``?key=`` one key's raw value."""
    if not isinstance(data, Mapping):
        raise SecretNotFound(ref.path, detail="Vault returned no key/value data there")
    # encoding= and key= were checked by fetch(), before any request.
    key = ref.options.get("key")
    encoding = ref.options.get("encoding")
    if key is None:
        return json.dumps(data, ensure_ascii=False)
    if key not in data:
        # Not named: like every option value, ?key= is masked where the reference is shown.
        raise SecretNotFound(ref.path, detail="it has no key by the name ?key= gives")
    item = data[key]
    text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
    if encoding is None:
        return text
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        # The decoder's message never quotes its input; ours names only the key.
        # The key is named: it is one the secret has, so a key name, not a value pasted in a reference.
        raise ConfigurationError(f"{where(ref)}: the key {shown(key)} does not hold valid base64") from None


def _not_kv(mount: str, engine: str) -> InvalidReference:
    return InvalidReference(
        f"the Vault mount {mount!r} is a {engine or 'non-KV'} engine, not KV; "
        f"read it with ?engine=generic (vault://{mount}/...?engine=generic)"
    )


def _vault_errors(exc: BaseException) -> str:
    # Vault's error strings describe the request (a role, a claim, a path), never a secret.
    found = getattr(exc, "errors", None)
    text = "; ".join(str(e).strip() for e in found) if found else type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."
