"""One rule for choosing among equivalent endpoints (Vault nodes, AWS regions) and leaving a failed one.

The Vault backend's nodes and the AWS backends' replica regions fail over the same way:
candidates are tried in order, one that failed goes to the back of the line for a cool-off
that doubles with each consecutive failure (1 s to 30 s), and is tried again, first in its
place, once the cool-off has passed. Nodes of one cluster are equals, so the order starts
at the one that answered last (``sticky``); regions are not (the primary is nearest), so it
starts at the first. A candidate cooling off is still tried when all the others failed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

__all__ = ["COOL_OFF", "COOL_OFF_MAX", "Candidates"]

T = TypeVar("T")

#: How long a candidate that failed is tried only after the others; doubles per failure to the cap.
COOL_OFF = 1.0
COOL_OFF_MAX = 30.0


class Candidates(Generic[T]):
    """Candidates in the order to try them, with what is known of each one's health.

    The state is plain attributes, updated without a lock (and so safe across ``fork``): a
    race between threads costs at most one extra attempt on a candidate cooling off.
    """

    def __init__(
        self, items: Sequence[T], *, sticky: bool, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.items = list(items)
        self._sticky = sticky
        self._clock = clock
        self._first = 0
        self._down_until = [0.0] * len(self.items)
        self._failures = [0] * len(self.items)
        #: Attempts sent to each candidate (for tests, benchmarks and health checks).
        self.attempts = [0] * len(self.items)

    def order(self) -> list[T]:
        now = self._clock()
        n = len(self.items)
        start = self._first if self._sticky else 0
        ready: list[T] = []
        cooling: list[tuple[float, T]] = []
        for k in range(n):
            i = (start + k) % n
            until = self._down_until[i]
            if until <= now:
                ready.append(self.items[i])
            else:
                cooling.append((until, self.items[i]))
        cooling.sort(key=lambda pair: pair[0])
        return ready + [item for _, item in cooling]

    def tried(self, item: T) -> None:
        self.attempts[self.items.index(item)] += 1

    def succeeded(self, item: T) -> None:
        i = self.items.index(item)
        self._failures[i] = 0
        self._down_until[i] = 0.0
        self._first = i

    def failed(self, item: T) -> None:
        i = self.items.index(item)
        self._failures[i] += 1
        self._down_until[i] = self._clock() + min(COOL_OFF * 2 ** (self._failures[i] - 1), COOL_OFF_MAX)

    def cooling(self, item: T) -> bool:
        return self._down_until[self.items.index(item)] > self._clock()
