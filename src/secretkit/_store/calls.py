"""One backend call: its slot, its total deadline, the fetch observers told, its errors sealed.

A local backend is called inline. A remote one first takes a slot of its backend's
:class:`~.concurrency.Limiter` (a limit that adapts to the server, under a ceiling); then
it is called inline if its own transport ends every call within its deadline
(``enforced_deadline``: gRPC), else on its lane, and the caller stops waiting at the
deadline. Whatever the backend raises comes out as a secretkit error naming the secret and
backend, with no backend frame attached.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from .. import _events
from .._backend import BackendTraits, Fetched
from .._errors import AccessDenied, BackendUnavailable, SecretkitError, SecretNotFound, copied, shown
from .._events import Outcome
from .._lazylog import log
from .._refs import SecretRef
from .._throttled import Throttled
from .concurrency import Limiter, Paused
from .runner import Call, DeadlineExceeded, Runner
from .sealing import scrubbed, sealed, wrapped

__all__ = ["DEFAULT_CONCURRENCY", "DEFAULT_DEADLINE", "Calls", "observed"]

T = TypeVar("T")

#: The default total deadline of one backend call (login and look-ups included), seconds.
DEFAULT_DEADLINE = 5.0
#: The default ceiling of calls in flight at once per backend; the limit under it adapts.
DEFAULT_CONCURRENCY = 64


class Calls:
    """The lanes of one store's backends and the way every call to them is made."""

    def __init__(self, deadline: float, concurrency: int) -> None:
        if deadline <= 0:
            raise ValueError("deadline must be > 0 seconds")
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        self.deadline = deadline
        self.concurrency = concurrency
        self._after_fork()

    def _after_fork(self) -> None:
        # A lane's workers are the parent's threads: a child starts with none. The limits
        # start again too (a slot held by a parent's call would never be given back).
        self._lock = threading.Lock()
        self.lanes: dict[str, Runner] = {}
        self.limiters: dict[str, Limiter] = {}

    def fetch(self, backend: BackendTraits, ref: SecretRef, name: str, reason: str) -> Fetched:
        """``backend.fetch(ref)`` for the secret ``name``; every failure a secretkit error."""
        error: SecretkitError
        try:
            if backend.local:
                fetched = observed(backend.scheme, (name,), reason, backend.backend.fetch, ref)
            else:
                fetched = self.remote(backend, (name,), reason, backend.backend.fetch, ref)
        except Exception as exc:
            error = self.failure(backend, exc, name)
        else:
            return checked(backend, fetched, name)
        # Raised here, outside the except block, so no __context__ keeps the backend's frames.
        raise error

    def start(
        self, backend: BackendTraits, ref: SecretRef, names: Sequence[str], reason: str
    ) -> Call[Fetched]:
        """``backend.fetch(ref)`` started on the backend's lane (for loads of many keys at once).

        Wait with ``result(deadline)``: the call's deadline counts from now. Even a backend
        that enforces its own deadline goes to the lane here, so calls overlap.
        """
        limiter = self.limiters.get(backend.scheme) or self._limiter(backend)
        lane = self.lanes.get(backend.scheme) or self._lane(backend, limiter)
        end = time.monotonic() + self.deadline_of(backend)
        fetch = backend.backend.fetch
        return lane.submit(_limited, limiter, end, observed, backend.scheme, names, reason, fetch, ref)

    def fetch_many(
        self, backend: BackendTraits, refs: list[SecretRef], names: Sequence[str], reason: str
    ) -> Mapping[SecretRef, Fetched | Exception]:
        """``backend.fetch_many(refs)`` in a slot of its limit; raises as the backend or deadline did."""
        assert backend.fetch_many is not None
        return self.remote(backend, names, reason, backend.fetch_many, refs)

    def failure(
        self, backend: BackendTraits, exc: Exception, name: str, *, shared: bool = False
    ) -> SecretkitError:
        """What ``exc``, raised by a call to ``backend``, means for the secret ``name``.

        ``shared``: the same exception stands for several secrets (a batch, or one read for
        several fields), so each gets a copy.
        """
        scheme = backend.scheme
        if isinstance(exc, DeadlineExceeded):
            return self.late(backend, name)
        if isinstance(exc, Paused):
            return self.paused(backend, name, exc.wait)
        if isinstance(exc, SecretNotFound):
            return SecretNotFound(name, backends=[scheme], detail=exc.detail)
        if isinstance(exc, SecretkitError):
            own: SecretkitError = wrapped(copied(exc) if shared else exc, name, scheme)
            return sealed(own)  # type: ignore[no-any-return]
        err = wrapped(exc, name, scheme)
        err.__cause__ = scrubbed(sealed(exc))
        return err

    def failed_batch(self, backend: BackendTraits, exc: Exception, name: str) -> SecretkitError:
        """What a whole batch's failure means for one of its secrets."""
        if isinstance(exc, SecretNotFound):  # not an answer about this secret: the batch failed
            return wrapped(copied(exc), name, backend.scheme)
        return self.failure(backend, exc, name, shared=True)

    def remote(
        self, backend: BackendTraits, names: Sequence[str], reason: str, fn: Callable[[Any], T], arg: Any
    ) -> T:
        """``fn(arg)`` in a slot of the backend's limit; ``DeadlineExceeded`` once its deadline passes."""
        deadline = self.deadline_of(backend)
        limiter = self.limiters.get(backend.scheme) or self._limiter(backend)
        enforced = backend.enforced_deadline
        if enforced is not None and enforced <= deadline:
            # The transport ends the call by the deadline itself: no handoff to a lane thread,
            # if a slot is free now. Waiting for one here would add to the transport's own
            # deadline; the lane counts the wait within the caller's.
            try:
                started = limiter.acquire(0.0)
            except (TimeoutError, Paused):
                pass
            else:
                try:
                    result: T = observed(backend.scheme, names, reason, fn, arg)
                except BaseException as exc:
                    limiter.release(started, exc)
                    raise
                limiter.release(started, None)
                return result
        lane = self.lanes.get(backend.scheme) or self._lane(backend, limiter)
        # The slot is taken on the worker: a call the caller gave up on before it started is
        # skipped by the lane, and so never holds one.
        end = time.monotonic() + deadline
        call: Call[T] = lane.submit(_limited, limiter, end, observed, backend.scheme, names, reason, fn, arg)
        return call.result(deadline)

    def _limiter(self, backend: BackendTraits) -> Limiter:
        with self._lock:
            limiter = self.limiters.get(backend.scheme)
            if limiter is None:
                limiter = self.limiters[backend.scheme] = Limiter(self.ceiling_of(backend))
            return limiter

    def _lane(self, backend: BackendTraits, limiter: Limiter) -> Runner:
        with self._lock:
            lane = self.lanes.get(backend.scheme)
            if lane is None:
                # As many workers as the limit can ever let through: a call never waits for a
                # worker while a slot is free.
                lane = self.lanes[backend.scheme] = Runner(limiter.ceiling, f"secretkit-{backend.scheme}")
            return lane

    def ceiling_of(self, backend: BackendTraits) -> int:
        """The most calls in flight at once to ``backend``: its own ceiling, capped by the store's."""
        own = backend.concurrency
        return min(own, self.concurrency) if own else self.concurrency

    def deadline_of(self, backend: BackendTraits) -> float:
        return float(backend.deadline or self.deadline)

    def late(self, backend: BackendTraits, name: str) -> BackendUnavailable:
        err = BackendUnavailable(
            f"secret {shown(name)}: the {backend.scheme} backend did not answer within the "
            f"{self.deadline_of(backend):g} s deadline; check that it is reachable, or raise "
            f"SecretStore(deadline=...) (or the backend's own deadline) if it is slow"
        )
        err.name, err.backend = name, backend.scheme
        return err

    def paused(self, backend: BackendTraits, name: str, wait: float) -> Throttled:
        err = Throttled(
            f"secret {shown(name)}: the {backend.scheme} backend asked secretkit to wait {wait:.1f} s "
            f"(HTTP 429/503 with Retry-After), past the {self.deadline_of(backend):g} s deadline; "
            "nothing was sent. Retry later, or lower the request rate",
            retry_after=wait,
        )
        err.name, err.backend = name, backend.scheme
        return err

    def close(self) -> None:
        with self._lock:
            lanes = list(self.lanes.values())
        for lane in lanes:
            lane.close()


def checked(backend: BackendTraits, fetched: object, name: str) -> Fetched:
    """``fetched``, if it is a :class:`Fetched`: anything else is a bug in the backend."""
    if not isinstance(fetched, Fetched):
        raise BackendUnavailable(
            f"secret {shown(name)}: the {backend.scheme} backend returned {type(fetched).__name__}, "
            "not Fetched; this is a bug in the backend"
        )
    return fetched


def _limited(limiter: Limiter, end: float, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` in a slot of ``limiter`` taken by ``end`` (monotonic); the slot given back after."""
    try:
        started = limiter.acquire(end - time.monotonic())
    except TimeoutError:
        raise DeadlineExceeded from None
    try:
        result = fn(*args)
    except BaseException as exc:
        limiter.release(started, exc)
        raise
    limiter.release(started, None)
    return result


def observed(scheme: str, names: Sequence[str], reason: str, fn: Callable[[Any], T], arg: Any) -> T:
    """``fn(arg)``, told to every installed fetch observer (telemetry, audit)."""
    if not _events.observers:
        return fn(arg)
    spans = []
    for observer in list(_events.observers):
        try:
            spans.append(observer.start(scheme, names, reason))
        except Exception:
            log.warning("secretkit: fetch observer %r failed", observer, exc_info=True)
    try:
        result = fn(arg)
    except BaseException as exc:
        outcome: Outcome = (
            "not_found"
            if isinstance(exc, SecretNotFound)
            else "denied"
            if isinstance(exc, AccessDenied)
            else "error"
        )
        _end_spans(spans, outcome, None, exc)
        raise
    _end_spans(spans, "loaded", result.version if isinstance(result, Fetched) else None, None)
    return result


def _end_spans(spans: list[Any], outcome: Outcome, version: str | None, error: BaseException | None) -> None:
    for span in spans:
        try:
            span.end(outcome, version, error)
        except Exception:
            log.warning("secretkit: fetch observer span %r failed", span, exc_info=True)
