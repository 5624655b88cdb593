"""HashiCorp Vault and OpenBao (``vault://``): KV v1/v2 secrets and leased dynamic secrets, via hvac.

Both servers speak the same HTTP API, so one backend serves both. This module reads; the
token's life (lazy login, renewal, re-login) is :mod:`~secretkit.backends._vault_token`'s, the
leases of dynamic secrets :mod:`~secretkit.backends._vault_leases`' (behind a Vault Agent or
OpenBao Proxy, :mod:`~secretkit.backends._vault_proxy`'s) and the auth methods
:mod:`~secretkit.backends.vault_auth`'s. Everything else (caching, retries, staleness) is the
store's.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .. import _fork
from .._backend import Fetched
from .._backend_class import Probe, Setting
from .._errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    InvalidReference,
    MissingDependency,
    SecretkitError,
    SecretNotFound,
    shown,
    without_userinfo,
)
from .._options import Shape, check, where
from .._refs import SecretRef
from .._throttled import Throttled
from ._defaulted import noted
from ._http import CEILING, last_retry_after, pooled
from ._vault_leases import Issued, VaultLeases
from ._vault_mounts import VaultMounts
from ._vault_proxy import ProxyLeases
from ._vault_token import TokenStatus, VaultToken, vault_errors
from .vault_auth import (
    AppRoleAuth,
    AwsIamAuth,
    CertAuth,
    JwtAuth,
    KubernetesAuth,
    Login,
    ProxyAuth,
    TokenAuth,
    VaultAuth,
    auth_from_env,
)

if TYPE_CHECKING:
    from hvac import Client

    from ._vault_nodes import VaultNodes

__all__ = [
    "AppRoleAuth",
    "AwsIamAuth",
    "CertAuth",
    "JwtAuth",
    "KubernetesAuth",
    "Login",
    "ProxyAuth",
    "TokenAuth",
    "TokenStatus",
    "VaultAuth",
    "VaultBackend",
]

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
# What doctor's probe makes of /v1/sys/health's status (which Vault encodes in it).
_HEALTH = {
    200: (True, "active, unsealed"),
    429: (True, "standby, unsealed"),
    472: (True, "disaster-recovery secondary"),
    473: (True, "performance standby"),
    501: (False, "not initialized"),
    503: (False, "sealed"),
}


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

    ``addresses`` lists the nodes of a cluster (``url`` is one address: a node or a load
    balancer): each request goes to the node that answered last, and to the next one when a
    node refuses, stops answering or cannot serve, within one time budget; a standby's
    redirect is followed only to a listed address (see :mod:`~secretkit.backends._vault_nodes`).

    Behind a Vault Agent or OpenBao Proxy (``VAULT_AGENT_ADDR``, which the vault CLI prefers
    to ``VAULT_ADDR``; ``url=`` and ``addresses=`` still win) with auto-auth and
    ``use_auto_auth_token``, ``auth=ProxyAuth()`` (the default there when no ``VAULT_TOKEN`` is
    set) sends no token: the proxy logs in once for the host and renews its token. A leased
    credential is then the proxy's: it caches it and renews it, every process on the host gets
    the same one, and the backend neither holds nor renews it but asks the proxy again at
    10 % of its duration (``&lease=new`` first clears it from the proxy's cache).

    ``timeout`` bounds each socket read (seconds; connecting takes at most 2), for reads,
    logins and mount look-ups alike; the store's deadline bounds the whole fetch.
    ``clock`` (monotonic seconds) times tokens and leases, and is there for tests. The
    backend remembers two things besides its token, neither of them a cache of values:
    which mount holds a path (and its KV version), and the leases it holds.
    """

    scheme = "vault"
    #: The most requests in flight at once (the store adapts below it); the connection pool's size.
    concurrency = CEILING
    #: The query options a reference may carry (an instance adds its ``post_paths`` parameters);
    #: the store refuses others before asking Vault.
    options: frozenset[str] = _OPTIONS
    #: What ``secretkit doctor`` reports as this backend's configuration (the vault CLI's variables).
    settings = (
        Setting("VAULT_ADDR", shown=True),
        Setting("VAULT_AGENT_ADDR", shown=True),
        Setting("VAULT_TOKEN"),
        Setting("VAULT_AUTH_METHOD", shown=True),
        Setting("VAULT_NAMESPACE", shown=True),
        Setting("VAULT_CACERT", shown=True),
        Setting("VAULT_SKIP_VERIFY", shown=True),
        Setting("~/.vault-token", file=True),
    )

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
        addresses: Sequence[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            import hvac
            import hvac.exceptions
        except ImportError as exc:
            raise MissingDependency("vault", "hvac", "vault") from exc
        from ._vault_nodes import VaultNodes  # requests, which comes with hvac

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
        self.nodes: VaultNodes | None = None
        if addresses is not None and (url is not None or client is not None):
            raise ConfigurationError("give the vault backend addresses=[...] or url= (or client=), not both")
        #: What an error adds when the address is one nobody gave (doctor is not the only one to say).
        self._defaulted = ""
        if auth is None and client is not None and client.token:
            auth = TokenAuth(token=client.token)
        # No auth= : the method VAULT_AUTH_METHOD names, else a token as the vault CLI finds it,
        # else (VAULT_AGENT_ADDR set, no token) the proxy's own token.
        self._auth: VaultAuth = auth if auth is not None else auth_from_env()
        #: Whether a Vault Agent / OpenBao Proxy adds its token, and so owns the leases it issues.
        self.proxied = isinstance(self._auth, ProxyAuth)
        if client is None:
            env = os.environ
            # As Vault's own client: the agent's address, when set, over VAULT_ADDR.
            from_env = env.get("VAULT_AGENT_ADDR") or env.get("VAULT_ADDR")
            address = (addresses[0] if addresses else None) or url or from_env or DEFAULT_ADDR
            if address == DEFAULT_ADDR and not (addresses or url or from_env):
                self._defaulted = f"VAULT_ADDR is not set, so the vault CLI's default {DEFAULT_ADDR} was used"
            # Validated before hvac sees it; one request's tries over every node fit the time
            # a caller waits for a lock (one connect and one read).
            self.nodes = VaultNodes(
                addresses or [address], budget=self._lock_wait, consistency=not self.proxied
            )
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
            # hvac passes verify, cert and proxies with each request; the session picks the node.
            client.session = self.nodes.session()
        self._client: Any = client
        if self._owns_client:
            pooled(client.session)
        self.url: str = client.url
        if self.proxied:
            self._defaulted = (
                f"requests go through the Vault Agent / OpenBao Proxy at {without_userinfo(self.url)} with "
                "its auto-auth token: check that it runs, has logged in, and that its role's policies "
                "allow the path"
            )
        self._mount = mount.strip("/") if mount else None
        self._kv_version = kv_version
        self._clock = clock
        self._mounts = VaultMounts(self._ask_mount, self._lock_wait)
        self._closed = False
        self._token = VaultToken(
            client, self._auth, errors=self._exc, url=self.url, clock=clock, lock_wait=self._lock_wait
        )
        self._leases = VaultLeases(self._renew_lease, clock=clock, lock_wait=self._lock_wait)
        self._proxy_leases = ProxyLeases(self._clear_at_proxy, self._leases)
        _fork.track(self)

    def __repr__(self) -> str:
        if self.nodes is not None and len(self.nodes.addresses) > 1:
            return f"VaultBackend(addresses={self.nodes.addresses!r}, auth={self._auth!r})"
        return f"VaultBackend(url={self.url!r}, auth={self._auth!r})"

    # -- what the tools ask of the class ---------------------------------------------------

    @classmethod
    def reachability(cls, env: Mapping[str, str], refs: Sequence[SecretRef]) -> Probe:
        """GET ``/v1/sys/health`` at ``VAULT_ADDR`` (else the CLI's default): it answers without a token."""
        setting = "VAULT_AGENT_ADDR" if env.get("VAULT_AGENT_ADDR") else "VAULT_ADDR"
        address = env.get(setting)
        note = None
        if not address:
            address = DEFAULT_ADDR
            note = f"VAULT_ADDR is not set: the backend uses {address}, as the vault CLI does"
        skip = env.get("VAULT_SKIP_VERIFY", "").lower() in ("1", "true", "yes")
        return Probe(
            url=address,
            path="/v1/sys/health",
            setting=setting,
            judge=_health,
            verify=not skip,
            cafile=None if skip else (env.get("VAULT_CACERT") or None),
            cafile_setting="VAULT_CACERT",
            note=note,
        )

    @classmethod
    def pending_reference(cls, ref: SecretRef) -> SecretRef | None:
        """For a leased credential (``engine=generic``), the next lease: ``&lease=new``.

        The backend then issues a new credential in place of the one it holds, which the
        database may have stopped accepting before its lease ran out (revoked early, its
        user dropped). A KV secret has no pending version.
        """
        options = ref.options
        if options.get("engine") == "generic" and "lease" not in options:
            return ref.replace(options={**options, "lease": "new"})
        return None

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
        known = self._mounts.learnt(full)
        if known is None:
            default_mount = self._mount or full.partition("/")[0]
            if self._kv_version is not None:
                known = (default_mount, self._kv_version)
            else:
                known = self._mounts.find(ref, full, default_mount)
        mount, kv_version = known
        sub = full[len(mount) + 1 :]
        if not sub:
            raise SecretNotFound(ref.path, detail=f"that is the mount {mount!r} itself; name a secret in it")
        return mount, sub, kv_version

    def _ask_mount(self, ref: SecretRef, api: str) -> Any:
        return self._request(ref, api, lambda: self._client.adapter.get("/v1/" + quote(api, safe="/")))

    def _fetch_generic(self, ref: SecretRef) -> Fetched:
        method = ref.options.get("method", "GET").upper()
        self._check_generic(ref, method)
        replace = ref.options.get("lease") is not None
        if replace:
            # The credential held for the reference without lease=new was refused somewhere
            # (revoked early, its user dropped): replace it, for that reference's readers too.
            ref = ref.replace(options={k: v for k, v in ref.options.items() if k != "lease"})
        if self.proxied:
            return self._proxy_leases.fetch(ref, lambda: self._issue(ref, method), replace=replace)
        return self._leases.fetch(ref, lambda: self._issue(ref, method), replace=replace)

    def _clear_at_proxy(self, lease_id: str) -> Any:
        return self._client.adapter.post("/proxy/v1/cache-clear", json={"type": "lease", "value": lease_id})

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

    def _issue(self, ref: SecretRef, method: str) -> Issued:
        """A new credential: Vault's answer to ``method`` on the reference's path."""
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
        return (
            _value(response["data"], ref),
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

    # -- requests and errors ---------------------------------------------------------------

    def _request(self, ref: SecretRef, api_path: str, call: Callable[[], Any]) -> Any:
        """``call()`` with a valid token (see :class:`VaultToken`), its errors mapped for ``ref``."""
        if self._closed:
            raise BackendUnavailable(f"the vault backend for {self.url} is closed; build a new one")
        try:
            return self._token.call(
                call,
                lambda exc: _request_error(self._exc, self.url, exc, ref, api_path),
                lambda: self._rejected(ref),
            )
        except SecretkitError as exc:
            noted(exc, self._defaulted)
            raise

    def _rejected(self, ref: SecretRef) -> AccessDenied:
        return AccessDenied(
            f"the vault backend could not read {ref.path!r}: Vault rejected the token (expired or revoked) "
            f"and {self._auth!r} cannot log in again; renew the token or use AppRoleAuth / JwtAuth / "
            "KubernetesAuth, which log in again by themselves"
        )

    # -- status and lifecycle ------------------------------------------------------------

    def token_status(self) -> TokenStatus:
        """The token's method, remaining TTL and renewability, and login/renewal counts."""
        return self._token.status()

    def close(self) -> None:
        """Stop token renewal, forget held leases (they run out on their own) and close the session."""
        if self._closed:
            return
        self._closed = True
        if not self._token.close():
            return
        self._leases.clear()
        if self._owns_client:
            self._client.adapter.close()

    def _after_fork(self) -> None:
        self._leases.after_fork()
        self._mounts.after_fork()
        if self.nodes is not None:
            # Sharing the parent's pooled connections would interleave two processes'
            # requests on one socket.
            self._client.session = pooled(self.nodes.session())
        # Last: it may start the renewal thread, which must find the child's own session.
        self._token.after_fork()


def _request_error(
    errors: Any, url: str, exc: BaseException, ref: SecretRef, api_path: str
) -> SecretkitError:
    """What a failed request for ``ref`` means, as one of our errors (``errors`` is hvac's)."""
    if isinstance(exc, SecretkitError):
        return exc
    from ._vault_nodes import NodeError

    if isinstance(exc, NodeError):
        # It names the nodes tried and what each did (addresses, never a token).
        return BackendUnavailable(f"the vault backend could not read {ref.path!r}: {exc}")
    if isinstance(exc, errors.InvalidPath):
        return SecretNotFound(ref.path)
    if isinstance(exc, (errors.Forbidden, errors.Unauthorized)):
        return AccessDenied(
            f"the vault backend was denied {ref.path!r}: the token's policies do not allow "
            f"{api_path!r}; grant it in the policy of the token or role "
            f'(path "{api_path}" {{ capabilities = ["read"] }})'
        )
    if isinstance(exc, errors.RateLimitExceeded):
        return Throttled(
            f"the vault backend could not read {ref.path!r}: Vault at {url} refused the request for load "
            "(429, a rate limit quota); secretkit sends fewer requests at once until it recovers",
            retry_after=last_retry_after(),
            status=429,
        )
    if isinstance(exc, errors.VaultDown):
        return Throttled(
            f"the vault backend could not read {ref.path!r}: Vault at {url} is sealed or unavailable (503)",
            retry_after=last_retry_after(),
            status=503,
        )
    if isinstance(exc, errors.InvalidRequest):
        return ConfigurationError(
            f"the vault backend's request for {ref.path!r} was refused as invalid "
            f"(400: {vault_errors(exc)}); check the reference and its options"
        )
    return BackendUnavailable(
        f"the vault backend could not read {ref.path!r} from {url} ({type(exc).__name__}); "
        "check that Vault is reachable"
    )


def _health(status: int) -> tuple[bool, str]:
    return _HEALTH.get(status, (False, f"unexpected HTTP {status}"))


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
