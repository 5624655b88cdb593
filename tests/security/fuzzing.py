"""What the fuzz modules share: their example budgets and the wall-clock bound every example runs under.

The suite runs each target with a short, fixed budget (``budget(n)`` examples, derandomised);
``SECRETKIT_FUZZ=long`` runs ``LONG_FACTOR`` times as many (``SECRETKIT_FUZZ_FACTOR`` changes
the factor), with a fresh seed and shrinking. The profiles themselves are in conftest.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections import OrderedDict, deque
from collections.abc import Iterator
from types import FrameType

from secretkit import _redact
from secretkit._redact_engine import Matcher

LONG = os.environ.get("SECRETKIT_FUZZ", "").lower() == "long"
LONG_FACTOR = int(os.environ.get("SECRETKIT_FUZZ_FACTOR", "40"))

#: Wall-clock bound of one example. Every input the targets get is small (at most tens of KB)
#: and takes milliseconds; the bound is a hundred times that or more, so only a hang (or a
#: parse whose cost explodes with the input) reaches it, however loaded the machine.
BOUND = 10.0


def budget(examples: int) -> int:
    """How many examples a target runs: ``examples`` in the suite, ``LONG_FACTOR`` times that by hand."""
    return examples * LONG_FACTOR if LONG else examples


class _PastBound(BaseException):
    # A BaseException, so no `except Exception` in the code under test swallows the alarm.
    pass


@contextlib.contextmanager
def bounded(what: str, seconds: float = BOUND) -> Iterator[None]:
    """Fail (an ``AssertionError``, which hypothesis reports) when the block runs past ``seconds``.

    A hypothesis deadline only judges an example after it returns; this interrupts one that
    would not. SIGALRM reaches Python code and the ``re`` engine (which checks for signals as
    it backtracks), so a catastrophic regular expression or a runaway walk is stopped.
    Outside the main thread, or without SIGALRM, the block runs unbounded.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return
    armed = [True]

    def alarm(signum: int, frame: FrameType | None) -> None:
        if armed[0]:
            raise _PastBound

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _PastBound:
        raise AssertionError(f"{what} ran past the {seconds:g} s wall-clock bound: a hang") from None
    finally:
        armed[0] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_REGISTRY = ("_matcher", "_held", "_recent", "_holders", "_released")


@contextlib.contextmanager
def fresh_registry() -> Iterator[None]:
    """The process's registry of values to mask, empty for the block and restored after it.

    Fuzzed values ("abcd", "0000") registered by ``remember`` or by a backend read must not stay
    masked for the rest of the test session, where they would hide other tests' output.
    """
    saved = {
        name: getattr(_redact, name) for name in ("_matcher", "_held", "_recent", "_holders", "_released")
    }
    _redact._matcher = Matcher()
    _redact._held = {}
    _redact._recent = OrderedDict()
    _redact._holders = {}
    _redact._released = deque()
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(_redact, name, value)
