"""What a backend is: the small protocol third parties implement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from ._refs import SecretRef

__all__ = ["Backend", "BatchBackend", "Fetched"]


@dataclass(frozen=True, slots=True, repr=False)
class Fetched:
    """What a backend returns for one secret.

    ``version`` is the backend's version id (``None`` where the store has none; the store
    then detects rotation by comparing values). ``ttl``, when set, caps how long the store
    keeps the value: a backend serving leased credentials passes the lease duration.
    """

    value: str | bytes
    version: str | None = None
    ttl: float | None = None
    #: Backend-specific, non-secret facts (a lease id, an ARN, ...). Never values.
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:
        # A Fetched carries the raw value: its repr must not.
        return f"Fetched(value=<{type(self.value).__name__}, redacted>, version={self.version!r})"


@runtime_checkable
class Backend(Protocol):
    """A secret store secretkit can read from.

    ``fetch`` returns the secret at ``ref.path`` (``ref.field`` is applied by the store)
    or raises ``SecretNotFound(ref.path)`` when the secret does not exist. Any other
    exception means the backend is unavailable: the store wraps it in
    :class:`~secretkit.BackendUnavailable` with the cause chained and applies
    stale-if-error and backoff. A backend does not cache, retry or log values.
    """

    scheme: str

    def fetch(self, ref: SecretRef) -> Fetched: ...

    def close(self) -> None: ...


@runtime_checkable
class BatchBackend(Backend, Protocol):
    """A backend that can fetch several secrets in one call (optional).

    ``fetch_many`` returns a mapping from each ref to its :class:`Fetched` or to the
    exception for that ref (``SecretNotFound`` for a missing one). Refs left out of the
    mapping are fetched one by one by the store.
    """

    def fetch_many(self, refs: Sequence[SecretRef]) -> Mapping[SecretRef, Fetched | Exception]: ...
