"""SQLAlchemy engines (sync and asyncio) whose connections log in with the current secret.

SQLAlchemy's documented hook for dynamic credentials is the ``do_connect`` event: each new
connection takes its login from secretkit, so a rotated password reaches the pool without a
restart. A connection is tagged with the login it opened with; at checkout a connection
whose login is no longer current is retired (SQLAlchemy reconnects it transparently), so
pooled connections follow a rotation before the old credentials stop working, and a
checked-out connection finishes its work untouched. After a refusal the pending login goes
only to a server the driver verifies (psycopg/psycopg2: ``sslmode=verify-full`` or
``channel_binding=require``; asyncpg: ``ssl=verify-full``), or with the documented opt-in;
other drivers need the opt-in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._errors import MissingDependency
from .._store import SecretStore
from ._credentials import Credential, Login, connect_with, database_login
from ._destination import asyncpg_server_authenticated, libpq_server_authenticated

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["attach", "create_async_engine", "create_engine"]

#: Where a pooled connection's record keeps the login it opened with.
LOGIN_KEY = "secretkit.login"


def _sqlalchemy() -> Any:
    try:
        import sqlalchemy
    except ImportError as exc:
        raise MissingDependency("sqlalchemy integration", "sqlalchemy", "sqlalchemy") from exc
    return sqlalchemy


def create_engine(
    url: Any,
    *,
    secret: str | None = None,
    password: str | None = None,
    username: str | None = None,
    username_secret: str | None = None,
    pending: Sequence[str | None] | None = None,
    store: SecretStore | None = None,
    offer_pending_to_unverified_server: bool = False,
    **kwargs: Any,
) -> Engine:
    """``sqlalchemy.create_engine(url, **kwargs)`` logging in with a secret (see ``database_login``).

    The URL carries no password: ``postgresql+psycopg://db.internal/app``; the secret gives
    the user and password (and host, port and dbname where it holds them). After a refusal
    the pending login goes only to a verified server (``?sslmode=verify-full`` or
    ``?channel_binding=require``; asyncpg: ``?ssl=verify-full``) unless
    ``offer_pending_to_unverified_server=True``.
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
    engine: Engine = _sqlalchemy().create_engine(url, **kwargs)
    attach(engine, credential)
    return engine


def create_async_engine(
    url: Any,
    *,
    secret: str | None = None,
    password: str | None = None,
    username: str | None = None,
    username_secret: str | None = None,
    pending: Sequence[str | None] | None = None,
    store: SecretStore | None = None,
    offer_pending_to_unverified_server: bool = False,
    **kwargs: Any,
) -> AsyncEngine:
    """``sqlalchemy.ext.asyncio.create_async_engine`` logging in with a secret, as :func:`create_engine`.

    The login is read at connect time; a cache miss (the first connection, a refusal)
    fetches synchronously, so prefetch the secret at start-up to keep the loop unblocked.
    """
    _sqlalchemy()
    from sqlalchemy.ext.asyncio import create_async_engine as create

    credential = database_login(
        secret,
        password=password,
        username=username,
        username_secret=username_secret,
        pending=pending,
        store=store,
        offer_pending_to_unverified_server=offer_pending_to_unverified_server,
    )
    engine = create(url, **kwargs)
    attach(engine, credential)
    return engine


def attach(engine: Engine | AsyncEngine, credential: Credential[Login]) -> None:
    """Make ``engine`` log in with ``credential`` and retire connections when it rotates."""
    sqlalchemy = _sqlalchemy()
    target = getattr(engine, "sync_engine", engine)
    driver = str(target.dialect.driver)
    dbname_key = "dbname" if driver in ("psycopg", "psycopg2", "psycopg2cffi") else "database"

    def do_connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        connection, login = connect_with(
            credential,
            lambda login: dialect.connect(*cargs, **{**cparams, **login.params(dbname_key)}),
            Exception,
            server_authenticated=_server_authenticated(driver, cargs, cparams),
        )
        record.info[LOGIN_KEY] = login
        return connection

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        login = record.info.get(LOGIN_KEY)
        if login is not None and not credential.is_current(login):
            # Not a broken connection: one whose login has rotated away. The pool closes it
            # and opens a fresh one for this checkout, invisibly to the caller.
            raise sqlalchemy.exc.DisconnectionError("secretkit: the connection's credentials have rotated")

    sqlalchemy.event.listen(target, "do_connect", do_connect)
    sqlalchemy.event.listen(target.pool, "checkout", checkout)


#: The SQLAlchemy drivers built on libpq, whose connection settings libpq reads.
_LIBPQ_DRIVERS = frozenset({"psycopg", "psycopg2", "psycopg2cffi"})


def _server_authenticated(driver: str, cargs: Any, cparams: dict[str, Any]) -> bool:
    """Whether ``driver``, connecting with these arguments, verifies the server before a password goes."""
    dsn = cargs[0] if cargs and isinstance(cargs[0], str) else cparams.get("dsn")
    if driver in _LIBPQ_DRIVERS:
        return libpq_server_authenticated(_libpq_dsn(dsn), cparams)
    if driver == "asyncpg":
        return asyncpg_server_authenticated(dsn, cparams.get("ssl"))
    return False  # a driver whose TLS settings secretkit does not read: only the opt-in offers pending


def _libpq_dsn(dsn: Any) -> dict[str, Any]:
    if not isinstance(dsn, str) or not dsn:
        return {}
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:
        return {}  # unparsed: its sslmode does not count, so the safe answer (unverified) stands
    return conninfo_to_dict(dsn)
