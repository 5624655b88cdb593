"""What a backend is: the small protocol third parties implement, and the traits the store reads.

A backend is ``scheme`` + ``fetch`` + ``close`` (:class:`Backend`). Everything else the store
may ask of it is a *trait* with a default, declared once here (:class:`BackendBase`) and read
once per backend (:func:`describe`), which warns about a name that looks like a misspelt trait.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NoReturn, Protocol, runtime_checkable

from ._refs import SecretRef

__all__ = [
    "TRAITS",
    "Backend",
    "BackendBase",
    "BackendTraitWarning",
    "BackendTraits",
    "BatchBackend",
    "Fetched",
    "describe",
]


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


#: Every optional attribute the store (or the option check) reads from a backend.
TRAITS: frozenset[str] = frozenset(
    {
        "concurrency",
        "configuration",
        "consumes_field",
        "deadline",
        "enforced_deadline",
        "fetch_many",
        "local",
        "option_shapes",
        "options",
        "probe",
    }
)


class BackendBase:
    """A base class that declares every trait with its default; subclassing it is optional.

    A backend that only implements :class:`Backend` gets these same defaults.
    """

    scheme: str
    #: Reads this machine (a file, the environment): called inline, without a deadline lane,
    #: and its values re-read about once a second instead of cached for the TTL.
    local: bool = False
    #: Its values are configuration (``.env``, the environment): registered for log redaction
    #: only when read as secrets. A secret file's content (``metadata["file"]``) always is.
    configuration: bool = False
    #: The total deadline of one call, seconds; ``None``: the store's ``deadline``.
    deadline: float | None = None
    #: The ceiling of its calls in flight at once (the store's ``concurrency`` caps it too);
    #: ``None``: the store's. The limit under it adapts to the server (see docs/caching.md).
    concurrency: int | None = None
    #: Its own transport ends every call within this many seconds (a total deadline, as gRPC's,
    #: not a socket timeout). When that is within the store's deadline for it, the store calls
    #: it on the caller's thread instead of a deadline lane. ``None``: it does not.
    enforced_deadline: float | None = None
    #: The ``?option`` names a reference may carry; ``None``: any (no check).
    options: frozenset[str] | None = None
    #: The shape of each option's value (see ``secretkit._options.Shape``); ``None``: any value.
    option_shapes: Mapping[str, Any] | None = None
    #: ``#...`` means something to this backend, not a JSON field: a bool, or a function of the ref.
    consumes_field: bool | Callable[[SecretRef], bool] = False
    #: ``probe(name) -> (dict, key, raw)``: the environment's own dict, so a cached read can see
    #: a variable set, changed or deleted by one identity test. The environment backend only.
    probe: Callable[[str], tuple[Any, Any, Any]] | None = None
    #: ``fetch_many(refs)``: see :class:`BatchBackend`.
    fetch_many: Callable[[Sequence[SecretRef]], Mapping[SecretRef, Fetched | Exception]] | None = None

    def fetch(self, ref: SecretRef) -> Fetched:
        raise NotImplementedError

    def close(self) -> None:
        """Release clients and connections (idempotent); nothing to release by default."""


class BackendTraitWarning(UserWarning):
    """A backend has an attribute that looks like a misspelt trait (``concurency = 2``)."""


class BackendTraits:
    """A backend's traits, read once when a store takes the backend in.

    The store reads these instead of ``getattr`` on every call: one place says what a trait
    defaults to, and a backend's spelling is checked once.
    """

    __slots__ = (
        "_consumes",
        "backend",
        "concurrency",
        "configuration",
        "deadline",
        "enforced_deadline",
        "fetch_many",
        "local",
        "probe",
        "scheme",
    )

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.scheme: str = backend.scheme
        self.local = bool(getattr(backend, "local", False))
        self.configuration = bool(getattr(backend, "configuration", False))
        self.deadline: float | None = getattr(backend, "deadline", None)
        self.concurrency: int | None = getattr(backend, "concurrency", None)
        self.enforced_deadline: float | None = getattr(backend, "enforced_deadline", None)
        probe = getattr(backend, "probe", None)
        self.probe: Callable[[str], tuple[Any, Any, Any]] | None = probe if callable(probe) else None
        many = getattr(backend, "fetch_many", None)
        self.fetch_many: Callable[[Sequence[SecretRef]], Mapping[SecretRef, Any]] | None = (
            many if callable(many) else None
        )
        self._consumes: object = getattr(backend, "consumes_field", False)

    def consumes_field(self, ref: SecretRef) -> bool:
        """Whether the backend reads ``ref.field`` itself (dotenv's ``path/to/.env#KEY``)."""
        consumes = self._consumes
        if callable(consumes):
            return bool(consumes(ref))
        return bool(consumes)

    def __repr__(self) -> str:
        return f"BackendTraits({self.scheme!r})"


def describe(backend: Backend) -> BackendTraits:
    """``backend``'s traits, after a warning for each attribute that looks like a misspelt one."""
    _warn_misspelt(backend)
    return BackendTraits(backend)


def _warn_misspelt(backend: object) -> None:
    names = {n for n in dir(type(backend)) if not n.startswith("_")}
    names.update(n for n in getattr(backend, "__dict__", ()) if not n.startswith("_"))
    names -= TRAITS
    if not names:
        return
    import difflib  # here: read once per backend, and `import secretkit` stays light

    for name in sorted(names):
        close = difflib.get_close_matches(name, TRAITS, n=1, cutoff=0.8)
        if close:
            warnings.warn(
                f"the {getattr(backend, 'scheme', '?')} backend {type(backend).__name__} has {name!r}, "
                f"which no store reads: did you mean the trait {close[0]!r}? "
                "(the traits are listed in secretkit.BackendBase)",
                BackendTraitWarning,
                stacklevel=4,
            )
