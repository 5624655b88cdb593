"""An in-memory backend: for tests, demos and values an application sets itself."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping

from .._backend import Fetched
from .._errors import SecretNotFound, fresh
from .._refs import SecretRef

__all__ = ["MemoryBackend"]


class MemoryBackend:
    """Secrets held in a dict, with versions, a fetch log and a switch to simulate outages.

    Every ``set`` makes a new version (``"1"``, ``"2"``, ...); ``memory://name?version=1``
    reads an old one. ``fail(exc)`` makes every fetch raise ``exc`` until ``fail(None)``.
    """

    scheme = "memory"
    #: Query options this backend accepts.
    options: frozenset[str] = frozenset({"version"})

    def __init__(
        self,
        data: Mapping[str, str | bytes] | None = None,
        *,
        scheme: str = "memory",
        delay: float = 0.0,
    ) -> None:
        self.scheme = scheme
        self.delay = delay
        self.calls = 0
        self.fetched: list[SecretRef] = []
        self.closed = False
        self._lock = threading.Lock()
        self._versions: dict[str, list[str | bytes | None]] = {}
        self._failure: BaseException | None = None
        for name, value in (data or {}).items():
            self.set(name, value)

    def __repr__(self) -> str:
        return f"MemoryBackend(scheme={self.scheme!r})"

    def set(self, name: str, value: str | bytes) -> str:
        """Store a new version of ``name``; returns its version id."""
        with self._lock:
            history = self._versions.setdefault(name, [])
            history.append(value)
            return str(len(history))

    def delete(self, name: str) -> None:
        """Remove ``name`` (all versions); later fetches raise ``SecretNotFound``."""
        with self._lock:
            self._versions.pop(name, None)

    def fail(self, exc: BaseException | None) -> None:
        """Make every fetch raise ``exc`` (``None`` restores normal service)."""
        self._failure = exc

    def fetch(self, ref: SecretRef) -> Fetched:
        with self._lock:
            self.calls += 1
            self.fetched.append(ref)
            failure = self._failure
        if self.delay:
            time.sleep(self.delay)
        if failure is not None:
            raise fresh(failure)  # a copy each time: one instance would collect every caller's frames
        with self._lock:
            history = self._versions.get(ref.path)
            if not history:
                raise SecretNotFound(ref.path)
            wanted = ref.options.get("version")
            if wanted is None:
                index = len(history) - 1
            elif wanted.isdigit() and 1 <= int(wanted) <= len(history):
                index = int(wanted) - 1
            else:
                raise SecretNotFound(ref.path)
            value = history[index]
        if value is None:
            raise SecretNotFound(ref.path)
        return Fetched(value, version=str(index + 1))

    def close(self) -> None:
        self.closed = True
