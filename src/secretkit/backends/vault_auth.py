"""How the Vault backend gets its token: one small object per auth method.

Kept apart from :mod:`secretkit.backends.vault` so each method stays a few lines and a
third party can add one (an object with ``method``, ``relogin`` and ``login(client)``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._errors import ConfigurationError
from .._localfile import UnsafeFile, read_local_text

if TYPE_CHECKING:
    from hvac import Client

__all__ = [
    "DEFAULT_KUBERNETES_JWT",
    "AppRoleAuth",
    "JwtAuth",
    "KubernetesAuth",
    "Login",
    "TokenAuth",
    "VaultAuth",
]

DEFAULT_KUBERNETES_JWT = "/var/run/secrets/kubernetes.io/serviceaccount/token"


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


@dataclass(repr=False)
class TokenAuth:
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

    def _resolve(self) -> str:
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
            "no Vault token: set VAULT_TOKEN, write one to ~/.vault-token (vault login does), "
            "or pass auth=AppRoleAuth(...) / JwtAuth(...) / KubernetesAuth(...) to VaultBackend"
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
class AppRoleAuth:
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

    def login(self, client: Client) -> Login:
        secret_id = self.secret_id
        if self.secret_id_file is not None:
            secret_id = _read_file(self.secret_id_file, "AppRole secret_id")
        response = client.auth.approle.login(
            role_id=self.role_id, secret_id=secret_id, use_token=False, mount_point=self.mount
        )
        return _from_auth(response)


@dataclass(repr=False)
class JwtAuth:
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

    def login(self, client: Client) -> Login:
        jwt = self.jwt if self.jwt is not None else _read_file(self.jwt_file or "", "JWT")
        response = client.auth.jwt.jwt_login(role=self.role, jwt=jwt, use_token=False, path=self.mount)
        return _from_auth(response)


@dataclass(repr=False)
class KubernetesAuth:
    """Kubernetes auth: a role and the pod's service-account token, read at each login."""

    role: str
    jwt_file: str | os.PathLike[str] = DEFAULT_KUBERNETES_JWT
    mount: str = "kubernetes"
    method = "kubernetes"
    relogin = True

    def __repr__(self) -> str:
        return f"KubernetesAuth(role={self.role!r}, mount={self.mount!r})"

    def login(self, client: Client) -> Login:
        jwt = _read_file(self.jwt_file, "Kubernetes service-account token")
        response = client.auth.kubernetes.login(
            role=self.role, jwt=jwt, use_token=False, mount_point=self.mount
        )
        return _from_auth(response)
