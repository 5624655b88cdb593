"""Async consumers (SQLAlchemy asyncio engines, psycopg AsyncConnectionPool, asyncpg) through AWS rotations.

A single-user rotation is the hard case: between ``setSecret`` and ``finishSecret`` only the
pending password logs in. After every step each pool is made to reconnect, so new
connections are opened in every phase of the rotation, while 8 tasks per pool run queries.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import sqlalchemy

from integrations.rotation import STEPS, Recycler, Rotator, create_app_secret
from secretkit import SecretStore
from secretkit.integrations.asyncpg import create_pool
from secretkit.integrations.psycopg import async_connection_pool
from secretkit.integrations.sqlalchemy import create_async_engine
from servers.postgres_server import Postgres

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("aws_env")]

TASKS = 8
ROTATIONS = 2

# The throwaway PostgreSQL listens on loopback without TLS, so it cannot authenticate itself
# (no verify-full certificate, no channel binding): the pools opt in to offering it the pending
# password, which a single-user rotation's window needs (docs/integrations/databases.md).
UNVERIFIED_OK = {"offer_pending_to_unverified_server": True}


class AsyncLoad:
    """TASKS tasks calling ``query`` in a loop; ``wait(n)`` returns once each has run n more times."""

    def __init__(self, query: Callable[[], Awaitable[object]]) -> None:
        self.query = query
        self.progress = [0] * TASKS
        self.ok = 0
        self.errors: dict[str, int] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _run(self, index: int) -> None:
        while not self._stop.is_set():
            try:
                await self.query()
            except Exception as exc:
                self.errors[type(exc).__name__] = self.errors.get(type(exc).__name__, 0) + 1
            else:
                self.ok += 1
            self.progress[index] += 1

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(i)) for i in range(TASKS)]

    async def wait(self, n: int) -> None:
        goal = [p + n for p in self.progress]
        async with asyncio.timeout(120):
            while any(p < g for p, g in zip(self.progress, goal, strict=True)):
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


async def rotate_under_async_load(
    load: AsyncLoad, rotator: Rotator, reconnect: Callable[[], Awaitable[None]]
) -> None:
    load.start()
    try:
        await load.wait(3)
        for _ in range(ROTATIONS):
            for step in STEPS:
                await asyncio.to_thread(rotator.step, step)
                await reconnect()
                await load.wait(3)
    finally:
        await load.stop()


def new_rotation(sm: Any, postgres: Postgres) -> tuple[str, Rotator]:
    name = f"rds/async-{uuid.uuid4().hex[:10]}"
    create_app_secret(sm, postgres, name, f"app_{uuid.uuid4().hex[:10]}", alternating=False)
    return f"aws-sm://{name}", Rotator(sm, postgres, name, alternating=False)


@pytest.mark.parametrize("driver", ["asyncpg", "psycopg"])
async def test_async_engine_runs_every_query_through_rotations(
    driver: str, postgres: Postgres, sm_admin: Any
) -> None:
    """0 failed queries through an asyncio engine (asyncpg or psycopg driver) over single-user rotations."""
    ref, rotator = new_rotation(sm_admin, postgres)
    with SecretStore([], ttl=2.0) as store:
        await asyncio.to_thread(store.get, ref)  # prefetched: connects then read from the cache
        engine = create_async_engine(
            f"postgresql+{driver}://", secret=ref, store=store, pool_size=TASKS, **UNVERIFIED_OK
        )
        recycler = Recycler(engine.sync_engine)

        async def recycle() -> None:
            recycler.recycle()

        async def query() -> object:
            async with engine.connect() as conn:
                return (await conn.execute(sqlalchemy.text("select current_user"))).scalar_one()

        load = AsyncLoad(query)
        await rotate_under_async_load(load, rotator, recycle)
        await engine.dispose()
    assert load.errors == {}
    assert load.ok > ROTATIONS * len(STEPS) * 3 * TASKS


async def test_async_psycopg_pool_runs_every_query_through_rotations(
    postgres: Postgres, sm_admin: Any
) -> None:
    """0 failed queries through a psycopg AsyncConnectionPool over single-user rotations."""
    ref, rotator = new_rotation(sm_admin, postgres)
    with SecretStore([], ttl=2.0) as store:
        pool = async_connection_pool(
            secret=ref, store=store, min_size=2, max_size=TASKS, timeout=10, **UNVERIFIED_OK
        )

        async def query() -> object:
            async with pool.connection() as conn:
                return await (await conn.execute("select current_user")).fetchone()

        async with pool:
            load = AsyncLoad(query)
            await rotate_under_async_load(load, rotator, pool.drain)
    assert load.errors == {}
    assert load.ok > ROTATIONS * len(STEPS) * 3 * TASKS


async def test_asyncpg_pool_runs_every_query_through_rotations(postgres: Postgres, sm_admin: Any) -> None:
    """0 failed queries through an asyncpg pool over single-user rotations."""
    ref, rotator = new_rotation(sm_admin, postgres)
    with SecretStore([], ttl=2.0) as store:
        pool = await create_pool(secret=ref, store=store, min_size=2, max_size=TASKS, **UNVERIFIED_OK)

        async def query() -> object:
            async with pool.acquire() as conn:
                return await conn.fetchval("select current_user")

        try:
            load = AsyncLoad(query)
            await rotate_under_async_load(load, rotator, pool.expire_connections)
        finally:
            await pool.close()
    assert load.errors == {}
    assert load.ok > ROTATIONS * len(STEPS) * 3 * TASKS
