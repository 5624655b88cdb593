"""How the Vault backend gets its token: one small object per auth method, and the choice among them.

Kept apart from :mod:`secretkit.backends.vault` so each method stays a few lines and a
third party can add one (an object with ``method``, ``relogin`` and ``login(client)``, and
optionally ``changed()``). Every credential file is read at each login through the bounded
local-file reader; :func:`auth_from_env` picks the method a deployment names in
``VAULT_AUTH_METHOD``, so switching platforms needs no code change.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._errors import ConfigurationError, MissingDependency
from .._localfile import UnsafeFile, read_local_text

if TYPE_CHECKING:
    from hvac import Client

__all__ = [
    "AUTH_METHODS",
    "DEFAULT_KUBERNETES_JWT",
    "AppRoleAuth",
    "AwsIamAuth",
    "CertAuth",
    "JwtAuth",
    "KubernetesAuth",
    "Login",
    "ProxyAuth",
    "TokenAuth",
    "VaultAuth",
    "auth_from_env",
]

DEFAULT_KUBERNETES_JWT = "/var/run/secrets/kubernetes.io/serviceaccount/token"
#: What ``VAULT_AUTH_METHOD`` may name.
AUTH_METHODS = ("approle", "aws", "cert", "jwt", "kubernetes", "proxy", "token")

# A file's identity and content stamp: a rewrite in place, a rename over it and Kubernetes'
# symlink swap of a projected volume each change one of these.
_Stamp = tuple[int, int, int, int] | None


@dataclass(frozen=True, repr=False)
class Login:
    """A token and what Vault said about it.

    ``ttl`` is ``None`` for a token that never expires (a root token) or whose TTL is
    unknown; ``renewable`` says whether ``renew-self`` can extend it.
    """

    token: str
    ttl: float | None
    renewable: bool

    def __repr__(self) -> str:
        return f"Login(token=<redacted>, ttl={self.ttl!r}, renewable={self.renewable!r})"


@runtime_checkable
class VaultAuth(Protocol):
    """An auth method: ``login(client)`` returns a fresh :class:`Login`.

    ``relogin`` says whether logging in again can give a new token (AppRole, JWT,
    Kubernetes; a token read from a file that an agent rewrites), so the backend knows
    whether an expired or revoked token can be replaced. ``login`` may set
    ``client.token``; the backend sets it to the returned token afterwards anyway.

    A method that reads files may also have ``changed() -> bool``: whether a file it read
    at the last login has changed since. The backend asks about once a second and logs
    in again when it has, so a rotated token, JWT or certificate is used at once.
    """

    @property
    def method(self) -> str: ...

    @property
    def relogin(self) -> bool: ...

    def login(self, client: Client) -> Login: ...


def _from_auth(response: Any) -> Login:
    auth = response["auth"]
    duration = float(auth.get("lease_duration") or 0)
    return Login(auth["client_token"], duration or None, bool(auth.get("renewable")))


def _read_file(path: str | os.PathLike[str], what: str) -> str:
    try:
        text = read_local_text(path).strip()
    except UnsafeFile as exc:
        raise ConfigurationError(
            f"the {what} file {os.fspath(path)!r} {exc.why}; point it at the regular file that holds it"
        ) from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"the {what} file {os.fspath(path)!r} is not UTF-8 text") from None
    except FileNotFoundError:
        raise ConfigurationError(
            f"the {what} file {os.fspath(path)!r} does not exist; fix the path or pass the {what} itself"
        ) from None
    except PermissionError:
        raise ConfigurationError(
            f"the {what} file {os.fspath(path)!r} is not readable by this process; check its owner and mode"
        ) from None
    if not text:
        raise ConfigurationError(f"the {what} file {os.fspath(path)!r} is empty")
    return text


def _stamp(paths: Sequence[str | os.PathLike[str]]) -> tuple[_Stamp, ...]:
    stamps: list[_Stamp] = []
    for path in paths:
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            stamps.append(None)
            continue
        stamps.append((info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns))
    return tuple(stamps)


class _ReadsFiles:
    """``changed()`` for a method that reads credential files: compares them with the last login's."""

    _seen: tuple[_Stamp, ...] | None = None

    def _files(self) -> list[str | os.PathLike[str]]:
        return []

    def _note_files(self) -> None:
        # Stamped before reading: a rewrite between stamp and read is seen as a change next time.
        self._seen = _stamp(self._files())

    def changed(self) -> bool:
        """Whether a credential file read at the last login has changed (or appeared) since."""
        seen = self._seen
        return seen is not None and _stamp(self._files()) != seen


@dataclass(repr=False)
class TokenAuth(_ReadsFiles):
    """A token given outright, read from a file, or (by default) as the vault CLI finds it.

    With no arguments: ``VAULT_TOKEN``, else ``~/.vault-token``, read at each login, so a
    token file that Vault Agent rewrites is picked up when the old token stops working.
    The token's TTL and renewability come from ``auth/token/lookup-self``.
    """

    token: str | None = field(default=None, repr=False)
    token_file: str | os.PathLike[str] | None = None
    method = "token"

    def __post_init__(self) -> None:
        if self.token is not None and self.token_file is not None:
            raise ConfigurationError("TokenAuth takes a token or a token_file, not both")

    def __repr__(self) -> str:
        if self.token is not None:
            return "TokenAuth(token=<redacted>)"
        if self.token_file is not None:
            return f"TokenAuth(token_file={os.fspath(self.token_file)!r})"
        return "TokenAuth()"

    @property
    def relogin(self) -> bool:
        # A token given outright cannot change; one read from the environment or a file can.
        return self.token is None

    def _files(self) -> list[str | os.PathLike[str]]:
        if self.token is not None:
            return []
        if self.token_file is not None:
            return [self.token_file]
        if os.environ.get("VAULT_TOKEN", "").strip():
            return []
        return [Path("~/.vault-token").expanduser()]

    def _resolve(self) -> str:
        self._note_files()
        if self.token is not None:
            return self.token
        if self.token_file is not None:
            return _read_file(self.token_file, "Vault token")
        token = os.environ.get("VAULT_TOKEN", "").strip()
        if token:
            return token
        default = Path("~/.vault-token").expanduser()
        if default.is_file():
            return _read_file(default, "Vault token")
        raise ConfigurationError(
            "no Vault auth configured: set VAULT_AUTH_METHOD to one of "
            f"{', '.join(AUTH_METHODS)} with its settings (VAULT_AUTH_ROLE, ...; see docs/auth.md), "
            "set VAULT_TOKEN or write one to ~/.vault-token (vault login does), "
            "or pass auth=KubernetesAuth(...) / AwsIamAuth(...) / CertAuth(...) / ... to VaultBackend"
        )

    def login(self, client: Client) -> Login:
        import hvac.exceptions

        token = self._resolve()
        client.token = token
        try:
            data = client.auth.token.lookup_self()["data"]
        except hvac.exceptions.Forbidden:
            # Expired, revoked, or a token without the default policy: the read that
            # follows tells which, and no renewal is scheduled for a token we cannot see.
            return Login(token, None, False)
        ttl = float(data.get("ttl") or 0)
        return Login(token, ttl or None, bool(data.get("renewable")))


@dataclass(repr=False)
class ProxyAuth:
    """No token in the application: a Vault Agent or OpenBao Proxy on the host adds its own.

    For a backend whose address is the proxy's listener (``VAULT_AGENT_ADDR``) when the proxy
    runs auto-auth with ``api_proxy { use_auto_auth_token = true }`` (Vault Agent:
    ``cache { use_auto_auth_token = true }``): requests go out with no ``X-Vault-Token`` and
    the proxy sends them on with the token it logged in with and renews. Logging in is
    therefore local and free; the proxy logs in once for every process on the host, and leases
    issued with its token are cached and renewed by it, so every process gets the same one.
    """

    method = "proxy"
    # A 403 for a rejected token may only mean the proxy has not logged in yet, or has just
    # logged in again: one more try costs a local request, and no login reaches Vault.
    relogin = True

    def __repr__(self) -> str:
        return "ProxyAuth()"

    def login(self, client: Client) -> Login:
        client.token = ""
        # No TTL: there is no token here to renew; the proxy renews its own.
        return Login("", None, False)


@dataclass(repr=False)
class AppRoleAuth(_ReadsFiles):
    """AppRole: a ``role_id`` and a ``secret_id`` (or a file holding it, read at each login).

    A role created with ``bind_secret_id=false`` needs no secret id.
    """

    role_id: str
    secret_id: str | None = field(default=None, repr=False)
    secret_id_file: str | os.PathLike[str] | None = None
    mount: str = "approle"
    method = "approle"
    relogin = True

    def __post_init__(self) -> None:
        if self.secret_id is not None and self.secret_id_file is not None:
            raise ConfigurationError("AppRoleAuth takes a secret_id or a secret_id_file, not both")

    def __repr__(self) -> str:
        return f"AppRoleAuth(mount={self.mount!r})"

    def _files(self) -> list[str | os.PathLike[str]]:
        return [] if self.secret_id_file is None else [self.secret_id_file]

    def login(self, client: Client) -> Login:
        self._note_files()
        secret_id = self.secret_id
        if self.secret_id_file is not None:
            secret_id = _read_file(self.secret_id_file, "AppRole secret_id")
        response = client.auth.approle.login(
            role_id=self.role_id, secret_id=secret_id, use_token=False, mount_point=self.mount
        )
        return _from_auth(response)


@dataclass(repr=False)
class JwtAuth(_ReadsFiles):
    """JWT/OIDC auth: a role and a signed JWT (or a file holding it, read at each login).

    The file form suits tokens that a platform rotates on disk (CI OIDC tokens,
    projected service-account tokens).
    """

    role: str
    jwt: str | None = field(default=None, repr=False)
    jwt_file: str | os.PathLike[str] | None = None
    mount: str = "jwt"
    method = "jwt"
    relogin = True

    def __post_init__(self) -> None:
        if (self.jwt is None) == (self.jwt_file is None):
            raise ConfigurationError("JwtAuth takes exactly one of jwt= or jwt_file=")

    def __repr__(self) -> str:
        return f"JwtAuth(role={self.role!r}, mount={self.mount!r})"

    def _files(self) -> list[str | os.PathLike[str]]:
        return [] if self.jwt_file is None else [self.jwt_file]

    def login(self, client: Client) -> Login:
        self._note_files()
        jwt = self.jwt if self.jwt is not None else _read_file(self.jwt_file or "", "JWT")
        response = client.auth.jwt.jwt_login(role=self.role, jwt=jwt, use_token=False, path=self.mount)
        return _from_auth(response)


@dataclass(repr=False)
class KubernetesAuth(_ReadsFiles):
    """Kubernetes auth: a role and the pod's service-account token, read at each login."""

    role: str
    jwt_file: str | os.PathLike[str] = DEFAULT_KUBERNETES_JWT
    mount: str = "kubernetes"
    method = "kubernetes"
    relogin = True

    def __repr__(self) -> str:
        return f"KubernetesAuth(role={self.role!r}, mount={self.mount!r})"

    def _files(self) -> list[str | os.PathLike[str]]:
        return [self.jwt_file]

    def login(self, client: Client) -> Login:
        self._note_files()
        jwt = _read_file(self.jwt_file, "Kubernetes service-account token")
        response = client.auth.kubernetes.login(
            role=self.role, jwt=jwt, use_token=False, mount_point=self.mount
        )
        return _from_auth(response)


@dataclass(repr=False)
class CertAuth(_ReadsFiles):
    """TLS certificate auth: a client certificate and its key, read from files at each login.

    The backend logs in again when either file changes, so a certificate that cert-manager,
    an ACME client or a configuration tool rotates on disk is presented at the next login;
    the files are read through the bounded local-file reader and loaded from memory (see
    :mod:`secretkit.backends._vault_cert`). ``role`` names the ``certs/<role>`` entry to
    log in against (Vault tries every entry when it is ``None``). Needs an https address.
    """

    cert_file: str | os.PathLike[str]
    key_file: str | os.PathLike[str]
    role: str | None = None
    mount: str = "cert"
    method = "cert"
    relogin = True

    def __repr__(self) -> str:
        return f"CertAuth(cert_file={os.fspath(self.cert_file)!r}, role={self.role!r}, mount={self.mount!r})"

    def _files(self) -> list[str | os.PathLike[str]]:
        return [self.cert_file, self.key_file]

    def login(self, client: Client) -> Login:
        from ._vault_cert import login_with_certificate

        self._note_files()
        cert = _read_file(self.cert_file, "client certificate")
        key = _read_file(self.key_file, "client key")
        response = login_with_certificate(
            client,
            cert.encode(),
            key.encode(),
            mount=self.mount,
            role=self.role,
            what=f"client certificate {os.fspath(self.cert_file)!r} and key {os.fspath(self.key_file)!r}",
        )
        return _from_auth(response)


@dataclass(repr=False)
class AwsIamAuth:
    """AWS IAM auth: a ``sts:GetCallerIdentity`` request signed with boto3's credentials.

    Any credential source boto3 supports signs it (environment, profile, web identity
    (EKS IRSA), ECS and EKS Pod Identity container credentials, EC2 instance metadata),
    fresh at each login, so credentials the platform rotates are picked up. ``header_value``
    is sent, and signed, as ``X-Vault-AWS-IAM-Server-ID`` for a mount that requires it.
    The request goes to the global STS endpoint unless ``region=`` (the regional endpoint)
    or ``sts_endpoint=`` says otherwise; Vault's mount must be configured for the same one.
    ``profile`` picks a boto3 profile. :meth:`login_data` returns what is sent, for tests.
    """

    role: str
    mount: str = "aws"
    header_value: str | None = None
    region: str | None = None
    sts_endpoint: str | None = None
    profile: str | None = None
    method = "aws"
    relogin = True
    _session: Any = field(default=None, init=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, compare=False)

    def __repr__(self) -> str:
        return f"AwsIamAuth(role={self.role!r}, mount={self.mount!r})"

    def _credentials(self) -> Any:
        try:
            import boto3
        except ImportError as exc:
            raise MissingDependency("vault", "boto3", "aws") from exc
        with self._lock:
            # boto3 sessions are not thread-safe to build; one per auth object keeps
            # refreshable credentials (web identity, container, instance) cached and refreshed.
            if self._session is None:
                self._session = boto3.session.Session(profile_name=self.profile)
            session = self._session
        credentials = session.get_credentials()
        if credentials is None:
            raise ConfigurationError(
                "AWS IAM auth to Vault found no AWS credentials in boto3's chain; give the workload an "
                "IAM role (instance profile, ECS task role, EKS IRSA or Pod Identity) or set AWS_PROFILE"
            )
        return credentials.get_frozen_credentials()

    def login_data(self) -> dict[str, str]:
        """The login request's body: ``role`` and the signed ``iam_*`` fields Vault replays to STS."""
        from ._vault_aws_iam import signed_login_data, sts_target

        url, region = sts_target(self.region, self.sts_endpoint)
        data = signed_login_data(self._credentials(), url=url, region=region, server_id=self.header_value)
        return {**data, "role": self.role}

    def login(self, client: Client) -> Login:
        return _from_auth(client.adapter.post(f"/v1/auth/{self.mount}/login", json=self.login_data()))


def _env_value(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name, "").strip() or None


def _required(env: Mapping[str, str], name: str, method: str) -> str:
    value = _env_value(env, name)
    if value is None:
        raise ConfigurationError(f"VAULT_AUTH_METHOD={method} needs {name}; set it (see docs/auth.md)")
    return value


def auth_from_env(env: Mapping[str, str] | None = None) -> VaultAuth:
    """The auth method the environment names (``VAULT_AUTH_METHOD``); :class:`TokenAuth` when none is named.

    ============ ==================================================================
    method       variables (``VAULT_AUTH_MOUNT`` overrides the mount for every one)
    ============ ==================================================================
    kubernetes   ``VAULT_AUTH_ROLE``; ``VAULT_KUBERNETES_TOKEN_FILE`` (default: the pod's token)
    aws          ``VAULT_AUTH_ROLE``; ``VAULT_AWS_HEADER_VALUE``, ``VAULT_AWS_STS_REGION``,
                 ``VAULT_AWS_STS_ENDPOINT``; credentials from boto3's chain
    jwt          ``VAULT_AUTH_ROLE``, ``VAULT_JWT_FILE``
    cert         ``VAULT_CLIENT_CERT``, ``VAULT_CLIENT_KEY``; ``VAULT_AUTH_ROLE`` (optional)
    approle      ``VAULT_ROLE_ID`` (or ``VAULT_ROLE_ID_FILE``); ``VAULT_SECRET_ID_FILE`` (optional)
    proxy        none: a Vault Agent / OpenBao Proxy at ``VAULT_AGENT_ADDR`` adds its auto-auth token
    token        ``VAULT_TOKEN_FILE``, else ``VAULT_TOKEN``, else ``~/.vault-token``
    ============ ==================================================================

    With no method named and ``VAULT_AGENT_ADDR`` set, a ``VAULT_TOKEN_FILE`` or ``VAULT_TOKEN``
    is still sent (as the vault CLI sends ``VAULT_TOKEN`` to an agent); without either it is
    ``proxy``: a ``~/.vault-token`` left by ``vault login`` is not sent to a proxy the deployment
    chose, whose leases would not be shared with a token it does not manage.
    An ``auth=`` given to the backend always wins over these.
    """
    env = os.environ if env is None else env
    method = (_env_value(env, "VAULT_AUTH_METHOD") or "").lower()
    mount = _env_value(env, "VAULT_AUTH_MOUNT")
    if not method:
        token_file = _env_value(env, "VAULT_TOKEN_FILE")
        if token_file:
            return TokenAuth(token_file=token_file)
        if _env_value(env, "VAULT_AGENT_ADDR") and not _env_value(env, "VAULT_TOKEN"):
            return ProxyAuth()
        return TokenAuth()
    if method == "proxy":
        return ProxyAuth()
    mounted: dict[str, Any] = {} if mount is None else {"mount": mount}
    if method == "token":
        token_file = _env_value(env, "VAULT_TOKEN_FILE")
        return TokenAuth(token_file=token_file) if token_file else TokenAuth()
    if method == "kubernetes":
        jwt_file = _env_value(env, "VAULT_KUBERNETES_TOKEN_FILE") or DEFAULT_KUBERNETES_JWT
        return KubernetesAuth(_required(env, "VAULT_AUTH_ROLE", method), jwt_file=jwt_file, **mounted)
    if method == "aws":
        return AwsIamAuth(
            _required(env, "VAULT_AUTH_ROLE", method),
            header_value=_env_value(env, "VAULT_AWS_HEADER_VALUE"),
            region=_env_value(env, "VAULT_AWS_STS_REGION"),
            sts_endpoint=_env_value(env, "VAULT_AWS_STS_ENDPOINT"),
            **mounted,
        )
    if method == "jwt":
        role = _required(env, "VAULT_AUTH_ROLE", method)
        return JwtAuth(role, jwt_file=_required(env, "VAULT_JWT_FILE", method), **mounted)
    if method == "cert":
        return CertAuth(
            _required(env, "VAULT_CLIENT_CERT", method),
            _required(env, "VAULT_CLIENT_KEY", method),
            role=_env_value(env, "VAULT_AUTH_ROLE"),
            **mounted,
        )
    if method == "approle":
        role_id = _env_value(env, "VAULT_ROLE_ID")
        role_id_file = _env_value(env, "VAULT_ROLE_ID_FILE")
        if role_id is None and role_id_file is not None:
            role_id = _read_file(role_id_file, "AppRole role_id")
        if role_id is None:
            raise ConfigurationError(
                "VAULT_AUTH_METHOD=approle needs VAULT_ROLE_ID or VAULT_ROLE_ID_FILE; "
                "set one (see docs/auth.md)"
            )
        return AppRoleAuth(role_id, secret_id_file=_env_value(env, "VAULT_SECRET_ID_FILE"), **mounted)
    raise ConfigurationError(
        f"VAULT_AUTH_METHOD names no auth method secretkit knows; use one of {', '.join(AUTH_METHODS)}"
    )
