"""Pools on Vault/OpenBao dynamic database credentials: leases renewed, replaced and revoked, no query lost.

OpenBao's database secrets engine creates a PostgreSQL user per lease, with seconds-long
``default_ttl``/``max_ttl``: the store renews a lease until ``max_ttl`` is near, then takes a
new user, and OpenBao drops the old user when its lease ends. The revocation statements
also end the old user's sessions and record when, so a query that ran on a revoked user's
connection would both fail and show up in the record. Workers run through several lease
lifetimes; the test waits for revocations to happen, it does not guess their time.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import psycopg
import pytest
import sqlalchemy

from integrations.workload import Workload
from secretkit import SecretStore
from secretkit.backends.vault import TokenAuth, VaultBackend
from secretkit.integrations.psycopg import connection_pool
from secretkit.integrations.sqlalchemy import create_engine
from servers.openbao_server import OpenBaoAdmin
from servers.postgres_server import Postgres

pytestmark = pytest.mark.slow

THREADS = 8
LEASE, MAX_LEASE = 4, 10  # seconds: each user is renewed once or twice, then replaced
REVOCATIONS = 2  # full lease lifetimes the workers run through

# The throwaway PostgreSQL listens on loopback without TLS, so it cannot authenticate itself
# (no verify-full certificate, no channel binding): the pools opt in to offering it the pending
# credential, here the next lease, which a revoked user's refusal needs (docs/integrations/databases.md).
UNVERIFIED_OK = {"offer_pending_to_unverified_server": True}


@pytest.fixture(scope="module")
def database(vault_admin: OpenBaoAdmin, postgres: Postgres) -> str:
    """A database mount whose role ``app`` issues short-lived PostgreSQL users (``held``: 5-minute ones).

    Revocations are recorded.
    """
    with psycopg.connect(postgres.dsn(), autocommit=True) as admin:
        admin.execute(
            "CREATE TABLE IF NOT EXISTS revoked (rolname text, at timestamptz DEFAULT clock_timestamp())"
        )
        admin.execute("GRANT SELECT ON revoked TO PUBLIC")
    return vault_admin.database_mount(
        postgres.port,
        {"app": (f"{LEASE}s", f"{MAX_LEASE}s"), "held": ("300s", "600s")},
        revocation_statements=[
            "INSERT INTO revoked (rolname) VALUES ('{{name}}');",
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';",
            'DROP ROLE IF EXISTS "{{name}}";',
        ],
    )


def revocations(postgres: Postgres) -> dict[str, datetime]:
    with psycopg.connect(postgres.dsn()) as admin:
        return dict(admin.execute("SELECT rolname, at FROM revoked").fetchall())


def run_through_leases(
    postgres: Postgres, query: Callable[[], tuple[str, datetime]]
) -> tuple[Workload, list[Any]]:
    """Run ``query`` on 8 threads until REVOCATIONS more users have been revoked; the rows it returned."""
    rows: list[tuple[str, datetime]] = []
    lock = threading.Lock()

    def recorded() -> None:
        row = query()
        with lock:
            rows.append(row)

    before = set(revocations(postgres))
    with Workload({"secretkit": (recorded, THREADS)}) as load:
        deadline = time.monotonic() + 6 * MAX_LEASE
        while len({u for u, _ in rows} & (set(revocations(postgres)) - before)) < REVOCATIONS:
            assert time.monotonic() < deadline, "OpenBao revoked no users of ours in time"
            load.wait(1)
            time.sleep(0.2)
    return load, rows


def assert_no_revoked_user_used(postgres: Postgres, rows: list[tuple[str, datetime]]) -> None:
    revoked = revocations(postgres)
    late = [(user, at) for user, at in rows if user in revoked and at >= revoked[user]]
    assert late == [], "queries ran as a user after OpenBao revoked it"


def vault_store(vault_admin: OpenBaoAdmin) -> SecretStore:
    backend = VaultBackend(url=vault_admin.url, auth=TokenAuth(vault_admin.server.root_token))
    return SecretStore([], reference_backends=[backend], ttl=3600)


def test_engine_follows_dynamic_credentials_through_revocations(
    vault_admin: OpenBaoAdmin, database: str, postgres: Postgres
) -> None:
    """0 failed queries through a SQLAlchemy engine while users are renewed, replaced and revoked."""
    with vault_store(vault_admin) as store:
        engine = create_engine(
            f"postgresql+psycopg://127.0.0.1:{postgres.port}/postgres",
            secret=f"vault://{database}/creds/app?engine=generic",
            store=store,
            pool_size=THREADS,
            **UNVERIFIED_OK,
        )

        def query() -> tuple[str, datetime]:
            with engine.connect() as conn:
                row = conn.execute(sqlalchemy.text("select current_user, clock_timestamp()")).one()
                return str(row[0]), row[1]

        load, rows = run_through_leases(postgres, query)
        engine.dispose()

    assert load.failed("secretkit") == 0, load.errors("secretkit")
    assert len({user for user, _ in rows}) > REVOCATIONS
    assert_no_revoked_user_used(postgres, rows)


def test_psycopg_pool_follows_dynamic_credentials_through_revocations(
    vault_admin: OpenBaoAdmin, database: str, postgres: Postgres
) -> None:
    """0 failed queries through a psycopg pool while users are renewed, replaced and revoked."""
    with vault_store(vault_admin) as store:
        pool = connection_pool(
            f"host=127.0.0.1 port={postgres.port} dbname=postgres",
            secret=f"vault://{database}/creds/app?engine=generic",
            store=store,
            min_size=2,
            max_size=THREADS,
            **UNVERIFIED_OK,
        )

        def query() -> tuple[str, datetime]:
            with pool.connection() as conn:
                row = conn.execute("select current_user, clock_timestamp()").fetchone()
                assert row is not None
                return str(row[0]), row[1]

        with pool:
            load, rows = run_through_leases(postgres, query)

    assert load.failed("secretkit") == 0, load.errors("secretkit")
    assert len({user for user, _ in rows}) > REVOCATIONS
    assert_no_revoked_user_used(postgres, rows)


def test_engine_takes_the_next_lease_when_a_young_one_is_revoked(
    vault_admin: OpenBaoAdmin, database: str, postgres: Postgres
) -> None:
    """A lease revoked minutes before it ends (a leaked user cut off): the next login takes a new user.

    The store still holds the revoked credential (it is young, and the store's TTL is an hour);
    refreshing brings the same one back, so the engine asks for the next lease.
    """
    name = f"vault://{database}/creds/held?engine=generic"
    with vault_store(vault_admin) as store:
        engine = create_engine(
            f"postgresql+psycopg://127.0.0.1:{postgres.port}/postgres",
            secret=name,
            store=store,
            **UNVERIFIED_OK,
        )

        def user() -> str:
            with engine.connect() as conn:
                return str(conn.execute(sqlalchemy.text("select current_user")).scalar_one())

        first = user()
        held = store.get(name)
        assert held.field("username").reveal() == first
        vault_admin.root.sys.revoke_lease(lease_id=held.version)
        assert first in revocations(postgres)
        engine.dispose()  # the revoked user's sessions were ended: log in again

        second = user()
        assert second != first
        assert store.refresh(name).field("username").reveal() == second
        engine.dispose()
