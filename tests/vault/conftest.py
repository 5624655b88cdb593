"""A real OpenBao dev server for the Vault backend tests, and helpers to set it up per test."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from secretkit.backends.vault import TokenAuth, VaultBackend
from servers.openbao_server import OpenBaoAdmin, OpenBaoServer, free_port_pair

#: What an application reading secret/app/... needs: read on the KV v2 data path. The
#: mount lookup (sys/internal/ui/mounts) needs no grant of its own.
READER_POLICY = 'path "secret/data/app/*" { capabilities = ["read"] }'


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoServer]:
    """One OpenBao dev server for the session; tests use unique paths, so they never collide."""
    with OpenBaoServer() as server:
        yield server


@pytest.fixture(scope="session")
def vault(openbao: OpenBaoServer) -> OpenBaoAdmin:
    """The session server's root client and helpers; the ``reader`` policy exists."""
    admin = OpenBaoAdmin(openbao)
    admin.root.sys.create_or_update_policy("reader", READER_POLICY)
    return admin


@pytest.fixture(autouse=True)
def vault_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No settings of the machine leak in: no VAULT_* or proxy variables, a HOME with no ~/.vault-token."""
    for name in (
        "VAULT_ADDR",
        "VAULT_TOKEN",
        "VAULT_NAMESPACE",
        "VAULT_CACERT",
        "VAULT_CAPATH",
        "VAULT_SKIP_VERIFY",
        "VAULT_CLIENT_CERT",
        "VAULT_CLIENT_KEY",
        "VAULT_PROXY_ADDR",
        "VAULT_HTTP_PROXY",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    return home


@pytest.fixture
def make_backend(vault: OpenBaoAdmin) -> Iterator[Callable[..., VaultBackend]]:
    """Build VaultBackends for the session server (root token unless ``auth=``); all closed after the test."""
    made: list[VaultBackend] = []

    def make(**kwargs: Any) -> VaultBackend:
        kwargs.setdefault("url", vault.url)
        kwargs.setdefault("auth", TokenAuth(vault.server.root_token))
        backend = VaultBackend(**kwargs)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


class Postgres:
    """A throwaway PostgreSQL cluster on a free loopback port (trust auth), for the database engine.

    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user.
    """

    def __init__(self) -> None:
        self.bin_dir = _postgres_bin_dir()
        self.port = free_port_pair()
        self.root = Path(tempfile.mkdtemp(prefix="secretkit-pg-"))
        self.data = self.root / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Postgres:
        subprocess.run(
            [*self._as, str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self._process = subprocess.Popen(
            [
                *self._as,
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.root),
                "-c",
                "listen_addresses=127.0.0.1",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while self.sql("select 1") != "1":
            if time.monotonic() > deadline or self._process.poll() is not None:
                self.stop()
                raise RuntimeError("PostgreSQL did not start")
            time.sleep(0.1)
        return self

    def sql(self, query: str) -> str | None:
        """Run ``query`` as the postgres superuser; its output, or None when the server does not answer."""
        result = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-tAc",
                query,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return result.stdout.strip() if result.returncode == 0 else None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(15)
        shutil.rmtree(self.root, ignore_errors=True)


def _postgres_bin_dir() -> Path:
    found = shutil.which("initdb") or shutil.which("postgres")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for directory in candidates:
        if all((directory / tool).exists() for tool in ("initdb", "postgres", "psql")):
            return directory
    pytest.skip("PostgreSQL server binaries (initdb, postgres) are not installed")


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A PostgreSQL server for the session (skipped where PostgreSQL is not installed)."""
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run PostgreSQL as")
    server = Postgres().start()
    try:
        yield server
    finally:
        server.stop()
