"""Interleaved timing rounds, shared by the backend benchmarks.

Each round times every case once, in an order that rotates from round to round, so
drift in machine load hits every case alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def interleaved(cases: dict[str, Callable[[], object]], rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each case, the cases taking turns (and turns rotating) every round."""
    samples: dict[str, list[float]] = {label: [] for label in cases}
    labels = list(cases)
    for i in range(rounds):
        shift = i % len(labels)
        for label in labels[shift:] + labels[:shift]:
            fn = cases[label]
            started = time.perf_counter()
            fn()
            samples[label].append(time.perf_counter() - started)
    return samples
