"""``SecretkitSettingsSource``: ``Ref(...)`` fields, and plain names read through the store's chain.

It adds what pydantic-settings' own sources (:mod:`.local_sources`) cannot read: a field
marked with the one secret it reads, and, for fields no other source set, the store's remote
backends and ``env_file`` entries, all fetched in one ``store.prefetch``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union

from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings
from pydantic_settings.sources import PydanticBaseEnvSettingsSource

from .. import _registry
from .._errors import SecretkitError, SecretNotFound
from .._refs import SecretRef
from .._secret import Secret
from .._store import SecretStore
from .build import Binding, Build
from .isolation import current
from .source_base import SourceBase, asked
from .values import Resolved, kind_of, marker, masked, union_members

EnvFiles = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]
FROM_CONFIG: Any = object()  # an argument left to the settings' model_config
NONE: Any = object()  # a value equal to env_parse_none_str: the field is set, to None


class _Plan:
    __slots__ = ("accepted", "explicit", "field", "keys", "name")

    def __init__(
        self,
        name: str,
        field: FieldInfo,
        keys: list[tuple[str, str]],
        explicit: bool,
        accepted: frozenset[str],
    ) -> None:
        self.name = name
        self.field = field
        self.keys = keys  # (store key, input key handed to pydantic), in lookup order
        self.explicit = explicit
        self.accepted = accepted


class SecretkitSettingsSource(SourceBase, PydanticBaseEnvSettingsSource):
    """A pydantic-settings source that reads fields through a secretkit store.

    A field marked ``Annotated[..., Ref("scheme://...")]`` (or a ``SecretRef``) reads that
    secret only. Any other field that no source before this one set is looked up by the name
    pydantic-settings' environment source gives it (``env_prefix``, aliases,
    ``env_prefix_target``) in the store's chain, then in ``env_file``: a store cannot list its
    secrets, so ``case_sensitive=False`` tries the declared spelling, upper case and lower
    case. Everything is fetched in one ``store.prefetch``, batched per backend.

    Fields typed ``LiveSecret`` get a live handle, ``Secret`` fields the snapshot; any other
    type is validated by pydantic from the secret's text (JSON for models, lists and dicts),
    handed over with a masked ``repr``.
    """

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        store: SecretStore | None = None,
        *,
        case_sensitive: bool | None = None,
        env_prefix: str | None = None,
        env_file: EnvFiles | None = FROM_CONFIG,
        env_ignore_empty: bool | None = None,
        env_parse_none_str: str | None = None,
    ) -> None:
        super().__init__(
            settings_cls,
            case_sensitive=case_sensitive,
            env_prefix=env_prefix,
            env_ignore_empty=env_ignore_empty,
            env_parse_none_str=env_parse_none_str,
        )
        self._store = store
        self.env_file: EnvFiles | None = self.config.get("env_file") if env_file is FROM_CONFIG else env_file
        self._plans_made: dict[str, _Plan] | None = None
        self._values: dict[str, tuple[Any, str]] = {}

    def __repr__(self) -> str:
        return f"SecretkitSettingsSource({self.settings_cls.__name__}, store={self.store!r})"

    @property
    def store(self) -> SecretStore:
        """The store read from: the one given, else the one the settings are built with, else the default."""
        return self._store if self._store is not None else self._secretkit_build().store

    def _secretkit_store(self) -> SecretStore:
        return self.store

    # pydantic-settings lowercases names when matching case-insensitively; a store cannot be
    # searched that way, so names keep their declared spelling and _spellings() varies the case.
    def _apply_case_sensitive(self, value: str) -> str:
        return value

    def _spellings(self, name: str) -> list[str]:
        if self.case_sensitive:
            return [name]
        return list(dict.fromkeys([name, name.upper(), name.lower()]))

    def plan(self) -> dict[str, tuple[str, ...]]:
        """For each field, the keys (names or references) it would be looked up as, in order."""
        return {name: tuple(k for k, _ in p.keys) for name, p in self._plans(claimed=set()).items()}

    def _plans(self, claimed: Iterable[str]) -> dict[str, _Plan]:
        skip = set(claimed)
        store = self.store
        env_files = self._env_files(store)
        plans: dict[str, _Plan] = {}
        for name, field in self.settings_cls.model_fields.items():
            infos = self._extract_field_info(field, name)
            accepted = frozenset({name, *(key for key, _, _ in infos)})
            preferred_key, _, preferred_complex = infos[0]
            if name in skip:
                continue  # another source has it: fetching it would be wasted
            ref = marker(field)
            if ref is not None:
                key = name if preferred_complex else preferred_key
                plans[name] = _Plan(name, field, [(ref, key)], True, accepted)
                continue
            keys: list[tuple[str, str]] = []
            for field_key, env_name, is_complex in infos:
                # The same rule as pydantic-settings: report the preferred key, so this source's
                # value and another source's value for the field merge under one key.
                key = field_key if preferred_complex or is_complex else preferred_key
                keys.extend((s, key) for s in self._spellings(env_name) if _allowed_name(store, s))
            for file in env_files:
                for field_key, env_name, is_complex in infos:
                    key = field_key if preferred_complex or is_complex else preferred_key
                    for spelling in self._spellings(env_name):
                        dotenv_ref = SecretRef("dotenv", str(file), field=spelling)
                        if _allowed_ref(store, dotenv_ref):
                            keys.append((str(dotenv_ref), key))
            plans[name] = _Plan(name, field, list(dict.fromkeys(keys)), False, accepted)
        return plans

    def _env_files(self, store: SecretStore) -> list[Path]:
        files = self.env_file
        if files is None or (current() is not None and not asked("_env_file")):
            return []
        listed = [files] if isinstance(files, str | os.PathLike) else list(files)
        from ..backends.dotenv import DotenvBackend

        in_chain = {b.path for b in store.backends if isinstance(b, DotenvBackend)}
        found: list[Path] = []
        # pydantic-settings lets a later file override an earlier one: look in the last first.
        for file in reversed(listed):
            path = Path(file).expanduser().absolute()
            if path.is_file() and path not in in_chain and path not in found:
                found.append(path)
        return found

    def secretkit_wanted(self, build: Build, claimed: set[str]) -> list[str]:
        self._plans_made = self._plans(claimed)
        if self._store is not None and self._store is not build.store:
            return []  # a store of its own: fetched when this source runs
        return [key for plan in self._plans_made.values() for key, _ in plan.keys]

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The value this source found for ``field_name`` (after it has been called), its key, False."""
        value, key = self._values.get(field_name, (None, field_name))
        return value, key, False

    def __call__(self) -> dict[str, Any]:
        build = self._secretkit_begin()
        failures: Mapping[str, SecretkitError] = build.prefetch(self)
        store = self.store
        plans = self._plans_made if self._plans_made is not None else self._plans(self.secretkit_claimed())
        state = self.current_state
        plans = {name: p for name, p in plans.items() if p.accepted.isdisjoint(state)}
        if store is not build.store:
            failures = store.prefetch(key for p in plans.values() for key, _ in p.keys)
        data: dict[str, Any] = {}
        for name, plan in plans.items():
            try:
                found = self._first(store, plan, failures)
            except SecretkitError as exc:
                self._secretkit_fail(name, exc)
                continue
            for accepted in plan.accepted:
                build.looked_up.setdefault(accepted, (name, tuple(k for k, _ in plan.keys)))
            if found is None:
                continue
            store_key, input_key, secret = found
            kind = kind_of(plan.field.annotation)
            value = self.prepare_field_value(name, plan.field, Resolved(secret, store_key), False)
            if value is None:
                continue  # an empty value with env_ignore_empty, or a handle that could not be made
            if value is NONE:
                value = None
            data[input_key] = value
            self._values[name] = (value, input_key)
            build.bindings[name] = Binding(name, self, store, store_key, kind, secret)
        self._secretkit_raise()
        return data

    def _first(
        self, store: SecretStore, plan: _Plan, failures: Mapping[str, SecretkitError]
    ) -> tuple[str, str, Secret[Any]] | None:
        for store_key, input_key in plan.keys:
            failure = failures.get(store_key)
            try:
                if failure is not None:
                    raise failure
                secret = store.get(store_key)
                if not plan.explicit and "://" in store_key:
                    # An env_file entry: like a name in the store's chain, a reference held
                    # there is followed (one level).
                    target = secret.reveal()
                    if _registry.is_reference(target):
                        return target, input_key, store.get(target)
                return store_key, input_key, secret
            except SecretNotFound:
                if plan.explicit and "://" in store_key:
                    raise  # Ref("scheme://...") names one secret, which must exist
                continue
        return None

    def prepare_field_value(
        self, field_name: str, field: FieldInfo, value: Any, value_is_complex: bool
    ) -> Any:
        """What this source hands pydantic for one field, from the secret's text."""
        kind = kind_of(field.annotation)
        if kind != "value":
            return self._secretkit_handle(field_name, field, value, kind)
        text = value.secret.reveal() if isinstance(value, Resolved) else value
        if self.env_ignore_empty and text in ("", b""):
            return None
        if self.env_parse_none_str is not None and text == self.env_parse_none_str:
            return NONE
        if isinstance(text, str | bytes):
            complexity = self._complexity(field)
            if complexity != "simple":
                try:
                    decoded = self.decode_complex_value(field_name, field, text)
                except ValueError:
                    # Not JSON: pydantic reports the field, with the input masked.
                    decoded = text
                if complexity == "complex" or isinstance(decoded, list | dict):
                    text = decoded
        return masked(text)

    def _complexity(self, field: FieldInfo) -> Literal["simple", "complex", "union"]:
        if self.field_is_complex(field):
            return "complex"
        members = union_members(field.annotation)
        if len(members) > 1 or (members and members[0] is not field.annotation):
            for member in members:
                if self.field_is_complex(FieldInfo.from_annotation(member)):
                    return "union"
        return "simple"


# A name lookup is a guess among spellings: one that the store's allow-list refuses is
# skipped rather than reported, so an allow-list does not break fields left to defaults.
# The store's own allow-list object decides, so this skip and the store's refusal always agree.
def _allowed_name(store: SecretStore, name: str) -> bool:
    return store.allow is None or store.allow.admits_name(name)


def _allowed_ref(store: SecretStore, ref: SecretRef) -> bool:
    return store.allow is None or store.allow.admits_ref(ref)
