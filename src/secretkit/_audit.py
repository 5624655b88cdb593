"""The access audit trail: which secret was read, through which backend, by what code — never its value.

An access listener (the store's ``on_access`` seam) that turns access events into
structured records on the ``secretkit.audit`` logger, ready for a JSON formatter.
"""

from __future__ import annotations

import logging
import os
import random
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

from ._errors import public_name
from ._events import AccessEvent

if TYPE_CHECKING:
    from ._store import SecretStore

__all__ = ["AUDIT_FIELDS", "AuditTrail", "audit"]

#: The ``extra=`` fields of every audit record: a stable schema, documented in docs/operations.md.
AUDIT_FIELDS = (
    "secret",
    "backend",
    "version",
    "outcome",
    "error_type",
    "cause_type",
    "hit",
    "latency_s",
    "caller_module",
    "caller_line",
    "pid",
    "timestamp",
)

# Frames of these modules are the machinery between the application and the listener.
_OWN = frozenset({"secretkit", "threading", "asyncio", "contextvars", "functools"})


class AuditTrail:
    """An access listener that writes one audit record per backend access and per refusal.

    Pass it as ``SecretStore(on_access=AuditTrail())`` or let ``secretkit.audit()`` install
    it. Cache hits are not audited unless ``hits`` (a fraction, 0 to 1) asks for a sample.
    """

    def __init__(
        self,
        *,
        hits: float = 0.0,
        logger: logging.Logger | None = None,
        level: int = logging.INFO,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if not 0.0 <= hits <= 1.0:
            raise ValueError("hits is the fraction of cache hits to audit: 0 <= hits <= 1")
        self.hits = hits
        self.logger = logger or logging.getLogger("secretkit.audit")
        self.level = level
        self._rng = rng

    @property
    def wants_hits(self) -> bool:
        """Whether cache hits matter to this listener (a store may skip telling it about them)."""
        return self.hits > 0.0

    def __repr__(self) -> str:
        return f"AuditTrail(hits={self.hits}, logger={self.logger.name!r})"

    def __call__(self, event: AccessEvent) -> None:
        # A refusal is always audited, even one answered from the store's memory of it (the
        # store tells every listener of those, hits or not).
        if event.hit and event.outcome != "denied" and (self.hits == 0.0 or self._rng() >= self.hits):
            return
        if not self.logger.isEnabledFor(self.level):
            return
        module, line = _caller()
        # An event's name is shaped already; shaping again costs a check and keeps this
        # channel safe should a listener be handed events built elsewhere.
        name = public_name(event.name)
        fields: dict[str, Any] = {
            "secret": name,
            "backend": event.backend,
            "version": event.version,
            "outcome": event.outcome,
            "error_type": event.error,
            "cause_type": event.cause,
            "hit": event.hit,
            "latency_s": round(event.latency, 6),
            "caller_module": module,
            "caller_line": line,
            "pid": os.getpid(),
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
        }
        self.logger.log(
            self.level,
            "secret access: %s %s (backend %s)",
            name,
            event.outcome,
            event.backend or "-",
            extra=fields,
        )


def audit(
    store: SecretStore | None = None,
    *,
    hits: float = 0.0,
    logger: logging.Logger | None = None,
    level: int = logging.INFO,
) -> Callable[[], None]:
    """Write the audit trail of ``store`` (default: the default store); returns a function that stops it.

    ``configure()`` builds a new default store: enable the audit after it, or pass the
    store. The ``secretkit.audit`` logger is set to ``level`` if it has no level yet, so the
    records reach the application's handlers.
    """
    trail = AuditTrail(hits=hits, logger=logger, level=level)
    if trail.logger.level == logging.NOTSET:
        trail.logger.setLevel(level)
    if store is None:
        from ._api import default_store

        store = default_store()
    return store.add_listener(trail)


def _caller() -> tuple[str | None, int | None]:
    """The module and line of the application code that asked, when this thread has it.

    A background refresh (or an ``aget`` served by an executor thread) has no caller
    above the machinery: ``(None, None)``.
    """
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        module = frame.f_globals.get("__name__")
        if not isinstance(module, str):
            return None, frame.f_lineno
        if module.partition(".")[0] not in _OWN and not module.startswith("concurrent.futures"):
            return module, frame.f_lineno
        frame = frame.f_back
    return None, None
