"""Access events and counters: what happened, never what a secret holds.

Three ways to be told, each for its own question:

- an access listener (``store.add_listener``, ``SecretStore(on_access=...)``): every read of
  one store, hits included unless it says otherwise (:class:`AccessListener`);
- a fetch observer (:data:`observers`): every backend call of every store, never a hit
  (telemetry spans, audit);
- a rotation subscriber (``store.on_rotate``): a secret's new version, with old and new values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ._errors import AccessDenied, SecretkitError, SecretNotFound, public_name

__all__ = [
    "READ_REASONS",
    "AccessEvent",
    "AccessListener",
    "Counters",
    "FetchObserver",
    "FetchSpan",
    "failure_types",
    "observers",
    "outcome_of",
    "wants_hits",
]

Outcome = Literal["hit", "stale", "loaded", "refreshed", "not_found", "denied", "error"]

#: Why a load ran, for loads a reader waits on: the key was not held (``miss``), or what was
#: held is no longer the answer (``expired``: past its life, a local file due for its re-read,
#: a variable that changed). These are the reads ``secretkit.cache.misses`` counts.
READ_REASONS = frozenset({"miss", "expired"})


def outcome_of(error: BaseException) -> Outcome:
    """The outcome a failure is reported as, on every channel: a refusal is ``denied`` every time."""
    if isinstance(error, SecretNotFound):
        return "not_found"
    if isinstance(error, AccessDenied):
        return "denied"
    return "error"


def failure_types(error: BaseException) -> tuple[str, str | None]:
    """``(error type, cause type)``: the one way every channel names a failure.

    The error type is the secretkit error the caller sees: a backend's own exception that is
    not a secretkit error reaches the caller as ``BackendUnavailable`` (the store wraps it,
    as the backend contract says), so ``ConnectionError`` is named ``BackendUnavailable``
    here whether the channel saw the backend's exception (a span) or the caller's (an
    event). The cause type is the backend's original exception, when there was one:
    ``ConnectionError``, or the SDK error a backend mapped (``ClientError`` behind an
    ``AccessDenied``). Not-found is an answer, not a failure with a cause: it has none.
    Type names only: a message is written for people and may quote what a server said.
    """
    if not isinstance(error, SecretkitError):
        return "BackendUnavailable", _type_name(error)
    if isinstance(error, SecretNotFound):
        return type(error).__name__, None
    cause = error.__cause__
    return type(error).__name__, None if cause is None else _type_name(cause)


def _type_name(exc: BaseException) -> str:
    # A cause whose message showed a value is replaced by a stand-in that remembers its type.
    original = getattr(exc, "original_type", None)
    return original if isinstance(original, str) else type(exc).__name__


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One read (or background refresh) of a secret, for metrics and audit logs.

    ``name`` is the name as it may leave the process (``public_name``): a listener exports
    it, and a connection string pasted where a name goes must not carry its password there.
    """

    name: str
    backend: str | None
    version: str | None
    hit: bool
    latency: float  # seconds spent in this call
    outcome: Outcome
    error: str | None = None  # the error's type name, when there was one (:func:`failure_types`)
    cause: str | None = None  # the type name of the backend's own exception behind it, if any

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", public_name(self.name))


class AccessListener(Protocol):
    """Called with one :class:`AccessEvent` per access, on the reading thread; an exception is logged.

    A listener may carry ``wants_hits = False`` (or be added with ``add_listener(..., hits=False)``):
    it is then told about loads, refreshes, failures and refusals but not cache hits, so the
    read path costs as much as with no listener at all.
    """

    def __call__(self, event: AccessEvent, /) -> object: ...


def wants_hits(listener: object, hits: bool | None = None) -> bool:
    """Whether ``listener`` is told about cache hits: ``hits`` if given, else its ``wants_hits``."""
    return bool(getattr(listener, "wants_hits", True)) if hits is None else hits


class Counters:
    """Per-backend counters, updated on the miss and refresh paths only.

    ``misses`` counts every read that went to a backend (a load of :data:`READ_REASONS`),
    whatever it ended in; ``missed`` splits it by outcome, so ``hits / (hits + misses)``
    is the share of reads the cache answered.
    """

    __slots__ = (
        "errors",
        "fetches",
        "missed",
        "misses",
        "not_found",
        "refreshes",
        "rotations",
        "stale_served",
    )

    def __init__(self) -> None:
        self.misses = 0
        self.missed: dict[str, int] = {}
        self.fetches = 0
        self.errors = 0
        self.not_found = 0
        self.refreshes = 0
        self.rotations = 0
        self.stale_served = 0

    def missed_read(self, outcome: Outcome) -> None:
        """Count a read that went to a backend and ended in ``outcome``."""
        self.misses += 1
        self.missed[outcome] = self.missed.get(outcome, 0) + 1

    def as_dict(self) -> dict[str, int]:
        """The totals (``missed``, a breakdown, is read on its own)."""
        return {name: getattr(self, name) for name in self.__slots__ if name != "missed"}


class FetchSpan(Protocol):
    """One backend call (a fetch or a batch) in progress, as an observer sees it."""

    def end(self, outcome: Outcome, version: str | None, error: BaseException | None) -> None: ...


class FetchObserver(Protocol):
    """Told about every backend call a store makes: never about cache hits.

    ``names`` are the names as the store knows them; an observer that exports them passes
    each through ``public_name`` first.

    ``start`` runs in the thread that makes the call, inside the caller's context
    (``contextvars`` are carried into the store's worker threads), so a tracer can make
    the call's span a child of the caller's span.
    """

    def start(self, backend: str, names: Sequence[str], reason: str) -> FetchSpan: ...


#: Installed observers (telemetry, audit). Empty unless an application enables them, so a
#: store pays one truth test per backend call and nothing on a hit.
observers: list[FetchObserver] = []
