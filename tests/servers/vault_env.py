"""What the suites against OpenBao start from: no Vault settings of the machine, a reader policy.

Kept in one place so the Vault, identity, cluster and SOPS suites isolate the same way: a
variable secretkit or hvac reads, left set on the machine, would send a test's backend to
another server, or log it in with someone else's token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from secretkit.backends.vault import TokenAuth, VaultBackend
from servers.openbao_server import OpenBaoAdmin, OpenBaoServer

__all__ = [
    "PROXY_SETTINGS",
    "READER_POLICY",
    "VAULT_SETTINGS",
    "clear_env",
    "fresh_home",
    "reader_admin",
    "vault_backends",
]

#: What an application reading secret/app/... needs: read on the KV v2 data path. The
#: mount lookup (sys/internal/ui/mounts) needs no grant of its own.
READER_POLICY = 'path "secret/data/app/*" { capabilities = ["read"] }'

#: The Vault client's own settings: where it connects, how it trusts, whom it logs in as.
VAULT_SETTINGS = (
    "VAULT_ADDR",
    "VAULT_AGENT_ADDR",
    "VAULT_TOKEN",
    "VAULT_NAMESPACE",
    "VAULT_CACERT",
    "VAULT_CAPATH",
    "VAULT_SKIP_VERIFY",
    "VAULT_CLIENT_CERT",
    "VAULT_CLIENT_KEY",
    "VAULT_PROXY_ADDR",
    "VAULT_HTTP_PROXY",
)

#: The proxy variables requests honours, in both cases.
PROXY_SETTINGS = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
)


def clear_env(monkeypatch: pytest.MonkeyPatch, names: Iterable[str]) -> None:
    for name in names:
        monkeypatch.delenv(name, raising=False)


def fresh_home(monkeypatch: pytest.MonkeyPatch, home: Path) -> Path:
    """``home`` made and made HOME: no ~/.vault-token, ~/.aws or ~/.config of the machine's user."""
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


def reader_admin(server: OpenBaoServer) -> OpenBaoAdmin:
    """The server's root client and helpers, with the ``reader`` policy written."""
    admin = OpenBaoAdmin(server)
    admin.root.sys.create_or_update_policy("reader", READER_POLICY)
    return admin


@contextmanager
def vault_backends(root_token: str | None = None, **defaults: Any) -> Iterator[Callable[..., VaultBackend]]:
    """Makes VaultBackends (``defaults`` unless given, ``root_token`` unless ``auth=``); closes them after."""
    made: list[VaultBackend] = []

    def make(**kwargs: Any) -> VaultBackend:
        if root_token is not None:
            kwargs.setdefault("auth", TokenAuth(root_token))
        backend = VaultBackend(**{**defaults, **kwargs})
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()
