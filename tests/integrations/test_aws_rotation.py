"""SQLAlchemy engines and psycopg pools keep working through AWS Secrets Manager rotations.

The rotation is the real protocol (see ``rotation.py``) against moto and a real PostgreSQL,
for the single-user and the alternating-users strategies, driven step by step by the test
while 8 threads run queries. A plain engine or pool with the password in its URL runs
alongside: it is the baseline that shows the rotations really break stale credentials.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import psycopg_pool
import pytest
import sqlalchemy
from sqlalchemy.pool import NullPool

from integrations.rotation import STEPS, Recycler, Rotator, create_app_secret
from integrations.workload import Workload
from secretkit import SecretStore
from secretkit.integrations.psycopg import connection_pool
from secretkit.integrations.sqlalchemy import create_engine
from servers.postgres_server import Postgres

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("aws_env")]

THREADS = 8
ROTATIONS = 3
STRATEGIES = pytest.mark.parametrize("alternating", [False, True], ids=["single-user", "alternating-users"])

# The throwaway PostgreSQL listens on loopback without TLS, so it cannot authenticate itself
# (no verify-full certificate, no channel binding): the pools opt in to offering it the pending
# password, which a single-user rotation's window needs (docs/integrations/databases.md).
UNVERIFIED_OK = {"offer_pending_to_unverified_server": True}


def unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def plain_url(sm: Any, secret_id: str) -> sqlalchemy.URL:
    document = json.loads(sm.get_secret_value(SecretId=secret_id)["SecretString"])
    return sqlalchemy.URL.create(
        "postgresql+psycopg",
        username=document["username"],
        password=document["password"],
        host=document["host"],
        port=document["port"],
        database=document["dbname"],
    )


def engine_query(engine: sqlalchemy.Engine) -> Any:
    def query() -> object:
        with engine.connect() as conn:
            return conn.execute(sqlalchemy.text("select current_user")).scalar_one()

    return query


def rotate_under_load(load: Workload, rotator: Rotator, on_step: Any = None) -> None:
    """Run ROTATIONS rotations, one step at a time, letting every worker run a few queries after each."""
    load.wait(5)
    for _ in range(ROTATIONS):
        for step in STEPS:
            rotator.step(step)
            if on_step is not None:
                on_step(step)
            load.wait(3)


@STRATEGIES
def test_engine_runs_every_query_through_rotations(
    alternating: bool, postgres: Postgres, sm_admin: Any
) -> None:
    """0 failed queries through a secretkit engine over 3 rotations, while a password-in-URL engine fails."""
    name = unique("rds/app")
    create_app_secret(sm_admin, postgres, name, unique("app"), alternating=alternating)
    rotator = Rotator(sm_admin, postgres, name, alternating=alternating)
    pool = {"pool_size": 2, "max_overflow": THREADS - 2}
    with SecretStore([], ttl=2.0) as store:
        ref = f"aws-sm://{name}"
        engine = create_engine("postgresql+psycopg://", secret=ref, store=store, **UNVERIFIED_OK, **pool)
        fresh = create_engine(
            "postgresql+psycopg://", secret=ref, store=store, poolclass=NullPool, **UNVERIFIED_OK
        )
        baseline = sqlalchemy.create_engine(plain_url(sm_admin, name), **pool)
        recycler = Recycler(engine, baseline)
        users: set[str] = set()

        def in_window(step: str) -> None:
            # Between setSecret and finishSecret a single user's new connections need the
            # pending password: a brand-new connection must still log in.
            if step in ("setSecret", "testSecret"):
                users.add(engine_query(fresh)())
            # Pools reconnect (a failover, an idle timeout, pool_recycle): make it happen now,
            # to both engines alike, so the baseline's stale password is put to the test.
            if step == "finishSecret":
                recycler.recycle()

        targets = {
            "secretkit": (engine_query(engine), THREADS),
            "baseline": (engine_query(baseline), THREADS),
        }
        with Workload(targets) as load:
            rotate_under_load(load, rotator, in_window)
            load.wait_for_failure("baseline")  # its next connect after a rotation that changed its password

        assert load.failed("secretkit") == 0, load.errors("secretkit")
        assert load.ok("secretkit") > ROTATIONS * len(STEPS) * 3 * THREADS
        assert load.failed("baseline") > 0
        with pytest.raises(sqlalchemy.exc.OperationalError):
            with NullPool_engine(baseline).connect():
                pass
        if alternating:
            assert len(users) == 2  # both users of the pair logged in as their turn came
        for made in (engine, fresh, baseline):
            made.dispose()


def NullPool_engine(engine: sqlalchemy.Engine) -> sqlalchemy.Engine:
    """The same URL (password included) with no pool: every connect is a fresh login."""
    return sqlalchemy.create_engine(engine.url, poolclass=NullPool)


@STRATEGIES
def test_psycopg_pool_runs_every_query_through_rotations(
    alternating: bool, postgres: Postgres, sm_admin: Any
) -> None:
    """0 failed queries through a secretkit psycopg pool over 3 rotations, while a plain pool fails."""
    name = unique("rds/pool")
    create_app_secret(sm_admin, postgres, name, unique("app"), alternating=alternating)
    rotator = Rotator(sm_admin, postgres, name, alternating=alternating)
    document = json.loads(sm_admin.get_secret_value(SecretId=name)["SecretString"])
    # Connections live 1 s, so the pools reconnect during every step of every rotation.
    sizes = {"min_size": 2, "max_size": THREADS, "max_lifetime": 1.0, "timeout": 5.0}
    with SecretStore([], ttl=2.0) as store:
        pool = connection_pool(secret=f"aws-sm://{name}", store=store, **UNVERIFIED_OK, **sizes)
        baseline = psycopg_pool.ConnectionPool(
            postgres.dsn(document["username"], document["password"]), open=False, **{**sizes, "timeout": 0.5}
        )

        def pooled(p: psycopg_pool.ConnectionPool[Any]) -> Any:
            def query() -> object:
                with p.connection() as conn:
                    return conn.execute("select current_user").fetchone()

            return query

        def reconnect_all(step: str) -> None:
            # As in the engine test: the pools reconnect after each rotation (here: drain()),
            # both alike, on top of the 1 s lifetime of their connections.
            if step == "finishSecret":
                pool.drain()
                baseline.drain()

        with pool, baseline:
            with Workload({"secretkit": (pooled(pool), THREADS), "baseline": (pooled(baseline), 2)}) as load:
                rotate_under_load(load, rotator, reconnect_all)
                load.wait_for_failure("baseline")
                # Once the store has seen the last rotation (here: at once, rather than after
                # its TTL), its login reaches every connection the pool hands out.
                store.refresh(f"aws-sm://{name}")
                load.wait(3)
                users = {pooled(pool)()[0] for _ in range(THREADS)}

        assert load.failed("secretkit") == 0, load.errors("secretkit")
        assert load.ok("secretkit") > ROTATIONS * len(STEPS) * 3 * THREADS
        assert load.failed("baseline") > 0
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(postgres.dsn(document["username"], document["password"])).close()
        # The stage named: moto's default version stays behind a staging-label move (AWS's does not).
        final = json.loads(
            sm_admin.get_secret_value(SecretId=name, VersionStage="AWSCURRENT")["SecretString"]
        )
        assert users == {final["username"]}
