"""What every credential consumer shares: the current login, rotation checks, and recovery on refusal.

A pool or an HTTP client asks :class:`Credential` for the value to log in with; on an
authentication error it asks :meth:`Credential.recover`, which tries the refreshed current
value, then the pending one (AWS ``AWSPENDING``, the next Vault lease), as DESIGN.md's
"credential consumer" rule says. Between ``setSecret`` and ``finishSecret`` of a single-user rotation only the
pending password works; a pending value that logged in is kept in use until the store's
current value moves on, so every thread does not rediscover it. The pending value is offered
only to a server that authenticated itself (see ``_destination.py``), or where the user opted
in with ``offer_pending_to_unverified_server=True``: a server that refuses a login must not
collect the next password.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar

from .._api import default_store
from .._backend_class import pending_of
from .._errors import ConfigurationError, SecretkitError, SecretNotFound
from .._refs import SecretRef, reference_scheme
from .._registry import backend_class, is_reference
from .._secret import Secret
from .._store import SecretStore

__all__ = ["Credential", "Login", "database_login", "is_auth_error", "pending_reference"]

T = TypeVar("T")
C = TypeVar("C")

#: PostgreSQL's invalid_password and invalid_authorization_specification.
AUTH_SQLSTATES = frozenset({"28P01", "28000"})
#: What libpq puts in a refused connection's message, for drivers (psycopg) that give no SQLSTATE
#: for a failed connect. Server messages are English unless lc_messages says otherwise.
_AUTH_MESSAGES = (
    "password authentication failed",
    "is not permitted to log in",
    'role "',  # ... does not exist
    "pam authentication failed",
)
#: How many refused values a credential remembers (a rotation refuses one or two).
REFUSED_KEPT = 4
#: Logins tried per new connection: the current one, the refreshed one, the pending one.
MAX_ATTEMPTS = 3
#: MySQL's ER_ACCESS_DENIED_ERROR, for pymysql/mysqlclient errors whose args[0] is the code.
_MYSQL_ACCESS_DENIED = 1045


def is_auth_error(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) is the database refusing a login."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        err = todo.pop()
        if err is None or id(err) in seen:
            continue
        seen.add(id(err))
        if getattr(err, "sqlstate", None) in AUTH_SQLSTATES or getattr(err, "pgcode", None) in AUTH_SQLSTATES:
            return True
        if err.args and err.args[0] == _MYSQL_ACCESS_DENIED:
            return True
        text = str(err)
        if "FATAL" in text and any(marker in text for marker in _AUTH_MESSAGES):
            return True
        orig = getattr(err, "orig", None)
        todo += [err.__cause__, err.__context__, orig if isinstance(orig, BaseException) else None]
    return False


def pending_reference(name: str) -> str | None:
    """The reference to the pending version of ``name``, where its backend has one.

    The backend class says (its ``pending_reference``, see :mod:`secretkit._backend_class`):
    for ``aws-sm://`` it is the same secret at ``?stage=AWSPENDING``; for a leased Vault
    credential (``vault://...?engine=generic``) the next lease, ``&lease=new``. A plain name,
    an unknown scheme or a backend that declares nothing has none. Only the backend's module
    is imported to ask, never its SDK.
    """
    scheme = reference_scheme(name)
    if scheme is None or not is_reference(name):
        return None
    ref = SecretRef.parse(name)
    try:
        cls = backend_class(scheme)
    except ConfigurationError:
        return None  # a plugin that cannot be imported: reading the name itself says so
    pending = pending_of(cls, ref)
    return None if pending is None else str(pending)


class Credential(Generic[T]):
    """A value built from one or more secrets of a store, kept current through rotation.

    ``build`` turns the secrets of ``names`` into the value (a :class:`Login`, a header);
    ``same`` says whether two values log in the same way. ``pending`` names, one per name,
    are tried after a refusal when refreshing brought nothing new; ``None`` entries have none.
    They are tried only for a server that authenticated itself (the consumer says so to
    :meth:`recover`) unless ``offer_pending_to_unverified_server`` is true.
    """

    def __init__(
        self,
        names: Sequence[str],
        build: Callable[[Sequence[Secret[Any]]], T],
        same: Callable[[T, T], bool],
        *,
        pending: Sequence[str | None] | None = None,
        store: SecretStore | None = None,
        offer_pending_to_unverified_server: bool = False,
    ) -> None:
        if not names:
            raise ConfigurationError("a credential needs at least one secret name")
        self.names = tuple(names)
        self.pending = tuple(pending_reference(n) for n in names) if pending is None else tuple(pending)
        if len(self.pending) != len(self.names):
            raise ConfigurationError("give one pending reference (or None) per secret name")
        self._store = store
        #: The user's opt-in: offer the pending value to a server that has not proved who it is.
        self.offer_pending_to_unverified_server = offer_pending_to_unverified_server
        self._build = build
        self._same = same
        self._lock = threading.Lock()
        # (the secrets it was built from, the value): rebuilt only when the store hands out
        # other Secret objects, so a check on a hot path is a few identity comparisons.
        self._built: tuple[tuple[Secret[Any], ...], T] | None = None
        # A pending value that logged in while the store's current one was refused: used
        # for as long as the store's current secrets are still the refused ones.
        self._override: tuple[tuple[Secret[Any], ...], T] | None = None
        # The last few values the server refused (in this process's memory only, like the
        # values themselves): never offered again, whatever a late refresh brings back.
        self._refused: list[T] = []
        #: How many times a refusal made this credential ask the store again (a measure).
        self.recoveries = 0

    @property
    def store(self) -> SecretStore:
        return self._store if self._store is not None else default_store()

    def current(self) -> T:
        """The value to log in with now (a cache hit in the store unless it is due for refresh)."""
        store = self.store
        secrets = tuple(store.get(name) for name in self.names)
        return self._value_for(secrets)

    def is_current(self, value: T) -> bool:
        """Whether ``value`` is still the one to log in with (a rotation retires it when not).

        When the store cannot say (its backend is down past ``max_stale``), the answer is yes:
        an outage of the secret store must not take working connections away.
        """
        try:
            now = self.current()
        except SecretkitError:
            return True
        return now is value or self._same(now, value)

    def recover(self, refused: T, *, server_authenticated: bool = False) -> T | None:
        """After ``refused`` was refused: the refreshed current value, else the pending one, else None.

        A value refused before is never offered again: a refresh that was already in flight
        when the secret rotated can bring back the old value, so the store is asked once more.
        The pending value is looked up only when ``server_authenticated`` (the refusing server
        proved its identity before the login was sent) or the credential was built with
        ``offer_pending_to_unverified_server=True``: otherwise the refusal may come from an
        impostor that wants the next password.
        """
        with self._lock:
            self._remember_refused(refused)
            # Another thread may already have recovered while this one waited for the lock.
            now = self.current()
            if not self._was_refused(now):
                return now
            self.recoveries += 1
            store = self.store
            override = self._override
            if override is not None and self._was_refused(override[1]):
                self._override = None  # the pending value we switched to is refused too
            for _ in range(2):
                refreshed = tuple(store.refresh(name) for name in self.names)
                value = self._value_for(refreshed)
                if not self._was_refused(value):
                    return value
            if not (server_authenticated or self.offer_pending_to_unverified_server):
                return None
            pending = self._pending_secrets(refreshed)
            if pending is None:
                return None
            candidate = self._build(pending)
            if self._was_refused(candidate):
                return None
            self._override = (refreshed, candidate)
            return candidate

    def _remember_refused(self, value: T) -> None:
        if not self._was_refused(value):
            self._refused = [*self._refused[-(REFUSED_KEPT - 1) :], value]

    def _was_refused(self, value: T) -> bool:
        return any(value is old or self._same(value, old) for old in self._refused)

    def _value_for(self, secrets: tuple[Secret[Any], ...]) -> T:
        override = self._override
        if override is not None:
            if _same_secrets(override[0], secrets):
                return override[1]
            value = self._built_for(secrets)
            if self._refused and self._was_refused(value):
                # The store went back to a value already refused (a late refresh that began
                # before the rotation): keep the pending value that works.
                return override[1]
            self._override = None  # the store moved on (finishSecret was seen): back to current
            return value
        return self._built_for(secrets)

    def _built_for(self, secrets: tuple[Secret[Any], ...]) -> T:
        built = self._built
        if built is not None and _same_secrets(built[0], secrets):
            if any(x is not y for x, y in zip(built[0], secrets, strict=True)):
                # A refetch of unchanged secrets: keep the value (and its identity), so
                # connections opened with it are not retired for nothing.
                self._built = (secrets, built[1])
            return built[1]
        value = self._build(secrets)
        self._built = (secrets, value)
        return value

    def _pending_secrets(self, current: tuple[Secret[Any], ...]) -> tuple[Secret[Any], ...] | None:
        if not any(self.pending):
            return None
        store = self.store
        out: list[Secret[Any]] = []
        for secret, pending in zip(current, self.pending, strict=True):
            if pending is None:
                out.append(secret)
                continue
            try:
                out.append(store.refresh(pending))
            except SecretNotFound:
                out.append(secret)  # no rotation under way for this one
        return tuple(out)


def _same_secrets(a: tuple[Secret[Any], ...], b: tuple[Secret[Any], ...]) -> bool:
    # Identity first (the hot path); equal values count as the same (a refetch of an unchanged secret).
    return all(x is y or x == y for x, y in zip(a, b, strict=True))


class Login:
    """A database login: user, password, and optionally where (host, port, dbname).

    Its ``repr`` shows the user and where, never the password.
    """

    __slots__ = ("dbname", "host", "password", "port", "user")

    def __init__(
        self,
        user: str | None,
        password: str,
        host: str | None = None,
        port: int | None = None,
        dbname: str | None = None,
    ) -> None:
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.dbname = dbname

    def params(self, dbname_key: str = "dbname") -> dict[str, Any]:
        """Connection keyword arguments (only the parts this login sets); ``dbname_key`` per driver."""
        out: dict[str, Any] = {"password": self.password}
        for key, value in (("user", self.user), ("host", self.host), ("port", self.port)):
            if value is not None:
                out[key] = value
        if self.dbname is not None:
            out[dbname_key] = self.dbname
        return out

    def same(self, other: Login) -> bool:
        return (self.user, self.host, self.port, self.dbname) == (
            other.user,
            other.host,
            other.port,
            other.dbname,
        ) and hmac.compare_digest(self.password.encode(), other.password.encode())

    def __repr__(self) -> str:
        return f"Login(user={self.user!r}, host={self.host!r}, port={self.port!r}, dbname={self.dbname!r})"

    def __reduce_ex__(self, protocol: object) -> Any:
        raise TypeError("a Login holds a password and cannot be pickled")


def database_login(
    secret: str | None = None,
    *,
    password: str | None = None,
    username: str | None = None,
    username_secret: str | None = None,
    pending: Sequence[str | None] | None = None,
    store: SecretStore | None = None,
    offer_pending_to_unverified_server: bool = False,
) -> Credential[Login]:
    """A database login from one JSON secret or from separate secrets.

    ``secret`` names a JSON secret with ``username`` and ``password`` and, optionally,
    ``host``/``port``/``dbname`` (the shape AWS's RDS rotation and Vault's database engine
    use); the connection URL gives whatever it leaves out. Otherwise ``password`` names the
    password's secret, and the user is ``username`` or the secret ``username_secret``.

    After a refusal the pending login is offered only to a server that authenticated itself
    (``sslmode=verify-full``, ``channel_binding=require``, asyncpg's ``ssl`` with host name
    checks); ``offer_pending_to_unverified_server=True`` offers it to any server that refuses.
    """
    if (secret is None) == (password is None):
        raise ConfigurationError("give either secret= (a JSON secret) or password= (a secret name)")
    options: dict[str, Any] = {
        "pending": pending,
        "store": store,
        "offer_pending_to_unverified_server": offer_pending_to_unverified_server,
    }
    if secret is not None:
        return Credential([secret], _login_from_json, Login.same, **options)
    assert password is not None
    if username_secret is not None:
        return Credential(
            [password, username_secret],
            lambda s: Login(str(s[1].reveal()), str(s[0].reveal())),
            Login.same,
            **options,
        )
    return Credential([password], lambda s: Login(username, str(s[0].reveal())), Login.same, **options)


def _login_from_json(secrets: Sequence[Secret[Any]]) -> Login:
    import json

    secret = secrets[0]
    value = secret.reveal()
    if isinstance(value, (str, bytes)):
        try:
            value = json.loads(value)
        except ValueError:
            value = None
    if not isinstance(value, dict) or "password" not in value:
        value = None  # error reporters capture locals: raise with none holding the value
        raise ConfigurationError(
            f"secret {secret.name!r} is not a JSON object with a password (and username): "
            "use password= for a plain password secret"
        )
    port = value.get("port")
    return Login(
        None if value.get("username") is None else str(value["username"]),
        str(value["password"]),
        None if value.get("host") is None else str(value["host"]),
        None if port is None or port == "" else int(port),
        None if value.get("dbname") is None else str(value["dbname"]),
    )


#: The errors a driver raises for a failed connect, of which :func:`is_auth_error` picks the refusals.
ConnectErrors = type[Exception] | tuple[type[Exception], ...]


def connect_with(
    credential: Credential[Login],
    connect: Callable[[Login], C],
    errors: ConnectErrors,
    *,
    server_authenticated: bool,
) -> tuple[C, Login]:
    """``connect(login)`` with the current login; when refused, again with the refreshed then the pending one.

    ``server_authenticated`` says whether the connection's settings make the driver verify the
    server before it sends a password (see ``_destination.py``); only then is the pending
    login offered, unless the credential opted in. Returns the connection and the login that
    opened it, which the pool keeps to notice a rotation.
    """
    login = credential.current()
    for attempt in range(MAX_ATTEMPTS):
        try:
            return connect(login), login
        except errors as exc:
            if attempt + 1 == MAX_ATTEMPTS or not is_auth_error(exc):
                raise
            recovered = credential.recover(login, server_authenticated=server_authenticated)
            if recovered is None:
                raise
            login = recovered
    raise AssertionError("unreachable")  # pragma: no cover


async def connect_with_async(
    credential: Credential[Login],
    connect: Callable[[Login], Awaitable[C]],
    errors: ConnectErrors,
    *,
    server_authenticated: bool,
) -> tuple[C, Login]:
    """:func:`connect_with` for asyncio drivers."""
    # The store's reads are cache hits; a miss or a recovery fetches, so run those off the loop.
    login = await asyncio.to_thread(credential.current)
    for attempt in range(MAX_ATTEMPTS):
        try:
            return await connect(login), login
        except errors as exc:
            if attempt + 1 == MAX_ATTEMPTS or not is_auth_error(exc):
                raise
            recovered = await asyncio.to_thread(
                credential.recover, login, server_authenticated=server_authenticated
            )
            if recovered is None:
                raise
            login = recovered
    raise AssertionError("unreachable")  # pragma: no cover
