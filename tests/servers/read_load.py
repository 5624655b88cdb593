"""Readers of held and cold secrets through a store, recording what each read saw and when.

Shared by the failover tests (a cluster losing its leader, a region black-holed) and
``benchmarks/bench_failover.py``: ``readers`` threads go round the held secrets (each from
its own offset) with a short pause per round, and one thread reads the cold secrets one
every ``cold_every`` seconds, round and round: a name read before is invalidated first, so
each read is a miss that goes to the backend however long the run lasts. Failures are
recorded as ``"Type: message"`` (secretkit's messages name secrets, never values).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Sequence
from types import TracebackType

from secretkit import SecretStore

__all__ = ["ColdRead", "ReadLoad"]

#: One cold read: (began, ended) in monotonic seconds, and its error or ``None``.
ColdRead = tuple[float, float, str | None]


class ReadLoad:
    """Start with ``with``; stopped and joined on leaving (or by :meth:`finish`)."""

    def __init__(
        self,
        store: SecretStore,
        held: Sequence[str],
        cold: Sequence[str],
        *,
        readers: int = 8,
        cold_every: float = 0.05,
        pause: float = 0.001,
    ) -> None:
        self.store = store
        self.held = list(held)
        self.cold = list(cold)
        self.cold_every = cold_every
        self.pause = pause
        self.stop = threading.Event()
        self.held_reads = 0
        self.held_failures: list[str] = []
        self.longest_held_wait = 0.0
        self.cold_reads: list[ColdRead] = []
        self.threads = [threading.Thread(target=self._read_held, args=(i,)) for i in range(readers)]
        self.threads.append(threading.Thread(target=self._read_cold))

    def __enter__(self) -> ReadLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.finish()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            if thread.is_alive():
                thread.join(30)

    def cold_after(self, moment: float, until: float = float("inf")) -> list[ColdRead]:
        """The cold reads that began at or after ``moment`` (and before ``until``)."""
        return [read for read in self.cold_reads if moment <= read[0] < until]

    def _read_held(self, offset: int) -> None:
        names = self.held[offset:] + self.held[:offset]
        while not self.stop.is_set():
            for name in names:
                began = time.monotonic()
                try:
                    self.store.get(name).reveal()
                except Exception as exc:
                    self.held_failures.append(f"{name}: {type(exc).__name__}: {exc}")
                self.longest_held_wait = max(self.longest_held_wait, time.monotonic() - began)
                self.held_reads += 1
            time.sleep(self.pause)

    def _read_cold(self) -> None:
        for round_ in itertools.count():
            for name in self.cold:
                if self.stop.is_set():
                    return
                if round_:
                    self.store.invalidate(name)
                self._read_cold_once(name)

    def _read_cold_once(self, name: str) -> None:
        began = time.monotonic()
        error = None
        try:
            self.store.get(name).reveal()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        self.cold_reads.append((began, time.monotonic(), error))
        time.sleep(self.cold_every)
