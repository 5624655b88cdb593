"""How the Vault backend reaches Vault: its client, set up as the vault CLI's, and what an answer means.

Kept apart from :mod:`secretkit.backends.vault`, which reads: this module turns the vault
CLI's environment (``VAULT_ADDR``, ``VAULT_AGENT_ADDR``, ``VAULT_CACERT``, ``VAULT_SKIP_VERIFY``,
``VAULT_CLIENT_CERT``, the proxy variables) into a client, a failed request into one of
secretkit's errors, and ``/v1/sys/health``'s status into what ``secretkit doctor`` reports.
hvac and requests are imported by the functions that need them, not with this module.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    SecretkitError,
    SecretNotFound,
)
from .._refs import SecretRef
from .._throttled import Throttled
from ._http import last_retry_after
from ._vault_token import vault_errors

if TYPE_CHECKING:
    from hvac import Client

__all__ = [
    "CONNECT_TIMEOUT",
    "DEFAULT_ADDR",
    "DEFAULT_TIMEOUT",
    "address_from_env",
    "client_from_env",
    "health",
    "request_error",
]

DEFAULT_ADDR = "https://127.0.0.1:8200"  # the vault CLI's default
# Per-socket timeouts (requests applies them to the connect and to each read, not to the
# whole request). hvac's default of 30 s let one dripping response hold a caller for
# minutes; the store's total deadline (5 s by default) bounds the caller, and these keep
# an attempt the store has given up on from lingering in its worker thread much longer.
DEFAULT_TIMEOUT = 3.0
CONNECT_TIMEOUT = 2.0

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


def address_from_env(addresses: Sequence[str] | None, url: str | None) -> tuple[str, str]:
    """The address to build the client for, and what to add to errors when nobody gave it."""
    env = os.environ
    # As Vault's own client: the agent's address, when set, over VAULT_ADDR.
    from_env = env.get("VAULT_AGENT_ADDR") or env.get("VAULT_ADDR")
    address = (addresses[0] if addresses else None) or url or from_env or DEFAULT_ADDR
    if address == DEFAULT_ADDR and not (addresses or url or from_env):
        return address, f"VAULT_ADDR is not set, so the vault CLI's default {DEFAULT_ADDR} was used"
    return address, ""


def client_from_env(
    address: str, session: Any, *, namespace: str | None, verify: bool | str | None, timeout: float
) -> Client:
    """An hvac client for ``address`` that sends through ``session``, with no token yet (login is lazy)."""
    import hvac

    env = os.environ
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
    client.session = session
    return client


def request_error(errors: Any, url: str, exc: BaseException, ref: SecretRef, api_path: str) -> SecretkitError:
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


def health(status: int) -> tuple[bool, str]:
    """``(healthy, what it means)`` for a ``/v1/sys/health`` status."""
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
