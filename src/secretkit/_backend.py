"""What a backend is: the small protocol third parties implement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NoReturn, Protocol, runtime_checkable

from ._refs import SecretRef

__all__ = ["Backend", "BatchBackend", "Fetched"]


_NO_METADATA: Mapping[str, str] = MappingProxyType({})


class Fetched:
    """What a backend returns for one secret.

    ``version`` is the backend's version id (``None`` where the store has none; the store
    then detects rotation by comparing values). ``ttl``, when set, caps how long the store
    keeps the value: a backend serving leased credentials passes the lease duration.
    ``metadata`` holds backend-specific, non-secret facts (a lease id, an ARN); never values.
    """

    # A plain slotted class: a frozen dataclass costs several microseconds per cold read.
    __slots__ = ("metadata", "ttl", "value", "version")

    def __init__(
        self,
        value: str | bytes,
        version: str | None = None,
        ttl: float | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        self.value = value
        self.version = version
        self.ttl = ttl
        self.metadata = _NO_METADATA if metadata is None else metadata

    def __repr__(self) -> str:
        # A Fetched carries the raw value: its repr must not.
        return f"Fetched(value=<{type(self.value).__name__}, redacted>, version={self.version!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Fetched):
            return NotImplemented
        return (self.value, self.version, self.ttl, dict(self.metadata)) == (
            other.value,
            other.version,
            other.ttl,
            dict(other.metadata),
        )

    __hash__ = None  # type: ignore[assignment]

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("Fetched holds a raw secret value and cannot be pickled")


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
