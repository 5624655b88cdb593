"""asyncpg pools whose connections log in with the current secret.

The pool opens connections through a ``connect`` function that takes the login from
secretkit and, when refused (``InvalidPasswordError`` and other 28xxx errors), retries with
the refreshed then the pending value. Its ``setup`` hook (run at every acquire) notices a
rotation and expires the pool's connections: each is replaced at its next acquire, and the
acquire in progress keeps its connection, whose session a password change does not end.
The pending login is offered only when asyncpg verifies the server's certificate and host
name (``ssl="verify-full"``, ``ssl=True``, such an ``SSLContext``), or with the opt-in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .._errors import MissingDependency
from .._store import SecretStore
from ._credentials import Credential, Login, connect_with_async, database_login
from ._destination import asyncpg_server_authenticated

try:
    import asyncpg
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise MissingDependency("asyncpg integration", "asyncpg", "asyncpg") from exc

__all__ = ["RotatingConnection", "create_pool"]


class RotatingConnection(asyncpg.Connection):  # type: ignore[misc]
    """An asyncpg connection that remembers the login it was opened with."""

    __slots__ = ("secretkit_login",)


async def create_pool(
    dsn: str | None = None,
    *,
    secret: str | None = None,
    password: str | None = None,
    username: str | None = None,
    username_secret: str | None = None,
    pending: Sequence[str | None] | None = None,
    store: SecretStore | None = None,
    offer_pending_to_unverified_server: bool = False,
    setup: Callable[[Any], Awaitable[None]] | None = None,
    **pool_kwargs: Any,
) -> Any:
    """``asyncpg.create_pool(dsn, **pool_kwargs)`` logging in with a secret (see ``database_login``).

    ``dsn`` carries no password; ``setup`` (yours, optional) runs after the rotation check.
    After a refusal the pending login goes only to a server asyncpg verifies (``ssl="verify-full"``)
    unless ``offer_pending_to_unverified_server=True``.
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

    async def connect(*args: Any, **kwargs: Any) -> Any:
        return await _connect(credential, args, kwargs)

    async def rotation_setup(connection: Any) -> None:
        login = getattr(connection, "secretkit_login", None)
        if login is not None and not credential.is_current(login):
            # Every connection opened before now is replaced at its next acquire; that also
            # covers one opened with the old login while the rotation was being noticed.
            await pool.expire_connections()
        if setup is not None:
            await setup(connection)

    pool_kwargs.setdefault("connection_class", RotatingConnection)
    pool = await asyncpg.create_pool(dsn, connect=connect, setup=rotation_setup, **pool_kwargs)
    return pool


async def _connect(credential: Credential[Login], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    connection, login = await connect_with_async(
        credential,
        lambda login: asyncpg.connect(*args, **{**kwargs, **login.params("database")}),
        (asyncpg.PostgresError, OSError),
        server_authenticated=asyncpg_server_authenticated(
            args[0] if args else kwargs.get("dsn"), kwargs.get("ssl")
        ),
    )
    connection.secretkit_login = login
    return connection
