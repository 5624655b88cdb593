"""Safety after ``os.fork()``: the one place that decides what a forked child rebuilds.

A child inherits every lock as a parent thread left it and none of the parent's threads,
so a lock held at fork time, a load being led or a worker's queue would never move again
(gunicorn ``--preload``, multiprocessing). Modules register a function and objects register
themselves here; nothing else in secretkit calls ``os.register_at_fork``.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

__all__ = ["Rebuilt", "in_child", "track", "tracked"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[[], None])


class Rebuilt(Protocol):
    """An object that rebuilds its locks, threads and queues in a forked child."""

    def _after_fork(self) -> None: ...


_hooks: list[Callable[[], None]] = []
# Weak: tracking an object must not keep a closed store or a dropped backend alive.
_objects: weakref.WeakSet[Any] = weakref.WeakSet()


def in_child(fn: F) -> F:
    """Run ``fn()`` in the child after every fork (a decorator; ``fn`` is returned unchanged)."""
    _hooks.append(fn)
    return fn


def track(obj: Rebuilt) -> None:
    """Call ``obj._after_fork()`` in the child after every fork, for as long as ``obj`` lives."""
    _objects.add(obj)


def tracked(kind: type[T]) -> list[T]:
    """The live tracked objects of type ``kind`` (the stores telemetry reads, say)."""
    return [obj for obj in list(_objects) if isinstance(obj, kind)]


def _rebuild_in_child() -> None:
    # Module hooks first (module-wide locks), then objects, which may take those locks.
    for hook in list(_hooks):
        try:
            hook()
        except Exception:  # noqa: S112 - one failing hook must not leave the others' locks held
            continue
    for obj in list(_objects):
        try:
            obj._after_fork()
        except Exception:  # noqa: S112 - as above
            continue


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_rebuild_in_child)
