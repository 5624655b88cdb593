"""The module-level API: functions over a lazily built default store."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any, Literal, NoReturn, TypeVar, overload

from . import _fork
from ._backend import Backend
from ._errors import InvalidReference, SecretNotFound
from ._secret import LiveSecret, Secret
from ._secret_names import SECRET_NAME_MARKERS, marks_secret, set_secret_name_markers
from ._store import RotateCallback, SecretStore

__all__ = [
    "SECRET_NAME_MARKERS",
    "aget_secret",
    "configure",
    "default_store",
    "environ",
    "get_secret",
    "getenv",
    "live",
    "on_rotate",
    "refresh_on_auth_error",
    "set_secret_name_markers",
]

F = TypeVar("F", bound=Callable[..., Any])

_store: SecretStore | None = None
_lock = threading.Lock()


@_fork.in_child
def _new_lock() -> None:
    # A parent thread holding the lock at fork time would leave it locked in the child forever.
    global _lock
    _lock = threading.Lock()


def default_store() -> SecretStore:
    """The store the module-level functions use, built on first use."""
    global _store
    store = _store
    if store is None:
        with _lock:
            if _store is None:
                _store = SecretStore()
            store = _store
    return store


def get_secret(name: str) -> Secret[Any]:
    """Resolve a name (through the chain) or a reference (``aws-sm://prod/db#password``)."""
    store = _store
    if store is None:
        store = default_store()
    return store.get(name)


async def aget_secret(name: str) -> Secret[Any]:
    """``get_secret`` for async code: the same cache and single flight, without blocking the loop."""
    store = _store
    if store is None:
        store = default_store()
    return await store.aget(name)


def live(name: str) -> LiveSecret[Any]:
    """A handle on ``name`` whose ``reveal()`` always gives the current (rotated) value."""
    return default_store().live(name)


@overload
def on_rotate(name: str, callback: RotateCallback) -> Callable[[], None]: ...
@overload
def on_rotate(name: str, callback: None = None) -> Callable[[RotateCallback], RotateCallback]: ...
def on_rotate(
    name: str, callback: RotateCallback | None = None
) -> Callable[[], None] | Callable[[RotateCallback], RotateCallback]:
    """Subscribe to rotations of ``name`` in the default store (see ``SecretStore.on_rotate``)."""
    return default_store().on_rotate(name, callback)


def configure(
    store: SecretStore | None = None,
    /,
    *,
    backends: Sequence[Backend] | None = None,
    **options: Any,
) -> SecretStore:
    """Replace the default store.

    ``configure(store)`` installs ``store``; ``configure(backends=[...], ttl=...)`` builds
    one; ``configure()`` rebuilds the default (environment, ``./.env``, ``/run/secrets``),
    re-reading the working directory. The previous default store is closed unless it is
    the one being installed.
    """
    global _store
    if store is not None and (backends is not None or options):
        raise TypeError("configure() takes a store or store options, not both")
    new = store if store is not None else SecretStore(backends, **options)
    with _lock:
        old, _store = _store, new
    if old is not None and old is not new:
        old.close()
    return new


def _swap(store: SecretStore | None) -> SecretStore | None:
    """Install ``store`` as the default without closing the previous one; returns it (for tests)."""
    global _store
    with _lock:
        old, _store = _store, store
    return old


#: Kept under this name for the modules that import it from here (the CLI, settings inputs).
_marks_secret = marks_secret


def _read(key: str) -> Secret[Any]:
    """The secret for ``key``, registered for redaction when it is one (see ``SECRET_NAME_MARKERS``)."""
    store = _store
    if store is None:
        store = default_store()
    secret = store._read(key)
    if not secret._registered and _marks_secret(key):
        secret._register()
    return secret


def getenv(key: str, default: str | None = None) -> str | None:
    """Drop-in for ``os.getenv``: the resolved value as ``str``, or ``default`` if not found.

    Only "not found" (or a name that cannot be a reference) gives ``default``; an
    unreachable backend raises, so an outage is not mistaken for an unset variable.
    """
    try:
        return _as_str(_read(key))
    except (SecretNotFound, InvalidReference):
        return default


class _Environ(Mapping[str, str]):
    """Drop-in for ``os.environ`` reads: values resolved through the default store.

    Iteration lists the process environment and the default store's ``.env`` keys;
    secrets that live only in a remote backend are reachable by name but not listed.
    Writes are refused: write ``os.environ``, which this reads live.
    """

    def __getitem__(self, key: str) -> str:
        try:
            return _as_str(_read(key))
        except InvalidReference as exc:
            # os.environ[...] raises KeyError for any name it lacks; code catching it keeps working.
            raise SecretNotFound(key, detail=str(exc)) from None

    def __iter__(self) -> Iterator[str]:
        keys: dict[str, None] = dict.fromkeys(os.environ)
        from .backends.dotenv import DotenvBackend

        for backend in default_store().backends:
            if isinstance(backend, DotenvBackend):
                try:
                    keys.update(dict.fromkeys(backend.values()))
                except Exception:  # noqa: S112 - listing is best effort; reads report errors
                    continue
        return iter(keys)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            _read(key)
        except (SecretNotFound, InvalidReference):
            return False
        return True

    def copy(self) -> dict[str, str]:
        """A plain ``dict`` of every listed variable, references resolved (as ``os.environ.copy()``)."""
        return {key: self[key] for key in self}

    def __repr__(self) -> str:
        return "secretkit.environ"

    def _refuse(self, *args: object, **kwargs: object) -> NoReturn:
        raise TypeError(
            "secretkit.environ is read-only: set variables in os.environ (secretkit.environ reads it live)"
        )

    __setitem__ = __delitem__ = pop = popitem = clear = update = setdefault = _refuse


environ: Mapping[str, str] = _Environ()


def _as_str(secret: Secret[Any]) -> str:
    value = secret.reveal()
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        # The same rule os.environ uses for bytes it cannot decode.
        return value.decode("utf-8", "surrogateescape")
    import json

    return json.dumps(value)


class refresh_on_auth_error:
    """Refetch a secret when a call fails with an authentication error, and retry once.

    As a decorator (sync or async)::

        @refresh_on_auth_error("STRIPE_API_KEY", exceptions=stripe.AuthenticationError)
        def charge(...): ...

    the call is retried once if the secret changed. As a ``with`` block, the secret is
    refreshed and the error re-raised (a block cannot be re-run); to retry a block, loop::

        for attempt in refresh_on_auth_error("API_KEY", exceptions=AuthError):
            with attempt:
                call_api(secretkit.get_secret("API_KEY").reveal())
    """

    def __init__(
        self,
        name: str,
        exceptions: type[BaseException] | tuple[type[BaseException], ...] = PermissionError,
        *,
        store: SecretStore | None = None,
    ) -> None:
        self.name = name
        self.exceptions = exceptions
        self._store = store
        self.rotated = False

    @property
    def store(self) -> SecretStore:
        return self._store if self._store is not None else default_store()

    def refetch(self) -> bool:
        """Fetch the secret again; ``True`` if it changed."""
        store = self.store
        try:
            old: Secret[Any] | None = store.get(self.name)
        except SecretNotFound:
            old = None
        new = store.refresh(self.name)
        changed = old is None or old.version != new.version or old != new
        self.rotated = self.rotated or changed
        return changed

    def __call__(self, fn: F) -> F:
        import inspect  # lazily: a costly import most applications never need

        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await fn(*args, **kwargs)
                except self.exceptions:
                    import asyncio

                    changed = await asyncio.get_running_loop().run_in_executor(None, self.refetch)
                    if not changed:
                        raise
                return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except self.exceptions:
                if not self.refetch():
                    raise
            return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def __enter__(self) -> refresh_on_auth_error:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        if exc is not None and isinstance(exc, self.exceptions):
            self.refetch()
        return False

    def __iter__(self) -> Iterator[_Attempt]:
        first = _Attempt(self, last=False)
        yield first
        if first.failed_and_changed:
            yield _Attempt(self, last=True)


class _Attempt:
    def __init__(self, owner: refresh_on_auth_error, *, last: bool) -> None:
        self._owner = owner
        self._last = last
        self.failed_and_changed = False

    def __enter__(self) -> _Attempt:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or self._last or not isinstance(exc, self._owner.exceptions):
            return False
        if self._owner.refetch():
            self.failed_and_changed = True
            return True  # swallowed: the loop runs the block once more with the new secret
        return False
