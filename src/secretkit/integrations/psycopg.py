"""psycopg 3 pools (sync and async) whose connections log in with the current secret.

A pool opens connections through :class:`RotatingConnection`, which takes its login from
secretkit and, when refused, retries with the refreshed then the pending value. The pool's
``check`` (run at every checkout) notices a rotation and drains the pool: idle connections
are replaced at once, those in use when they come back. The checkout in progress keeps its
connection, whose session the database does not end when a password changes; a stale
connection checked out after the drain is discarded and another handed out. The pending
login is offered only when the connection settings make libpq verify the server
(``sslmode=verify-full`` or ``channel_binding=require``), or with the documented opt-in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .._errors import MissingDependency
from .._store import SecretStore
from ._credentials import Credential, Login, connect_with, connect_with_async, database_login
from ._destination import libpq_server_authenticated

try:
    import psycopg
    from psycopg_pool import AsyncConnectionPool, ConnectionPool
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingDependency("psycopg integration", "psycopg and psycopg-pool", "psycopg") from exc

__all__ = [
    "AsyncRotatingConnection",
    "RotatingConnection",
    "StaleConnection",
    "async_connection_pool",
    "connection_pool",
]

#: The keyword a pool passes its connection class, naming the credential to log in with.
CREDENTIAL_KWARG = "secretkit_credential"


class RotatingConnection(psycopg.Connection[Any]):
    """A connection that logs in with a :class:`Credential` and remembers which login it used."""

    secretkit_login: Login | None = None

    @classmethod
    def connect(  # type: ignore[override]
        cls, conninfo: str = "", *, secretkit_credential: Credential[Login], **kwargs: Any
    ) -> RotatingConnection:
        base_connect = super().connect
        conn, login = connect_with(
            secretkit_credential,
            lambda login: base_connect(conninfo, **{**kwargs, **login.params()}),
            psycopg.OperationalError,
            server_authenticated=_server_authenticated(conninfo, kwargs),
        )
        conn.secretkit_login = login
        return conn


class AsyncRotatingConnection(psycopg.AsyncConnection[Any]):
    """:class:`RotatingConnection` for asyncio: recovery's fetches run off the event loop."""

    secretkit_login: Login | None = None

    @classmethod
    async def connect(  # type: ignore[override]
        cls, conninfo: str = "", *, secretkit_credential: Credential[Login], **kwargs: Any
    ) -> AsyncRotatingConnection:
        base_connect = super().connect
        conn, login = await connect_with_async(
            secretkit_credential,
            lambda login: base_connect(conninfo, **{**kwargs, **login.params()}),
            psycopg.OperationalError,
            server_authenticated=_server_authenticated(conninfo, kwargs),
        )
        conn.secretkit_login = login
        return conn


def _server_authenticated(conninfo: str, kwargs: dict[str, Any]) -> bool:
    # Keyword arguments override the connection string, as in psycopg.connect.
    return libpq_server_authenticated(psycopg.conninfo.conninfo_to_dict(conninfo), kwargs)


class StaleConnection(psycopg.OperationalError):
    """Raised by the pool's check for a connection opened with a login that has rotated away.

    The pool discards it and hands out another: the caller never sees this error.
    """


class _Rotation:
    """Decides, at checkout, what a rotation means for the connection being checked out."""

    def __init__(self, credential: Credential[Login]) -> None:
        self.credential = credential
        self._drained_for: Login | None = None

    def verdict(self, conn: Any) -> str:
        """``"ok"``; ``"drain"`` the pool (the first stale connection after a rotation, which
        keeps its work); or ``"discard"`` this one (opened with the old login after the drain,
        by a connect that read the login just before the rotation was seen)."""
        login = getattr(conn, "secretkit_login", None)
        if login is None or self.credential.is_current(login):
            return "ok"
        now = self.credential.current()
        if self._drained_for is now:
            return "discard"
        self._drained_for = now
        return "drain"


def connection_pool(
    conninfo: str = "",
    *,
    secret: str | None = None,
    password: str | None = None,
    username: str | None = None,
    username_secret: str | None = None,
    pending: Sequence[str | None] | None = None,
    store: SecretStore | None = None,
    offer_pending_to_unverified_server: bool = False,
    kwargs: dict[str, Any] | None = None,
    check: Callable[[Any], None] | None = None,
    **pool_kwargs: Any,
) -> ConnectionPool[Any]:
    """A ``psycopg_pool.ConnectionPool`` logging in with a secret (see ``database_login``).

    ``conninfo`` carries no password; ``check`` (yours, optional) runs after the rotation check.
    Pass ``open=True`` or use it as a context manager, as with any pool. After a refusal the
    pending login goes only to a verified server (``sslmode=verify-full`` or
    ``channel_binding=require``) unless ``offer_pending_to_unverified_server=True``.
    """
    credential = database_login(
        secret,
        password=password,
        username=username,
        username_secret=username_secret,
        pending=pending,
        store=store,
        offer_pending_to_unverified_server=offer_pending_to_unverified_server,
    )
    rotation = _Rotation(credential)
    pools: list[ConnectionPool[Any]] = []

    def rotation_check(conn: Any) -> None:
        verdict = rotation.verdict(conn)
        if verdict == "drain":
            pools[0].drain()
        elif verdict == "discard":
            conn.close()
            raise StaleConnection("the connection's login has rotated")
        if check is not None:
            check(conn)

    pool: ConnectionPool[Any] = ConnectionPool(
        conninfo,
        connection_class=RotatingConnection,
        kwargs={**(kwargs or {}), CREDENTIAL_KWARG: credential},
        check=rotation_check,
        open=pool_kwargs.pop("open", False),
        **pool_kwargs,
    )
    pools.append(pool)
    return pool


def async_connection_pool(
    conninfo: str = "",
    *,
    secret: str | None = None,
    password: str | None = None,
    username: str | None = None,
    username_secret: str | None = None,
    pending: Sequence[str | None] | None = None,
    store: SecretStore | None = None,
    offer_pending_to_unverified_server: bool = False,
    kwargs: dict[str, Any] | None = None,
    check: Callable[[Any], Awaitable[None]] | None = None,
    **pool_kwargs: Any,
) -> AsyncConnectionPool[Any]:
    """:func:`connection_pool` for asyncio: a ``psycopg_pool.AsyncConnectionPool`` (``await pool.open()``)."""
    credential = database_login(
        secret,
        password=password,
        username=username,
        username_secret=username_secret,
        pending=pending,
        store=store,
        offer_pending_to_unverified_server=offer_pending_to_unverified_server,
    )
    rotation = _Rotation(credential)
    pools: list[AsyncConnectionPool[Any]] = []

    async def rotation_check(conn: Any) -> None:
        verdict = rotation.verdict(conn)
        if verdict == "drain":
            await pools[0].drain()
        elif verdict == "discard":
            await conn.close()
            raise StaleConnection("the connection's login has rotated")
        if check is not None:
            await check(conn)

    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        conninfo,
        connection_class=AsyncRotatingConnection,
        kwargs={**(kwargs or {}), CREDENTIAL_KWARG: credential},
        check=rotation_check,
        open=pool_kwargs.pop("open", False),
        **pool_kwargs,
    )
    pools.append(pool)
    return pool
