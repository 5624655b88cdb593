"""What every secretkit settings source shares: its build, and how a value becomes a field input.

The sources themselves are in :mod:`.local_sources` (pydantic-settings' environment, ``.env`` and
``secrets_dir`` sources, with the references their values hold resolved) and in
:mod:`.store_source` (``Ref(...)`` fields, and names read through the store's chain).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic.fields import FieldInfo

from .._errors import SecretkitError
from .._secret import Secret
from .._store import SecretStore
from .build import BUILD, Binding, Build
from .errors import SecretkitSettingsError
from .values import Kind, MaskedStr, Resolved, kind_of, marker, masked, resolved_leaves

if TYPE_CHECKING:
    from pydantic_settings.sources import PydanticBaseEnvSettingsSource

    _Base = PydanticBaseEnvSettingsSource
else:
    _Base = object


class SourceBase(_Base):
    """What every secretkit source shares: the build it belongs to and how a value becomes a field input."""

    _secretkit_errors: dict[str, SecretkitError]
    _secretkit_holders: dict[str, str]
    _secretkit_solo: Build | None = None

    def _secretkit_store(self) -> SecretStore:
        return self._secretkit_build().store

    def _secretkit_build(self) -> Build:
        build = BUILD.get()
        if build is not None:
            return build
        # Outside SecretkitSettings (a source in a plain BaseSettings): a build of its own.
        if self._secretkit_solo is None:
            self._secretkit_solo = Build()
        return self._secretkit_solo

    def _secretkit_begin(self) -> Build:
        """The build for this call: a source kept and called again plans and fetches again."""
        self._secretkit_solo = None
        return self._secretkit_build()

    def secretkit_claimed(self) -> set[str]:
        """The fields that the sources before this one set."""
        state = self.current_state
        claimed: set[str] = set()
        for name, field in self.settings_cls.model_fields.items():
            keys = {name, *(key for key, _, _ in self._extract_field_info(field, name))}
            if not keys.isdisjoint(state):
                claimed.add(name)
        return claimed

    def secretkit_wanted(self, build: Build, claimed: set[str]) -> list[str]:
        return []

    def _secretkit_origin(self, field: FieldInfo, field_name: str) -> str | None:
        """The reference that reads the local value this source found for a field (for live handles)."""
        return None

    def _secretkit_fail(self, field_name: str, exc: SecretkitError, holder: str | None = None) -> None:
        """Remember a field whose secret could not be read; ``holder`` is what held its reference."""
        if not hasattr(self, "_secretkit_errors"):
            self._secretkit_errors, self._secretkit_holders = {}, {}
        self._secretkit_errors[field_name] = exc
        if holder is not None:
            self._secretkit_holders[field_name] = holder

    def _secretkit_raise(self) -> None:
        errors = getattr(self, "_secretkit_errors", None)
        if errors:
            holders = self._secretkit_holders
            self._secretkit_errors, self._secretkit_holders = {}, {}
            raise SecretkitSettingsError(errors, holders) from next(iter(errors.values()))

    def _secretkit_holder(self, key: str) -> str:
        """How an error names the input ``key`` that held a reference (a variable, an entry, a file)."""
        return key

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        if marker(field) is not None:
            return None  # a Ref(...) field reads its one secret, in SecretkitSettingsSource
        kind = kind_of(field.annotation)
        if kind != "value":
            return self._secretkit_handle(field_name, field, value, kind) if isinstance(value, str) else None
        prepared = super().prepare_field_value(field_name, field, value, value_is_complex)
        if isinstance(value, Resolved) and prepared is not None:
            bindings = self._secretkit_build().bindings
            earlier = bindings.get(field_name)
            if earlier is not None and earlier.leaves:
                self._secretkit_bind_leaves(field_name, kind, [value])  # merged with nested inputs
            else:
                bindings[field_name] = Binding(
                    field_name, self, self._secretkit_store(), value.key, kind, value.secret, value_is_complex
                )
            return masked(prepared)
        if isinstance(prepared, dict | list):
            self._secretkit_bind_leaves(field_name, kind, prepared)
        return prepared

    def _secretkit_bind_leaves(
        self, field_name: str, kind: Kind, prepared: dict[Any, Any] | list[Any]
    ) -> None:
        """Remember the secrets a nested input holds, with those other sources found for the field."""
        found = resolved_leaves(prepared)
        if not found:
            return
        bindings = self._secretkit_build().bindings
        earlier = bindings.get(field_name)
        leaves: dict[str, Secret[Any]] = {}
        if earlier is not None:
            leaves.update(earlier.leaves or [(earlier.key, earlier.secret)])
        for leaf in found:
            leaves.setdefault(leaf.key, leaf.secret)
        first_key, first_secret = next(iter(leaves.items()))
        bindings[field_name] = Binding(
            field_name,
            self,
            self._secretkit_store(),
            first_key,
            kind,
            first_secret,
            True,
            tuple(leaves.items()),
        )

    def _secretkit_handle(self, field_name: str, field: FieldInfo, value: str, kind: Kind) -> Any:
        """A ``Secret`` snapshot or a live handle for a field typed so."""
        build = self._secretkit_build()
        store = self._secretkit_store()
        if isinstance(value, Resolved):
            key, secret = value.key, value.secret
        else:
            origin = self._secretkit_origin(field, field_name)
            if origin is None:
                return Secret(field_name, str(value)) if kind == "secret" else MaskedStr(value)
            try:
                key, secret = origin, store.get(origin)
            except SecretkitError as exc:
                self._secretkit_fail(field_name, exc)
                return None
        build.bindings[field_name] = Binding(field_name, self, store, key, kind, secret)
        return store.live(key) if kind == "live" else secret


def asked(argument: str) -> bool:
    """Whether the settings being built were given ``argument`` (``_env_file=``) by their caller."""
    build = BUILD.get()
    return build is not None and argument in build.asked
