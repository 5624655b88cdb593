"""Worker threads that run queries (or calls) in a loop and count what succeeded and what failed.

A test drives rotation between :meth:`Workload.wait` calls, which return once every worker
of a target has finished a given number of further iterations: progress is counted, not
timed, so each rotation step really happens while queries are running. Failures are kept
as exception type names only; a message could quote a connection string.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from types import TracebackType

__all__ = ["Workload"]


class _Target:
    def __init__(self, name: str, call: Callable[[], object], threads: int) -> None:
        self.name = name
        self.call = call
        self.threads = threads
        self.ok = 0
        self.failed = 0
        self.errors: Counter[str] = Counter()
        self.progress = [0] * threads
        self.lock = threading.Lock()


class Workload:
    """``Workload({"secretkit": (query, 8), "baseline": (plain_query, 4)})`` as a context manager."""

    def __init__(self, targets: dict[str, tuple[Callable[[], object], int]]) -> None:
        self._targets = {name: _Target(name, call, n) for name, (call, n) in targets.items()}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> Workload:
        for target in self._targets.values():
            for index in range(target.threads):
                thread = threading.Thread(target=self._run, args=(target, index), daemon=True)
                thread.start()
                self._threads.append(thread)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _run(self, target: _Target, index: int) -> None:
        while not self._stop.is_set():
            try:
                target.call()
            except Exception as exc:
                with target.lock:
                    target.failed += 1
                    target.errors[type(exc).__name__] += 1
            else:
                with target.lock:
                    target.ok += 1
            target.progress[index] += 1

    def wait(self, iterations: int, target: str = "secretkit", timeout: float = 120.0) -> None:
        """Return once every worker of ``target`` has run ``iterations`` more times."""
        state = self._targets[target]
        goal = [done + iterations for done in state.progress]
        deadline = time.monotonic() + timeout
        while any(done < want for done, want in zip(state.progress, goal, strict=True)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the {target} workers made no progress for {timeout} s")
            time.sleep(0.01)

    def wait_for_failure(self, target: str, timeout: float = 60.0) -> None:
        """Return once a worker of ``target`` has failed (a baseline must, once it reconnects)."""
        deadline = time.monotonic() + timeout
        while not self._targets[target].failed:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {target} call failed in {timeout} s")
            time.sleep(0.01)

    def ok(self, target: str) -> int:
        return self._targets[target].ok

    def failed(self, target: str) -> int:
        return self._targets[target].failed

    def errors(self, target: str) -> dict[str, int]:
        return dict(self._targets[target].errors)
