"""HashiCorp Vault and OpenBao (``vault://``): KV v1/v2 secrets and leased dynamic secrets, via hvac.

Both servers speak the same HTTP API, so one backend serves both. This module reads KV and
holds the pieces together; the other engines' reads and writes are
:mod:`~secretkit.backends._vault_generic`'s, the token's life (lazy login, renewal,
re-login) :mod:`~secretkit.backends._vault_token`'s, the leases of dynamic secrets
:mod:`~secretkit.backends._vault_leases`' (behind a Vault Agent or OpenBao Proxy,
:mod:`~secretkit.backends._vault_proxy`'s), which mount holds a path
:mod:`~secretkit.backends._vault_mounts`', the client's set-up and error mapping
:mod:`~secretkit.backends._vault_http`'s, the options :mod:`~secretkit.backends._vault_options`'
and the auth methods :mod:`~secretkit.backends.vault_auth`'s. Everything else (caching,
retries, staleness) is the store's.
"""

from __future__ import annotations

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
    without_userinfo,
)
from .._options import Shape, check, where
from .._refs import SecretRef
from ._defaulted import noted
from ._http import CEILING, pooled
from ._vault_generic import VaultGeneric
from ._vault_http import (
    CONNECT_TIMEOUT,
    DEFAULT_ADDR,
    DEFAULT_TIMEOUT,
    address_from_env,
    client_from_env,
    health,
    request_error,
)
from ._vault_mounts import VaultMounts
from ._vault_options import KV_OPTIONS, OPTIONS, shapes, value, version_number
from ._vault_token import TokenStatus, VaultToken
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
    options: frozenset[str] = OPTIONS
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
            address, self._defaulted = address_from_env(addresses, url)
            # Validated before hvac sees it; one request's tries over every node fit the time
            # a caller waits for a lock (one connect and one read).
            self.nodes = VaultNodes(
                addresses or [address], budget=self._lock_wait, consistency=not self.proxied
            )
            client = client_from_env(
                address, self.nodes.session(), namespace=namespace, verify=verify, timeout=timeout
            )
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
        self._mounts = VaultMounts(self._ask_mount, self._lock_wait, mount=mount, kv_version=kv_version)
        self._closed = False
        self._token = VaultToken(
            client, self._auth, errors=self._exc, url=self.url, clock=clock, lock_wait=self._lock_wait
        )
        self._generic = VaultGeneric(
            client,
            self._request,
            post_paths=post_paths,
            proxied=self.proxied,
            clock=clock,
            lock_wait=self._lock_wait,
        )
        self.options = self._generic.options
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
            judge=health,
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
        return shapes(ref)

    def fetch(self, ref: SecretRef) -> Fetched:
        # Every option value is checked here, before a mount look-up, a login or a read: a
        # malformed one is the reference's fault, not an outage. Names are checked per engine
        # below, so that a write nobody allowed is refused as such first.
        check(self.scheme, ref, None, self.option_shapes(ref))
        if ref.options.get("encoding") is not None and ref.options.get("key") is None:
            raise InvalidReference(f"{where(ref)}: encoding= applies to one key; add key=NAME")
        if ref.options.get("engine", "kv") == "generic":
            return self._generic.fetch(ref)
        if self.nodes is None:
            return self._fetch_kv(ref)
        # A proxy passes KV reads through uncached, so they may carry the index even there.
        with self.nodes.uncached():
            return self._fetch_kv(ref)

    def _fetch_kv(self, ref: SecretRef) -> Fetched:
        options = ref.options
        check(
            self.scheme,
            ref,
            KV_OPTIONS,
            {},
            fix="remove it from the reference (engine=generic sends other options to Vault as parameters)",
        )
        mount, sub, kv_version = self._mounts.locate(ref)
        version = options.get("version")
        client = self._client
        if kv_version == 2:
            number = version_number(ref, version)
            response = self._request(
                ref,
                f"{mount}/data/{sub}",
                lambda: client.secrets.kv.v2.read_secret_version(
                    path=sub, version=number, mount_point=mount, raise_on_deleted_version=True
                ),
            )
            body = response["data"]
            return Fetched(value(body["data"], ref), version=str(body["metadata"]["version"]))
        if version is not None:
            raise InvalidReference(
                f"{where(ref)}: the mount {mount!r} is KV version 1, which keeps no versions; drop ?version="
            )
        response = self._request(
            ref, f"{mount}/{sub}", lambda: client.secrets.kv.v1.read_secret(path=sub, mount_point=mount)
        )
        return Fetched(value(response["data"], ref))

    def _ask_mount(self, ref: SecretRef, api: str) -> Any:
        return self._request(ref, api, lambda: self._client.adapter.get("/v1/" + quote(api, safe="/")))

    # -- requests and errors ---------------------------------------------------------------

    def _request(self, ref: SecretRef, api_path: str, call: Callable[[], Any]) -> Any:
        """``call()`` with a valid token (see :class:`VaultToken`), its errors mapped for ``ref``."""
        if self._closed:
            raise BackendUnavailable(f"the vault backend for {self.url} is closed; build a new one")
        try:
            return self._token.call(
                call,
                lambda exc: request_error(self._exc, self.url, exc, ref, api_path),
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
        self._generic.leases.clear()
        if self._owns_client:
            self._client.adapter.close()

    def _after_fork(self) -> None:
        self._generic.leases.after_fork()
        self._mounts.after_fork()
        if self.nodes is not None:
            # Sharing the parent's pooled connections would interleave two processes'
            # requests on one socket.
            self._client.session = pooled(self.nodes.session())
        # Last: it may start the renewal thread, which must find the child's own session.
        self._token.after_fork()
