"""Azure Key Vault secrets (``azure-kv://``), read through azure-keyvault-secrets."""

from __future__ import annotations

import base64
import binascii
import os
import re
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

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
)
from .._options import Shape, check_options
from .._options import where as where_ref
from .._refs import SecretRef
from .._throttled import Throttled, retry_after
from ._http import CEILING, THROTTLED, pooled

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential
    from azure.keyvault.secrets import KeyVaultSecret, SecretClient

__all__ = ["AzureKeyVaultBackend"]

#: The variable naming the default vault (a name or URL); the Azure SDK's own tests use it.
VAULT_ENV = "AZURE_KEYVAULT_URL"
#: Where a bare vault name lives (Azure public cloud); other clouds name the host or the full URL.
PUBLIC_VAULT_SUFFIX = ".vault.azure.net"

# Vault names: 3-24 letters, digits and single hyphens, starting with a letter, not ending with '-'.
_VAULT_NAME = re.compile(r"(?=.{3,24}\Z)[A-Za-z](?:-?[A-Za-z0-9])+")
_HOST = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.?)+(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?"
)
_SECRET_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
_VERSION_ID = re.compile(r"[0-9A-Fa-f]{32}")
_OPTIONS = frozenset({"version"})
_SHAPES = {"version": Shape(_VERSION_ID.pattern, "a Key Vault version id (32 hexadecimal characters)")}
# azure-core's defaults (300 s connect and read timeouts, 3 retries backing off up to 120 s)
# would keep an attempt alive minutes after the store's deadline (5 s by default) stopped
# waiting for it. These keep its worst case near that deadline; client_kwargs override them.
_CLIENT_DEFAULTS: dict[str, Any] = {
    "connection_timeout": 2,
    "read_timeout": 3,
    "retry_total": 1,
    "retry_backoff_factor": 0.2,
    "retry_backoff_max": 1,
}
# Encodings `az keyvault secret set --file --encoding` records in this tag for binary files.
_BINARY_ENCODINGS = {"base64": base64.b64decode, "hex": bytes.fromhex}


class AzureKeyVaultBackend:
    """Secrets in Azure Key Vault, fetched with ``SecretClient.get_secret``.

    References (``version`` is the only option)::

        azure-kv://db-password                      the default vault (vault_url= or $AZURE_KEYVAULT_URL)
        azure-kv://my-vault/db-password             https://my-vault.vault.azure.net
        azure-kv://my-vault.vault.azure.cn/db-password            a host: any cloud, or 127.0.0.1:8443
        azure-kv://https://my-vault.vault.azure.net/db-password   a full vault URL
        azure-kv://https://my-vault.vault.azure.net/secrets/db-password/<version>   a secret identifier
        azure-kv://my-vault/db-password?version=<version>

    Key Vault names allow only letters, digits and ``-``: ``_`` is read as ``-`` and ``:`` as
    ``--`` (.NET's ``KeyVaultSecretManager`` convention), so ``DB_PASSWORD`` finds ``db-password``
    (names are case-insensitive). One ``SecretClient`` is built per vault, on first use;
    ``credential`` defaults to ``DefaultAzureCredential``, created then too. ``client_kwargs``
    go to every ``SecretClient`` this backend builds (``connection_verify``, ``retry_total``, ...),
    over secretkit's timeouts (2 s connect, 3 s per read, one quick retry).

    Disabled, expired (``exp`` in the past) and not-yet-valid (``nbf`` in the future) versions
    raise :class:`~secretkit.AccessDenied`: Key Vault refuses disabled ones itself but hands out
    the others, so the backend checks the dates. A value lives in the cache no longer than its
    ``exp``. A value tagged ``file-encoding: base64`` or ``hex`` (``az keyvault secret set --file``)
    comes back as ``bytes``.
    """

    scheme = "azure-kv"
    #: The most requests in flight at once (the store adapts below it); each client's pool size.
    concurrency = CEILING
    #: The query options a reference may carry; the store refuses others before asking Key Vault.
    options = _OPTIONS
    #: The shape of each option's value, checked before any call (see ``secretkit._options``).
    option_shapes = _SHAPES
    #: What ``secretkit doctor`` reports as this backend's configuration: azure-identity's
    #: variables, and the default vault.
    settings = (
        Setting(VAULT_ENV, shown=True),
        Setting("AZURE_TENANT_ID"),
        Setting("AZURE_CLIENT_ID"),
        Setting("AZURE_CLIENT_SECRET"),
        Setting("AZURE_CLIENT_CERTIFICATE_PATH", shown=True),
        Setting("AZURE_FEDERATED_TOKEN_FILE", shown=True),
        Setting("AZURE_AUTHORITY_HOST", shown=True),
    )

    @classmethod
    def reachability(cls, env: Mapping[str, str], refs: Sequence[SecretRef]) -> Probe:
        """The first vault a reference names (``azure-kv://VAULT/NAME``), else the default vault.

        Only a vault name is taken from a reference, so that a name in the environment cannot
        point the probe at any host; the default vault is the user's own setting.
        """
        # A one-segment path names a secret of the default vault; "https://..." is a URL.
        named = sorted(
            {ref.path.split("/", 1)[0] for ref in refs if "/" in ref.path and "://" not in ref.path}
        )
        vaults = [name for name in named if _VAULT_NAME.fullmatch(name)]
        if vaults:
            return Probe(url=f"https://{vaults[0].lower()}{PUBLIC_VAULT_SUFFIX}/")
        if named:
            return Probe(note="reachability is checked for vault names (azure-kv://VAULT/NAME) only")
        default = env.get(VAULT_ENV)
        if default:
            try:
                return Probe(url=_vault_url(default) + "/", setting=VAULT_ENV)
            except ValueError:
                return Probe(refused=f"{VAULT_ENV} is not a vault name, a host or an https:// vault URL")
        return Probe(
            note="reachability is checked per vault: reference a secret (azure-kv://VAULT/NAME) "
            f"or set {VAULT_ENV}"
        )

    def __init__(
        self,
        vault_url: str | None = None,
        credential: TokenCredential | None = None,
        client: SecretClient | None = None,
        **client_kwargs: Any,
    ) -> None:
        try:
            from azure.keyvault.secrets import SecretClient
        except ImportError as exc:
            raise MissingDependency(self.scheme, "azure-keyvault-secrets", "azure") from exc
        if client_kwargs.get("logging_enable"):
            # azure-core's network trace logs response bodies, and a response body here is a value.
            raise ConfigurationError(
                "the azure-kv backend refuses logging_enable=True: azure-core would log every "
                "secret value it reads; enable azure.core's HTTP logging (headers, no bodies) instead"
            )
        self._client_class = SecretClient
        self._client_kwargs = {**_CLIENT_DEFAULTS, **client_kwargs}
        self._credential = credential
        self._owns_credential = False
        self._lock = threading.Lock()
        self._clients: dict[str, SecretClient] = {}
        self._external: set[str] = set()
        self._sessions: list[Any] = []  # the pooled sessions of the transports built here
        if client is not None:
            url = _vault_url_or_config_error(client.vault_url, "the client's vault_url")
            self._clients[url] = client
            self._external.add(url)
        #: The default vault's URL: for references that name no vault, and for plain names.
        self.vault_url: str | None = None
        self._vault_from = ""  # which setting gave it, for errors to say
        if vault_url is not None:
            self.vault_url = _vault_url_or_config_error(vault_url, "vault_url")
            self._vault_from = "vault_url="
        elif client is not None:
            self.vault_url, self._vault_from = next(iter(self._clients)), "the client's vault_url"
        elif os.environ.get(VAULT_ENV):
            self.vault_url = _vault_url_or_config_error(os.environ[VAULT_ENV], f"${VAULT_ENV}")
            self._vault_from = VAULT_ENV
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"AzureKeyVaultBackend(vault_url={self.vault_url!r})"

    # -- clients -------------------------------------------------------------------------

    def secret_client(self, vault: str | None = None) -> SecretClient:
        """The ``SecretClient`` this backend uses for ``vault`` (a name, host or URL; default vault if None).

        Built on first use and then reused, so callers may write or list through it too.
        """
        if vault is None:
            return self._client_for(self._default_vault(None))
        return self._client_for(_vault_url_or_config_error(vault, "the vault"))

    def _default_vault(self, ref: SecretRef | None) -> str:
        if self.vault_url is None:
            what = f"{where_ref(ref)} names no vault" if ref is not None else "no vault was given"
            raise ConfigurationError(
                f"the azure-kv backend has no default vault and {what}: pass "
                f"AzureKeyVaultBackend(vault_url=...), set ${VAULT_ENV}, or name the vault in the "
                "reference (azure-kv://my-vault/secret-name)"
            )
        return self.vault_url

    def _client_for(self, url: str) -> SecretClient:
        client = self._clients.get(url)
        if client is not None:
            return client
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                kwargs = self._client_kwargs
                if "transport" not in kwargs:
                    kwargs = {**kwargs, "transport": self._pooled_transport()}
                client = self._client_class(url, self._credential_locked(), **kwargs)
                self._clients[url] = client
        return client

    def _pooled_transport(self) -> Any:
        # azure-core's own session keeps 10 connections: past 10 calls in flight each would
        # open a TLS connection and drop it. The transport takes the timeouts and TLS options.
        import requests
        from azure.core.pipeline.transport import RequestsTransport

        session = pooled(requests.Session())
        self._sessions.append(session)
        return RequestsTransport(session=session, session_owner=False, **self._client_kwargs)

    def _credential_locked(self) -> TokenCredential:
        if self._credential is None:
            try:
                from azure.identity import DefaultAzureCredential
            except ImportError as exc:
                raise MissingDependency(self.scheme, "azure-identity", "azure") from exc
            self._credential = DefaultAzureCredential()
            self._owns_credential = True
        return self._credential

    # -- fetching ------------------------------------------------------------------------

    def fetch(self, ref: SecretRef) -> Fetched:
        url, name, version = self._target(ref)
        secret = self._get(ref, self._client_for(url), url, name, version)
        return self._fetched(ref, secret, url, name)

    def _target(self, ref: SecretRef) -> tuple[str, str, str | None]:
        """``(vault URL, Key Vault secret name, version or None)`` for a reference."""
        check_options(self, ref)
        path = ref.path
        explicit_url = False
        if "://" in path:
            scheme, _, path = path.partition("://")
            if scheme.lower() != "https":
                raise InvalidReference(f"{where_ref(ref)}: Key Vault is reached over https:// only")
            explicit_url = True
        parts = path.split("/")
        if len(parts) == 5 and parts[1].lower() == "secrets" and not parts[4]:
            parts.pop()  # a secret identifier with a trailing slash
        path_version: str | None = None
        if len(parts) == 1 and not explicit_url:
            vault, raw_name = None, parts[0]
        elif len(parts) == 2:
            vault, raw_name = parts
        elif len(parts) in (3, 4) and parts[1].lower() == "secrets":
            vault, raw_name = parts[0], parts[2]
            path_version = parts[3] if len(parts) == 4 else None
        else:
            raise InvalidReference(
                f"{where_ref(ref)}: expected azure-kv://[vault/]secret-name, a vault URL and a name "
                "(azure-kv://https://my-vault.vault.azure.net/name) or a secret identifier "
                "(azure-kv://https://my-vault.vault.azure.net/secrets/name/version)"
            )
        if vault is None:
            url = self._default_vault(ref)
        else:
            try:
                url = _vault_url(f"https://{vault}" if explicit_url else vault)
            except ValueError as exc:
                raise InvalidReference(f"{where_ref(ref)}: {exc}") from None
        name = raw_name.replace(":", "--").replace("_", "-")
        if not _SECRET_NAME.fullmatch(name):
            detail = (
                f"{raw_name!r} is not a valid Key Vault secret name "
                "(1-127 letters, digits and '-'; '_' is read as '-' and ':' as '--')"
            )
            if vault is None:
                # A plain name tried along a chain: it cannot exist here, so the next backend may have it.
                raise SecretNotFound(ref.path, detail=detail)
            raise InvalidReference(f"{where_ref(ref)}: {detail}")
        version = ref.options.get("version")
        if path_version:
            if version is not None and version.lower() != path_version.lower():
                raise InvalidReference(
                    f"{where_ref(ref)}: the identifier and ?version= name different versions"
                )
            version = path_version
        return url, name, version

    def _get(
        self, ref: SecretRef, client: SecretClient, url: str, name: str, version: str | None
    ) -> KeyVaultSecret:
        failure: SecretkitError
        try:
            return client.get_secret(name, version)
        except Exception as exc:
            failure, safe_to_chain = self._map_error(exc, ref, url, name, version)
            if safe_to_chain:
                raise failure from exc
        # Raised outside the except block so that not even __context__ keeps the SDK error,
        # whose text, attributes or frames may hold a response body, that is, a value.
        raise failure

    def _map_error(
        self, exc: Exception, ref: SecretRef, url: str, name: str, version: str | None
    ) -> tuple[SecretkitError, bool]:
        """The secretkit error for an SDK failure, and whether chaining the SDK error is safe."""
        from azure.core.exceptions import (
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
            ServiceResponseError,
        )

        which = f"version {version} of {name!r}" if version else repr(name)
        # The default vault says which setting named it: a reference that names none fell back on it.
        whence = f", the default vault, from {self._vault_from}" if url == self.vault_url else ""
        where = f"secret {ref.path!r} ({which} in {url}{whence})"
        if isinstance(exc, ResourceNotFoundError):
            detail = f"Key Vault {url}{whence} has no {which}"
            if version and not _VERSION_ID.fullmatch(version):
                detail += " (Key Vault version ids are 32 hexadecimal characters)"
            return SecretNotFound(ref.path, detail=detail), True
        if isinstance(exc, ClientAuthenticationError):
            # 401 from the vault, or no token from the credential (nothing configured, or refused).
            return AccessDenied(
                f"{where}: the azure-kv backend could not authenticate to Key Vault "
                f"({_first_line(exc)}); check the credential: DefaultAzureCredential reads "
                "AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, workload or managed identity, "
                "or `az login`"
            ), True
        if isinstance(exc, HttpResponseError) and (exc.status_code or 0) >= 300:
            # An error status: the body is an error document, never a secret value.
            code, inner, message = _error_codes(exc)
            if exc.status_code == 403 and (inner == "SecretDisabled" or "disabled secret" in message):
                return AccessDenied(
                    f"{where}: Key Vault refuses to read it because it is disabled; enable it "
                    "(az keyvault secret set-attributes --enabled true) or store a new version"
                ), True
            if exc.status_code in THROTTLED:
                headers = getattr(exc.response, "headers", None) or {}
                return Throttled(
                    f"{where}: Key Vault answered {exc.status_code} ({code}: {message}); it is "
                    "throttling, and secretkit sends fewer requests at once until it recovers",
                    retry_after=retry_after(headers.get("Retry-After")),
                    status=exc.status_code,
                ), True
            if exc.status_code == 403:
                return AccessDenied(
                    f"{where}: Key Vault denied the azure-kv backend ({code}/{inner or '-'}); grant its "
                    "identity the 'get' secret permission (access policy) or the 'Key Vault Secrets "
                    "User' role on the vault or on this secret"
                ), True
            return BackendUnavailable(
                f"{where}: Key Vault answered {exc.status_code} ({code}: {message})"
            ), True
        if isinstance(exc, ServiceRequestError):
            # The request never got an answer (refused, DNS, TLS, timeout): no body was read.
            return BackendUnavailable(
                f"{where}: the azure-kv backend could not reach Key Vault ({type(exc).__name__}: "
                f"{_first_line(exc)}); check the vault URL and the network"
            ), True
        if isinstance(exc, ValueError) and "verify_challenge_resource" in str(exc):
            # azure-keyvault-secrets' own check that the vault's auth challenge names Key Vault.
            return ConfigurationError(f"{where}: {_first_line(exc)}"), True
        kind = "the connection broke while reading" if isinstance(exc, ServiceResponseError) else "unreadable"
        return BackendUnavailable(
            f"{where}: Key Vault's response was {kind} ({type(exc).__name__}); the SDK error is not "
            "chained because it may hold part of the response, that is, of the value"
        ), False

    def _fetched(self, ref: SecretRef, secret: KeyVaultSecret, url: str, name: str) -> Fetched:
        # The SDK decodes a property on every access: read each one once.
        props = secret.properties
        version = props.version

        def where() -> str:
            which = f"version {version} of {name!r}" if version else repr(name)
            return f"secret {ref.path!r} ({which} in {url})"

        if props.enabled is False:
            # The service answers 403 itself; this guards against anything in between that does not.
            raise AccessDenied(f"{where()} is disabled; enable it or store a new version")
        now = time.time()
        expires = props.expires_on
        expires_at = None if expires is None else _timestamp(expires)
        if expires_at is not None and expires_at <= now:
            raise AccessDenied(
                f"{where()} expired at {_iso(expires_at)}; Key Vault still returns expired secrets, "
                "the azure-kv backend does not: store a new version or extend its expiry"
            )
        not_before = props.not_before
        if not_before is not None and _timestamp(not_before) > now:
            raise AccessDenied(
                f"{where()} is not valid before {_iso(_timestamp(not_before))}; wait, or pin an "
                "older version with ?version="
            )
        value = secret.value
        if value is None:
            raise BackendUnavailable(f"{where()}: Key Vault returned no value")
        tags = props.tags
        result: str | bytes = value
        encoding = tags.get("file-encoding") if tags else None
        if encoding is not None and encoding.lower() in _BINARY_ENCODINGS:
            try:
                result = _BINARY_ENCODINGS[encoding.lower()](value)
            except (ValueError, binascii.Error):
                # The decoder's message could quote the text: say what is wrong, not what was there.
                raise ConfigurationError(
                    f"{where()} is tagged file-encoding={encoding} but is not valid {encoding}; "
                    "fix the value or remove the tag"
                ) from None
        metadata = {"vault_url": url, "name": props.name or name}
        identifier = secret.id
        if identifier:
            metadata["id"] = identifier
        content_type = props.content_type
        if content_type:
            metadata["content_type"] = content_type
        ttl = None if expires_at is None else expires_at - now
        return Fetched(result, version=version, ttl=ttl, metadata=metadata)

    def _after_fork(self) -> None:
        # The parent's clients hold its open TLS connections, and two processes writing one TLS
        # stream corrupt it; its lock may be held by a thread that does not exist here. Start
        # afresh: new clients (and credential) on first use. A client= given stays the caller's.
        self._lock = threading.Lock()
        self._clients = {url: c for url, c in self._clients.items() if url in self._external}
        self._sessions = []
        if self._owns_credential:
            self._credential, self._owns_credential = None, False

    def close(self) -> None:
        with self._lock:
            clients = [c for url, c in self._clients.items() if url not in self._external]
            self._clients = {url: c for url, c in self._clients.items() if url in self._external}
            credential = self._credential if self._owns_credential else None
            if credential is not None:
                self._credential, self._owns_credential = None, False
            sessions, self._sessions = self._sessions, []
        for client in clients:
            client.close()
        for session in sessions:
            session.close()
        close = getattr(credential, "close", None)
        if callable(close):
            close()


_LIVE: weakref.WeakSet[AzureKeyVaultBackend] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for backend in list(_LIVE):
        backend._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _vault_url(text: str) -> str:
    """``https://host[:port]`` for a vault name, host or URL; ``ValueError`` saying why not."""
    raw = text.strip()
    explicit = "://" in raw
    if explicit:
        scheme, _, raw = raw.partition("://")
        if scheme.lower() != "https":
            raise ValueError(f"{text!r}: Key Vault is reached over https:// only")
        raw = raw.rstrip("/")
        if "/" in raw:
            raise ValueError(f"{text!r}: a vault URL has no path (https://my-vault.vault.azure.net)")
    if not explicit and "." not in raw and ":" not in raw:
        if not _VAULT_NAME.fullmatch(raw):
            raise ValueError(
                f"{raw!r} is not a vault name (3-24 letters, digits and single hyphens, starting "
                "with a letter) nor a host (my-vault.vault.azure.net)"
            )
        return f"https://{raw.lower()}{PUBLIC_VAULT_SUFFIX}"
    if not _HOST.fullmatch(raw):
        raise ValueError(f"{raw!r} is not a host[:port]")
    host = raw.lower()
    if host.endswith(":443"):
        host = host[:-4]
    return f"https://{host}"


def _vault_url_or_config_error(text: str, source: str) -> str:
    try:
        return _vault_url(text)
    except ValueError as exc:
        raise ConfigurationError(f"{source}: {exc}") from None


def _error_codes(exc: Any) -> tuple[str, str | None, str]:
    error = getattr(exc, "error", None)
    code = getattr(error, "code", None) or str(exc.reason or "error")
    inner = getattr(error, "innererror", None) or {}
    message = getattr(error, "message", None) or ""
    return code, inner.get("code") if isinstance(inner, Mapping) else None, message[:300]


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


def _timestamp(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")
