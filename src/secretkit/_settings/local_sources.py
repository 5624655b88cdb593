"""pydantic-settings' environment, ``.env`` and ``secrets_dir`` sources, with references resolved.

``SecretkitEnvSettingsSource``, ``SecretkitDotEnvSettingsSource`` and
``SecretkitSecretsSettingsSource`` subclass pydantic-settings' classes and change only what
a value is: a value that is a reference (``vault://...``) is replaced by the secret it names,
a field typed ``Secret``/``LiveSecret`` gets a snapshot or a live handle. Prefixes, aliases,
case rules, nesting and decoding stay pydantic-settings' code.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic.fields import FieldInfo
from pydantic_settings import (
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SecretsSettingsSource,
)

from .. import _registry
from .._errors import SecretkitError
from .._localfile import read_local_text
from .._refs import SecretRef
from .build import Build
from .isolation import current
from .source_base import SourceBase, asked
from .values import Resolved, marker

if TYPE_CHECKING:
    _EnvBase = EnvSettingsSource
else:
    _EnvBase = object


class _EnvVars(SourceBase, _EnvBase):
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
        if files is None or (current() is not None and not asked("_env_file")):
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


class SecretkitSecretsSettingsSource(SourceBase, SecretsSettingsSource):
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
        elif isinstance(twin, SecretkitDotEnvSettingsSource) and not asked("_env_file"):
            twin.env_file, twin.env_vars = None, {}
        elif isinstance(twin, SecretkitSecretsSettingsSource) and not asked("_secrets_dir"):
            twin.secrets_dir = None
    return twin


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
