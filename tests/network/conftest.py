"""Every remote backend behind a fault-injecting proxy: the real SDK talks to a real test server.

One test server per backend for the session; each test gets fresh proxies and fresh
backends pointed at them, so a fault one test leaves behind never reaches another. Data is
written straight to the servers (not through the proxy), under names unique to each test.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from network._remotes import BUILDERS, REMOTES, Remote
from servers.aws_env import use_test_aws_env
from servers.azure_server import KeyVaultServer
from servers.azure_server import free_port as azure_free_port
from servers.faultproxy import FaultProxy
from servers.gcp_server import GcpSecretManagerServer
from servers.moto_server import MotoServer
from servers.openbao_server import OpenBaoServer


@pytest.fixture(autouse=True)
def network_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """SDKs see test credentials and no proxy, endpoint or profile of the machine."""
    use_test_aws_env(monkeypatch, tmp_path)
    for name in (
        "VAULT_ADDR",
        "VAULT_TOKEN",
        "VAULT_NAMESPACE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "AZURE_KEYVAULT_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))


@pytest.fixture(scope="session")
def net_moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture(scope="session")
def net_openbao() -> Iterator[OpenBaoServer]:
    with OpenBaoServer() as server:
        yield server


@pytest.fixture(scope="session")
def net_gcp() -> Iterator[GcpSecretManagerServer]:
    server = GcpSecretManagerServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def net_azure() -> Iterator[KeyVaultServer]:
    server = KeyVaultServer(azure_free_port()).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def remotes(
    request: pytest.FixtureRequest,
) -> Iterator[Callable[[str], Remote]]:
    """``remotes(scheme)``: that backend behind a proxy of this test's own (servers start on first use)."""
    made: list[Remote] = []

    def get(scheme: str) -> Remote:
        if scheme == "aws-sm":
            server: Any = request.getfixturevalue("net_moto")
            target = (server.host, server.port)
        elif scheme == "vault":
            server = request.getfixturevalue("net_openbao")
            target = (server.host, server.port)
        elif scheme == "gcp-sm":
            server = request.getfixturevalue("net_gcp")
            target = ("127.0.0.1", server.port)
        else:
            server = request.getfixturevalue("net_azure")
            target = ("127.0.0.1", server.port)
        proxy = FaultProxy(*target).start()
        remote = BUILDERS[scheme](server, proxy)
        made.append(remote)
        return remote

    yield get
    for remote in made:
        # Heal the network first, so closing a backend never waits on a blackholed connection.
        remote.proxy.set("pass")
        for backend in remote.made:
            backend.close()
        remote.proxy.stop()
    # Sweep the sockets cut connections left behind now, while their warning is ignored
    # (NETWORK_TEST), rather than in some later test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture(params=REMOTES)
def remote(request: pytest.FixtureRequest, remotes: Callable[[str], Remote]) -> Remote:
    """Each remote backend in turn, behind a proxy of this test's own."""
    return remotes(str(request.param))
