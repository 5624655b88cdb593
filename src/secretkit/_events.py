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

from ._errors import public_name

__all__ = [
    "AccessEvent",
    "AccessListener",
    "Counters",
    "FetchObserver",
    "FetchSpan",
    "observers",
    "wants_hits",
]

Outcome = Literal["hit", "stale", "loaded", "refreshed", "not_found", "denied", "error"]


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
    error: str | None = None  # the error's type name, when there was one

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
    """Per-backend counters, updated on the miss and refresh paths only."""

    __slots__ = ("errors", "fetches", "misses", "not_found", "refreshes", "rotations", "stale_served")

    def __init__(self) -> None:
        self.misses = 0
        self.fetches = 0
        self.errors = 0
        self.not_found = 0
        self.refreshes = 0
        self.rotations = 0
        self.stale_served = 0

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


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
