"""State the sources of one settings build share: the store, one prefetch, what each field came from."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._api import default_store
from .._errors import SecretkitError
from .._secret import Secret
from .._store import SecretStore
from .values import Kind

if TYPE_CHECKING:
    from pydantic.fields import FieldInfo


@runtime_checkable
class Source(Protocol):
    """What a secretkit source offers the build: the names it will read, and how it prepares a value."""

    @property
    def current_state(self) -> dict[str, Any]: ...

    def secretkit_wanted(self, build: Build, claimed: set[str]) -> list[str]: ...

    def secretkit_claimed(self) -> set[str]: ...

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any: ...


class Binding:
    """Which secret a field was built from, so ``refresh()`` can tell whether it changed.

    A field built from nested inputs (``APP_DB__PASSWORD=vault://...`` under ``db``) has
    ``leaves``: each secret inside it, by the key it was read with. ``refresh()`` builds such
    a field again, through the sources, when one of them changed.
    """

    __slots__ = ("field_name", "key", "kind", "leaves", "secret", "source", "store", "value_is_complex")

    def __init__(
        self,
        field_name: str,
        source: Source,
        store: SecretStore,
        key: str,
        kind: Kind,
        secret: Secret[Any],
        value_is_complex: bool = False,
        leaves: tuple[tuple[str, Secret[Any]], ...] = (),
    ) -> None:
        self.field_name = field_name
        self.source = source
        self.store = store
        self.key = key
        self.kind = kind
        self.secret = secret
        self.value_is_complex = value_is_complex
        self.leaves = leaves

    def __repr__(self) -> str:
        return f"Binding({self.field_name!r}, key={self.key!r}, kind={self.kind!r})"

    def renewed(self, secret: Secret[Any]) -> Binding:
        return Binding(
            self.field_name,
            self.source,
            self.store,
            self.key,
            self.kind,
            secret,
            self.value_is_complex,
            self.leaves,
        )

    # Immutable and holding a store (locks, threads): copies share it instead of cloning it.
    def __copy__(self) -> Binding:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Binding:
        return self


class Build:
    """One construction of a settings class: its store, its sources, one prefetch for all of them."""

    __slots__ = (
        "_claimed",
        "_planned",
        "asked",
        "bindings",
        "failures",
        "looked_up",
        "requested_store",
        "secret_keys",
        "sources",
    )

    def __init__(self, store: SecretStore | None = None, asked: frozenset[str] = frozenset()) -> None:
        self.requested_store = store
        #: The local sources this build's keyword arguments name (``_env_file=``, ``_secrets_dir=``):
        #: read even while a test isolates settings.
        self.asked = asked
        self.sources: list[Source] = []  # secretkit's sources, highest priority first
        self.bindings: dict[str, Binding] = {}
        self.looked_up: dict[str, tuple[str, tuple[str, ...]]] = {}
        self.failures: dict[str, SecretkitError] = {}
        #: Input keys whose value is a secret by where it came from (a secrets_dir file).
        self.secret_keys: set[str] = set()
        self._planned: set[int] = set()
        self._claimed: set[str] | None = None

    @property
    def store(self) -> SecretStore:
        return self.requested_store if self.requested_store is not None else default_store()

    def prefetch(self, caller: Source) -> Mapping[str, SecretkitError]:
        """Plan every source not planned yet and fetch what they need in one ``store.prefetch``.

        The first secretkit source to run plans all of them, in priority order, so a field
        a higher-priority source holds is not fetched for a lower one.
        """
        if id(caller) in self._planned:
            return self.failures
        if self._claimed is None:
            self._claimed = caller.secretkit_claimed()
        pending = [s for s in (*self.sources, caller) if id(s) not in self._planned]
        names: list[str] = []
        for source in dict((id(s), s) for s in pending).values():
            self._planned.add(id(source))
            names.extend(source.secretkit_wanted(self, self._claimed))
        if names:
            self.failures.update(self.store.prefetch(names))
        return self.failures


BUILD: contextvars.ContextVar[Build | None] = contextvars.ContextVar("secretkit_settings_build", default=None)
# The store SecretkitSettings.from_store() asked for, read by __init__ (whose signature the
# pydantic mypy plugin derives from the fields, so it cannot take the store as an argument).
STORE: contextvars.ContextVar[SecretStore | None] = contextvars.ContextVar(
    "secretkit_settings_store", default=None
)
