"""Rotation as ``run --watch`` and ``inject --watch`` see it: store refreshes, told through ``on_rotate``.

The store refreshes a secret only when something reads it, so a command that holds its
secrets in a child's environment or a file reads them here, every ``poll`` seconds: a
cache hit until refresh-ahead, then one background fetch, exactly as a library user's
reads would cause. What changed arrives through ``store.on_rotate``; rotations that come
together (several fields of one secret, several secrets rotated by one job) are gathered
for ``settle`` seconds, so they make one restart or one render.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .._secret import Secret
from .._store import SecretStore
from ._output import error_message, shown_name

__all__ = ["RotationWatch", "notice", "poll_interval"]


def poll_interval(refresh: float) -> float:
    """How often the watched keys are read: a tenth of their life, between 50 ms and 5 s.

    A read that finds a key fresh is a cache hit (no request), so reading more often than
    the store refreshes costs nothing but bounds how late refresh-ahead is noticed.
    """
    return min(5.0, max(0.05, refresh / 10))


def notice(text: str) -> None:
    """One ``secretkit: ...`` line on stderr, scrubbed and escaped as every CLI line is."""
    import sys

    from ._output import flush, terminal_safe

    flush(sys.stdout)
    print(f"secretkit: {terminal_safe(text)}", file=sys.stderr, flush=True)


class RotationWatch:
    """Keeps ``keys`` read through ``store`` and reports the ones that rotated, gathered."""

    def __init__(
        self,
        store: SecretStore,
        keys: Sequence[str],
        *,
        poll: float,
        settle: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._keys = list(dict.fromkeys(keys))
        self._poll = poll
        self._settle = settle
        self._clock = clock
        self._lock = threading.Lock()
        self._rotated: dict[str, float] = {}  # key -> when the store told us
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._unsubscribe: list[Callable[[], None]] = []
        self._failing: set[str] = set()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        for key in self._keys:
            self._unsubscribe.append(self._store.on_rotate(key, self._callback(key)))
        self._thread = threading.Thread(target=self._read_loop, name="secretkit-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def wait(self, timeout: float) -> dict[str, float]:
        """The keys that rotated (with when each was seen), waiting up to ``timeout`` for a first.

        Once one has rotated, the others that rotate within ``settle`` seconds of it are
        gathered into the same answer: one restart for one rotation job.
        """
        if not self._wake.wait(timeout):
            return {}
        deadline = self._clock() + self._settle
        while (left := deadline - self._clock()) > 0 and not self._stop.is_set():
            self._stop.wait(min(left, 0.05))
        with self._lock:
            rotated, self._rotated = self._rotated, {}
            self._wake.clear()
        return rotated

    def _callback(self, key: str) -> Callable[[Secret[Any], Secret[Any]], None]:
        def rotated(old: Secret[Any], new: Secret[Any]) -> None:
            with self._lock:
                self._rotated.setdefault(key, self._clock())
            self._wake.set()

        return rotated

    def _read_loop(self) -> None:
        while not self._stop.wait(self._poll):
            for key in self._keys:
                if self._stop.is_set():
                    return
                try:
                    self._store.get(key)
                except Exception as exc:  # the store serves the last value while it can; say so once
                    if key not in self._failing:
                        self._failing.add(key)
                        notice(
                            f"{shown_name(key)}: cannot refresh: {error_message(exc)}; keeping what was given"
                        )
                else:
                    if key in self._failing:
                        self._failing.discard(key)
                        notice(f"{shown_name(key)}: refreshed again")
