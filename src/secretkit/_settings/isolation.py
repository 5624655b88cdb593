"""What settings classes read while a test isolates them (the ``secretkit_memory`` fixture).

Kept free of pydantic so that the pytest plugin can switch it without importing pydantic.
While a test isolates settings, every ``SecretkitSettings`` reads its store from here, its
environment from ``environ`` (not ``os.environ``), and no ``.env`` file or ``secrets_dir``:
a developer's real keys and files never reach a test.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .._store import SecretStore

__all__ = ["Isolation", "current", "isolate"]


class Isolation(Protocol):
    """The store and the stand-in environment that settings classes read during one test.

    Read at each build, so a test may change them between builds (``secretkit.testing.MemorySecrets``).
    """

    @property
    def store(self) -> SecretStore: ...

    @property
    def environ(self) -> Mapping[str, str]: ...


_current: Isolation | None = None


def current() -> Isolation | None:
    """The isolation in force, if a test set one."""
    return _current


def isolate(isolation: Isolation | None) -> Isolation | None:
    """Put ``isolation`` in force (``None`` lifts it); returns the one it replaces.

    A module global rather than a context variable: threads a test starts (a server under
    test, a worker pool) build settings too, and must see the same isolation.
    """
    global _current
    previous, _current = _current, isolation
    return previous
