"""pydantic-settings' own sources, with references resolved through a secretkit store.

``SecretkitEnvSettingsSource``, ``SecretkitDotEnvSettingsSource`` and
``SecretkitSecretsSettingsSource`` subclass pydantic-settings' classes and change only what
a value is: a value that is a reference (``vault://...``) is replaced by the secret it names,
a field typed ``Secret``/``LiveSecret`` gets a snapshot or a live handle. Prefixes, aliases,
case rules, nesting and decoding stay pydantic-settings' code. ``SecretkitSettingsSource``
adds what those sources cannot read: ``Ref(...)`` fields, and plain names through the
store's chain (its remote backends) for fields no other source set.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Union

from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
)
from pydantic_settings.sources import PydanticBaseEnvSettingsSource

from .. import _registry
from .._errors import SecretkitError, SecretNotFound
from .._localfile import read_local_text
from .._refs import SecretRef
from .._secret import Secret
from .._store import SecretStore
from .build import BUILD, Binding, Build
from .errors import SecretkitSettingsError
from .isolation import current
from .values import Kind, MaskedStr, Resolved, kind_of, marker, masked, resolved_leaves, union_members

EnvFiles = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]
FROM_CONFIG: Any = object()  # an argument left to the settings' model_config
NONE: Any = object()  # a value equal to env_parse_none_str: the field is set, to None

if TYPE_CHECKING:
    _Base = PydanticBaseEnvSettingsSource
    _EnvBase = EnvSettingsSource
else:
    _Base = _EnvBase = object


class _Secretkit(_Base):
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


class _EnvVars(_Secretkit, _EnvBase):
    """For sources that load an ``env_vars`` mapping: resolve the references the fields read, in one batch."""

    _secretkit_extras = False  # whether keys that are no field's are handed over too (.env files)
    _secretkit_refs: dict[str, str]  # env_vars key holding a reference -> the field it is read for
    _secretkit_drop: set[str]

    def secretkit_wanted(self, build: Build, claimed: set[str]) -> list[str]:
        refs: dict[str, str] = {}
        drop: set[str] = set()
        delimiter = self.env_nested_delimiter
        names_of_fields: set[str] = set()
        for name, field in self.settings_cls.model_fields.items():
            names = [env_name for _, env_name, _ in self._extract_field_info(field, name)]
            names_of_fields.update(names)
            if marker(field) is not None:
                continue
            keys = [next((n for n in names if self.env_vars.get(n) is not None), None)]
            if delimiter:
                prefixes = tuple(f"{n}{delimiter}" for n in names)
                keys.extend(key for key in self.env_vars if key.startswith(prefixes))
            held = [key for key in keys if key is not None]
            references = [key for key in held if _registry.is_reference(self.env_vars[key])]
            if name in claimed:
                # A source before this one set the field: its reference is not fetched, and not
                # handed over as text either (pydantic-settings would merge the two).
                drop.update(references)
            else:
                refs.update(dict.fromkeys(references, name))
                if held:
                    claimed.add(name)
        # Keys that are no field's reach the model only as extra inputs; with `extra` other than
        # "allow" they are refused or dropped, so fetching their secrets would be wasted.
        if self._secretkit_extras and self.config.get("extra") == "allow":
            for key, value in self.env_vars.items():
                if key not in names_of_fields and key not in refs and _registry.is_reference(value):
                    refs[key] = key
        self._secretkit_refs, self._secretkit_drop = refs, drop
        return [str(self.env_vars[key]) for key in refs]

    def __call__(self) -> dict[str, Any]:
        build = self._secretkit_begin()
        failures = build.prefetch(self)
        refs: dict[str, str] = getattr(self, "_secretkit_refs", {})
        drop: set[str] = getattr(self, "_secretkit_drop", set())
        if refs or drop:
            store = build.store
            env_vars = {key: value for key, value in self.env_vars.items() if key not in drop}
            for key, field_name in refs.items():
                reference = str(env_vars[key])
                try:
                    failure = failures.get(reference)
                    if failure is not None:
                        raise failure
                    env_vars[key] = Resolved(store.get(reference), reference)
                except SecretkitError as exc:
                    # Not found included: a variable set to a reference names a secret that must
                    # exist, and "Field required" would hide the variable, the reference and the cause.
                    self._secretkit_fail(field_name, exc, self._secretkit_holder(key))
            self._secretkit_raise()
            self.env_vars = env_vars
        data = super().__call__()
        self._secretkit_raise()
        return data


class SecretkitEnvSettingsSource(_EnvVars, EnvSettingsSource):
    """pydantic-settings' environment source; variables holding references give the secret."""

    def _secretkit_holder(self, key: str) -> str:
        # pydantic-settings lowercases names when matching case-insensitively: show the variable as set.
        isolation = current()
        environ = isolation.environ if isolation is not None else os.environ
        if key not in environ and not self.case_sensitive:
            key = next((name for name in environ if name.lower() == key), key)
        return f"the variable {key}"

    def _secretkit_origin(self, field: FieldInfo, field_name: str) -> str | None:
        isolation = current()
        # A test's stand-in environment, which the test's store reads as its environment.
        environ = isolation.environ if isolation is not None else os.environ
        for _, env_name, _ in self._extract_field_info(field, field_name):
            if self.env_vars.get(env_name) is None:
                continue
            for key in environ:
                if key == env_name or (not self.case_sensitive and key.lower() == env_name):
                    chain = self._secretkit_store().backends
                    # A plain name the store's environment backend answers is re-read from
                    # os.environ on every read; an env:// reference is cached like any other.
                    return key if chain and chain[0].scheme == "env" else str(SecretRef("env", key))
        return None


class SecretkitDotEnvSettingsSource(_EnvVars, DotEnvSettingsSource):
    """pydantic-settings' ``.env`` source; entries holding references give the secret."""

    _secretkit_extras = True

    def _secretkit_holder(self, key: str) -> str:
        return f"the env_file entry {key}"

    def _secretkit_origin(self, field: FieldInfo, field_name: str) -> str | None:
        from dotenv import dotenv_values

        files = self.env_file
        if files is None or (current() is not None and not _asked("_env_file")):
            return None
        listed = [files] if isinstance(files, str | os.PathLike) else list(files)
        names = [env_name for _, env_name, _ in self._extract_field_info(field, field_name)]
        for env_name in names:
            for file in reversed(listed):  # the last file wins, as in pydantic-settings
                path = Path(file).expanduser()
                if not path.is_file():
                    continue
                try:
                    text = read_local_text(path, encoding=self.env_file_encoding or "utf-8")
                except (OSError, UnicodeDecodeError):
                    continue  # pydantic-settings' own read of the file reports it
                for key in dotenv_values(stream=io.StringIO(text), interpolate=False):
                    if key == env_name or (not self.case_sensitive and key.lower() == env_name):
                        return str(SecretRef("dotenv", str(path.absolute()), field=key))
        return None


class SecretkitSecretsSettingsSource(_Secretkit, SecretsSettingsSource):
    """pydantic-settings' ``secrets_dir`` source; a file holding a reference gives the secret."""

    _secretkit_skip: frozenset[str] = frozenset()  # fields the sources before this one set

    def secretkit_wanted(self, build: Build, claimed: set[str]) -> list[str]:
        # Planned before this source's own call sets up its directories: read the files the
        # way it will (the last directory wins, case rules, the content stripped), and only
        # files inside their directory. A file it reads that this skips is fetched on its own.
        self._secretkit_skip = frozenset(claimed)
        wanted: list[str] = []
        for name, field in self.settings_cls.model_fields.items():
            if name in claimed or marker(field) is not None:
                continue
            for _, env_name, _ in self._extract_field_info(field, name):
                path = self._secretkit_file(env_name)
                if path is None:
                    continue
                claimed.add(name)
                try:
                    text = read_local_text(path).strip()
                except (OSError, UnicodeDecodeError):
                    break  # the source's own read reports it, in its place
                if _registry.is_reference(text):
                    wanted.append(text)
                break
        return wanted

    def _secretkit_file(self, env_name: str) -> Path | None:
        """The file this source reads for ``env_name``: the last directory wins, inside its directory."""
        configured = self.secrets_dir
        if configured is None:
            return None
        listed = [configured] if isinstance(configured, str | os.PathLike) else list(configured)
        for directory in (Path(d).expanduser() for d in reversed(listed)):
            try:
                if not directory.is_dir():
                    continue
                path = self.find_case_path(directory, env_name, self.case_sensitive)
                if path is not None and path.is_file() and directory.resolve() in path.resolve().parents:
                    return path
            except (OSError, RuntimeError):  # unreadable, or a symlink loop (RuntimeError before 3.13)
                continue
        return None

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        value, key, value_is_complex = super().get_field_value(field, field_name)
        if _registry.is_reference(value) and field_name in self._secretkit_skip:
            # A source before this one set the field: its reference is not fetched, and not
            # handed over as text either (pydantic-settings would merge the two).
            value = None
        elif _registry.is_reference(value) and marker(field) is None:
            try:
                failure = self._secretkit_build().failures.get(value)
                if failure is not None:
                    raise failure
                value = Resolved(self._secretkit_store().get(value), value)
            except SecretkitError as exc:
                # Not found included: a file holding a reference names a secret that must exist.
                self._secretkit_fail(field_name, exc, f"the secrets_dir file {key}")
                value = None
        return value, key, value_is_complex

    def __call__(self) -> dict[str, Any]:
        build = self._secretkit_begin()
        build.prefetch(self)
        data = super().__call__()
        self._secretkit_raise()
        # A secret file's content is a secret: a ValidationError masks what these inputs held.
        build.secret_keys.update(key for key in data if isinstance(key, str))
        return data

    def _secretkit_origin(self, field: FieldInfo, field_name: str) -> str | None:
        for _, env_name, _ in self._extract_field_info(field, field_name):
            path = self._secretkit_file(env_name)
            if path is not None:
                return str(SecretRef("file", str(path.resolve())))
        return None


# pydantic-settings names a source by its class in error messages and in the keys of
# `settings_sources_data`, which user code indexes ("EnvSettingsSource"): secretkit's versions
# keep the names of the classes they extend.
for _ours in (SecretkitEnvSettingsSource, SecretkitDotEnvSettingsSource, SecretkitSecretsSettingsSource):
    _ours.__name__ = _ours.__qualname__ = _ours.__bases__[-1].__name__
del _ours

_OURS: dict[type[PydanticBaseSettingsSource], type[PydanticBaseSettingsSource]] = {
    EnvSettingsSource: SecretkitEnvSettingsSource,
    DotEnvSettingsSource: SecretkitDotEnvSettingsSource,
    SecretsSettingsSource: SecretkitSecretsSettingsSource,
}


def secretkit_version_of(source: Any) -> Any:
    """The secretkit subclass of one of pydantic-settings' own sources, in the same state.

    Anything else (a custom source, a subclass of theirs) is returned as it is. While a test
    isolates settings (``secretkit_memory``), the environment source reads the test's
    stand-in environment, and the ``.env`` and ``secrets_dir`` sources read nothing.
    """
    ours = _OURS.get(type(source))
    if ours is None:
        return source
    # A copy of the instance under the subclass: these sources read the environment and the
    # .env files when they are built, and a copy reads nothing twice. The subclasses add no
    # state of their own at construction.
    twin = object.__new__(ours)
    twin.__dict__.update(source.__dict__)
    isolation = current()
    if isolation is not None:
        if isinstance(twin, SecretkitEnvSettingsSource):
            twin.env_vars = _parsed_environ(
                isolation.environ, twin.case_sensitive, twin.env_ignore_empty, twin.env_parse_none_str
            )
        elif isinstance(twin, SecretkitDotEnvSettingsSource) and not _asked("_env_file"):
            twin.env_file, twin.env_vars = None, {}
        elif isinstance(twin, SecretkitSecretsSettingsSource) and not _asked("_secrets_dir"):
            twin.secrets_dir = None
    return twin


def _asked(argument: str) -> bool:
    """Whether the settings being built were given ``argument`` (``_env_file=``) by their caller."""
    build = BUILD.get()
    return build is not None and argument in build.asked


def _parsed_environ(
    environ: Mapping[str, str], case_sensitive: bool | None, ignore_empty: bool, none_str: str | None
) -> dict[str, str | None]:
    """``environ`` as pydantic-settings' environment source holds ``os.environ`` (its names and options)."""
    parsed: dict[str, str | None] = {}
    for name, value in environ.items():
        if not (ignore_empty and value == ""):
            none = none_str is not None and value == none_str
            parsed[name if case_sensitive else name.lower()] = None if none else value
    return parsed


# -- Ref(...) fields and the store's chain ------------------------------------------------------


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


class SecretkitSettingsSource(_Secretkit, PydanticBaseEnvSettingsSource):
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
        if files is None or (current() is not None and not _asked("_env_file")):
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
