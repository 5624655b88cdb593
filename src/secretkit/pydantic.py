"""pydantic-settings integration: settings fields resolved through a secretkit store.

The one module that imports pydantic and pydantic-settings (the ``secretkit[pydantic]``
extra), so that ``import secretkit`` stays light.

Two ways to use it::

    from typing import Annotated
    from pydantic import SecretStr
    from secretkit import LiveSecret
    from secretkit.pydantic import Ref, SecretkitSettings

    class Settings(SecretkitSettings):
        database_url: SecretStr            # by name: DATABASE_URL (env, .env, files, ...)
        stripe_key: Annotated[SecretStr, Ref("aws-sm://prod/stripe#api_key")]  # by reference
        api_token: LiveSecret[str]         # follows rotation by itself
        port: int = 8000                   # validated from the secret's text

    settings = Settings()
    settings.refresh()   # re-reads the snapshot fields; replaces only those that changed

or add ``SecretkitSettingsSource`` to any ``BaseSettings`` in
``settings_customise_sources``.
"""

from __future__ import annotations

import contextvars
import enum
import fnmatch
import os
import threading
import types
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    ClassVar,
    Final,
    Literal,
    NoReturn,
    Union,
    get_args,
    get_origin,
)

from . import _registry
from ._api import default_store
from ._errors import MissingDependency, SecretkitError, SecretNotFound
from ._redact import redact
from ._refs import SecretRef, looks_like_reference, parse_reference
from ._secret import MASK, LiveSecret, Secret
from ._store import SecretStore

try:
    from pydantic import PrivateAttr, ValidationError
    from pydantic.fields import FieldInfo
    from pydantic_core import InitErrorDetails, PydanticCustomError
    from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsError
    from pydantic_settings.sources import PydanticBaseEnvSettingsSource
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    _missing = MissingDependency("pydantic", "pydantic-settings", "pydantic")
    _missing.args = ('secretkit.pydantic needs pydantic-settings: pip install "secretkit[pydantic]"',)
    raise _missing from exc

import pydantic_settings as _pydantic_settings

if TYPE_CHECKING:
    from typing_extensions import Self

# pydantic-settings < 2.7 has no NoDecode marker.
_NoDecode: object | None = getattr(_pydantic_settings, "NoDecode", None)

__all__ = [
    "Ref",
    "SecretkitSettings",
    "SecretkitSettingsError",
    "SecretkitSettingsSource",
    "declared_secrets",
    "redact_validation_error",
]

Kind = Literal["value", "secret", "live"]
EnvFiles = Union[str, "os.PathLike[str]", Sequence[Union[str, "os.PathLike[str]"]]]


class _Unset(enum.Enum):
    FROM_CONFIG = 0  # an argument left to the settings' model_config
    SKIP = 1  # a field this source leaves to the others (an ignored empty value)


_FROM_CONFIG: Final = _Unset.FROM_CONFIG
_SKIP: Final = _Unset.SKIP


class Ref:
    """Marks a settings field as read from one secret: ``Annotated[SecretStr, Ref("aws-sm://prod/db#password")]``.

    ``key`` is a reference (``scheme://path#field?options``) or a plain name tried against the
    store's chain. The field's own name, prefix and aliases are then not looked up. A
    ``SecretRef`` instance in ``Annotated[...]`` works the same way.
    """

    __slots__ = ("key",)

    key: str

    def __init__(self, key: str | SecretRef) -> None:
        if isinstance(key, SecretRef):
            key = str(key)
        if not isinstance(key, str) or not key:
            raise TypeError("Ref() takes a secret name or a reference such as 'aws-sm://prod/db#password'")
        if "://" in key and looks_like_reference(key):
            parse_reference(key)  # a malformed reference fails when the class is defined, not at startup
        object.__setattr__(self, "key", key)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Ref is immutable")

    def __repr__(self) -> str:
        return f"Ref({self.key!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and other.key == self.key

    def __hash__(self) -> int:
        return hash((Ref, self.key))


class SecretkitSettingsError(SettingsError, SecretkitError):
    """Some fields' secrets could not be read (unreachable backend, access denied, ...).

    ``errors`` maps each field name to its secretkit error. Catch it as pydantic-settings'
    ``SettingsError`` or as secretkit's ``SecretkitError``. Never carries a secret value.
    """

    def __init__(self, errors: Mapping[str, SecretkitError]) -> None:
        self.errors = dict(errors)
        lines = [f"field {field!r}: {exc}" for field, exc in self.errors.items()]
        noun = "field" if len(lines) == 1 else "fields"
        super().__init__(f"secretkit could not read {len(lines)} settings {noun}: " + "; ".join(lines))


# -- values handed to pydantic ---------------------------------------------------------------


class _MaskedStr(str):
    """A str whose repr is a mask: pydantic's error text and pydantic-settings' debug log use repr.

    pydantic turns it into a plain ``str`` for ``str`` and ``SecretStr`` fields.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(MASK)


class _MaskedBytes(bytes):
    __slots__ = ()

    def __repr__(self) -> str:
        return repr(MASK)


def _masked(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _MaskedStr(value)
    if isinstance(value, bytes):
        return _MaskedBytes(value)
    if depth < 32 and isinstance(value, dict):
        return {k: _masked(v, depth + 1) for k, v in value.items()}
    if depth < 32 and isinstance(value, list):
        return [_masked(v, depth + 1) for v in value]
    return value


# -- what the source found, per field ----------------------------------------------------------


class _Binding:
    """Which secret a field was built from, so ``refresh()`` can tell whether it changed."""

    __slots__ = ("field_name", "key", "kind", "secret", "source", "store")

    def __init__(
        self,
        field_name: str,
        source: SecretkitSettingsSource,
        store: SecretStore,
        key: str,
        kind: Kind,
        secret: Secret[Any],
    ) -> None:
        self.field_name = field_name
        self.source = source
        self.store = store
        self.key = key
        self.kind = kind
        self.secret = secret

    def __repr__(self) -> str:
        return f"_Binding({self.field_name!r}, key={self.key!r}, kind={self.kind!r})"

    # Immutable and holding a store (locks, threads): copies share it instead of cloning it.
    def __copy__(self) -> _Binding:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Binding:
        return self


class _Build:
    """State shared between ``SecretkitSettings.__init__`` and the sources it runs."""

    __slots__ = ("bindings", "looked_up", "store")

    def __init__(self, store: SecretStore | None) -> None:
        self.store = store
        self.bindings: dict[str, _Binding] = {}
        self.looked_up: dict[str, tuple[str, tuple[str, ...]]] = {}


_BUILD: contextvars.ContextVar[_Build | None] = contextvars.ContextVar(
    "secretkit_settings_build", default=None
)
# The store SecretkitSettings.from_store() asked for, read by __init__ (whose signature the
# pydantic mypy plugin derives from the fields, so it cannot take the store as an argument).
_STORE: contextvars.ContextVar[SecretStore | None] = contextvars.ContextVar(
    "secretkit_settings_store", default=None
)
_REFRESH_LOCK = threading.Lock()


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


# -- the source --------------------------------------------------------------------------------


class SecretkitSettingsSource(PydanticBaseEnvSettingsSource):
    """A pydantic-settings source that reads each declared field through a secretkit store.

    A field is looked up by name the way pydantic-settings' environment source names it
    (``env_prefix``, ``validation_alias`` / ``AliasChoices``, ``env_prefix_target``), in the
    store's chain (environment, ``.env``, secret files, ... including references held there),
    then in the ``env_file`` of the settings' config. A store cannot list its secrets, so
    ``case_sensitive=False`` tries the declared spelling, then upper case, then lower case.
    A field marked ``Annotated[..., Ref("scheme://...")]`` (or a ``SecretRef``) reads that
    secret only; references are fetched in one ``store.prefetch``, batched per backend.

    Only declared fields are fetched, and not those a higher-priority source already set.
    Fields typed ``LiveSecret`` get a live handle; ``Secret``
    fields get the snapshot with its metadata; any other type is validated by pydantic from
    the secret's text (JSON for models, lists and dicts). Values are handed over wrapped so
    that their ``repr`` - what pydantic puts in ``ValidationError`` text - is a mask.
    """

    def __init__(
        self,
        settings_cls: type[BaseSettings],
        store: SecretStore | None = None,
        *,
        case_sensitive: bool | None = None,
        env_prefix: str | None = None,
        env_file: EnvFiles | Literal[_Unset.FROM_CONFIG] | None = _FROM_CONFIG,
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
        self.env_file: EnvFiles | None = self.config.get("env_file") if env_file is _FROM_CONFIG else env_file
        self.bindings: dict[str, _Binding] = {}
        self.looked_up: dict[str, tuple[str, tuple[str, ...]]] = {}
        self._values: dict[str, tuple[Any, str]] = {}

    def __repr__(self) -> str:
        return f"SecretkitSettingsSource({self.settings_cls.__name__}, store={self.store!r})"

    @property
    def store(self) -> SecretStore:
        """The store read from: the one given, else the one ``SecretkitSettings`` was built
        with, else the default store."""
        if self._store is not None:
            return self._store
        build = _BUILD.get()
        if build is not None and build.store is not None:
            return build.store
        return default_store()

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
        return {name: tuple(k for k, _ in p.keys) for name, p in self._plans(provided=()).items()}

    def _plans(self, provided: Iterable[str]) -> dict[str, _Plan]:
        already = set(provided)
        store = self.store
        env_files = self._env_files(store)
        plans: dict[str, _Plan] = {}
        for name, field in self.settings_cls.model_fields.items():
            infos = self._extract_field_info(field, name)
            accepted = frozenset({name, *(key for key, _, _ in infos)})
            if accepted & already:
                continue  # a higher-priority source set it: fetching it would be wasted
            preferred_key, _, preferred_complex = infos[0]
            marker = _marker(field)
            if marker is not None:
                key = name if preferred_complex else preferred_key
                plans[name] = _Plan(name, field, [(marker, key)], True, accepted)
                continue
            keys: list[tuple[str, str]] = []
            for field_key, env_name, is_complex in infos:
                # The same rule as pydantic-settings: report the preferred key, so this source's
                # value and another source's value for the field merge under one key.
                key = field_key if preferred_complex or is_complex else preferred_key
                for spelling in self._spellings(env_name):
                    if self._allowed_name(store, spelling):
                        keys.append((spelling, key))
            for file in env_files:
                for field_key, env_name, is_complex in infos:
                    key = field_key if preferred_complex or is_complex else preferred_key
                    for spelling in self._spellings(env_name):
                        ref = SecretRef("dotenv", str(file), field=spelling)
                        if self._allowed_ref(store, ref):
                            keys.append((str(ref), key))
            plans[name] = _Plan(name, field, list(dict.fromkeys(keys)), False, accepted)
        return plans

    def _env_files(self, store: SecretStore) -> list[Path]:
        files = self.env_file
        if files is None:
            return []
        listed = [files] if isinstance(files, (str, os.PathLike)) else list(files)
        from .backends.dotenv import DotenvBackend

        in_chain = {b.path for b in store.backends if isinstance(b, DotenvBackend)}
        found: list[Path] = []
        # pydantic-settings lets a later file override an earlier one: look in the last first.
        for file in reversed(listed):
            path = Path(file).expanduser().absolute()
            if path.is_file() and path not in in_chain and path not in found:
                found.append(path)
        return found

    # A name lookup is a guess among spellings: one that the store's allow-list refuses is
    # skipped rather than reported, so an allow-list does not break fields left to defaults.
    @staticmethod
    def _allowed_name(store: SecretStore, name: str) -> bool:
        return store.allow is None or any(fnmatch.fnmatchcase(name, p) for p in store.allow)

    @staticmethod
    def _allowed_ref(store: SecretStore, ref: SecretRef) -> bool:
        if store.allow is None:
            return True
        candidates = (ref.path, f"{ref.scheme}://{ref.path}", str(ref))
        return any(fnmatch.fnmatchcase(c, p) for c in candidates for p in store.allow)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The value this source found for ``field_name`` (after it has been called), its key, False."""
        value, key = self._values.get(field_name, (None, field_name))
        return value, key, False

    def __call__(self) -> dict[str, Any]:
        store = self.store
        # current_state (pydantic-settings >= 2.4): what the higher-priority sources set.
        plans = self._plans(getattr(self, "current_state", None) or {})
        references = [
            key for p in plans.values() if p.explicit for key, _ in p.keys if looks_like_reference(key)
        ]
        failures: Mapping[str, SecretkitError] = store.prefetch(references) if references else {}
        data: dict[str, Any] = {}
        errors: dict[str, SecretkitError] = {}
        for name, plan in plans.items():
            try:
                found = self._first(store, plan, failures)
            except SecretkitError as exc:
                errors[name] = exc
                continue
            self.looked_up[name] = (name, tuple(k for k, _ in plan.keys))
            if found is None:
                continue
            store_key, input_key, secret = found
            kind = _kind_of(plan.field.annotation)
            value = self._input(name, plan.field, store, store_key, kind, secret)
            if value is _SKIP:
                continue
            data[input_key] = value
            self._values[name] = (value, input_key)
            self.bindings[name] = _Binding(name, self, store, store_key, kind, secret)
        build = _BUILD.get()
        if build is not None:
            build.bindings.update(self.bindings)
            for name, (_, keys) in self.looked_up.items():
                for accepted in plans[name].accepted:
                    build.looked_up.setdefault(accepted, (name, keys))
        if errors:
            raise SecretkitSettingsError(errors) from next(iter(errors.values()))
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
                continue
        return None

    def _input(
        self, name: str, field: FieldInfo, store: SecretStore, key: str, kind: Kind, secret: Secret[Any]
    ) -> Any:
        """What this source hands pydantic for one field, built from one secret."""
        if kind == "live":
            return store.live(key)
        if kind == "secret":
            return secret
        value = secret.reveal()
        if self.env_ignore_empty and value in ("", b""):
            return _SKIP
        if self.env_parse_none_str is not None and value == self.env_parse_none_str:
            return None
        if isinstance(value, (str, bytes)):
            complexity = self._complexity(field)
            if complexity != "simple":
                try:
                    decoded = self.decode_complex_value(name, field, value)
                except ValueError:
                    # Not JSON: pydantic reports the field, with the input masked (and no .doc
                    # of a JSONDecodeError, which would hold the whole value, in any chain).
                    decoded = value
                if complexity == "complex" or isinstance(decoded, (list, dict)):
                    value = decoded
        return _masked(value)

    def _complexity(self, field: FieldInfo) -> Literal["simple", "complex", "union"]:
        if self.field_is_complex(field):
            return "complex"
        members = _union_members(field.annotation)
        if len(members) > 1 or (members and members[0] is not field.annotation):
            for member in members:
                if self.field_is_complex(FieldInfo.from_annotation(member)):
                    return "union"
        return "simple"


def _union_members(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _union_members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        out: list[Any] = []
        for arg in get_args(annotation):
            if arg is not type(None):
                out.extend(_union_members(arg))
        return out
    return [annotation]


def _kind_of(annotation: Any) -> Kind:
    kinds: set[Kind] = set()
    for member in _union_members(annotation):
        origin = get_origin(member) or member
        if isinstance(origin, type) and issubclass(origin, LiveSecret):
            kinds.add("live")
        elif isinstance(origin, type) and issubclass(origin, Secret):
            kinds.add("secret")
    if "live" in kinds:
        return "live"
    if "secret" in kinds:
        return "secret"
    return "value"


def _marker(field: FieldInfo) -> str | None:
    for item in field.metadata:
        if isinstance(item, Ref):
            return item.key
        if isinstance(item, SecretRef):
            return str(item)
    return None


def _changed(old: Secret[Any], new: Secret[Any]) -> bool:
    if old is new:
        return False
    if old.version is not None and new.version is not None and old.version != new.version:
        return True
    return old != new


# -- errors ------------------------------------------------------------------------------------


def redact_validation_error(exc: ValidationError, *, notes: Sequence[str] = ()) -> ValidationError:
    """A copy of ``exc`` that shows no input: every ``input`` becomes a mask.

    Locations, error types and messages are kept; messages and context strings have any
    value secretkit has handed out masked. ``SecretkitSettings`` raises this instead of the
    original; call it yourself around a plain ``BaseSettings``. Raise the result outside
    the ``except`` block, so the original is not chained as its context.
    """
    details: list[InitErrorDetails] = []
    for error in exc.errors(include_url=False):
        ctx = {k: _safe_ctx(v) for k, v in (error.get("ctx") or {}).items()}
        detail = InitErrorDetails(type=error["type"], loc=error["loc"], input=MASK, ctx=ctx)
        try:
            ValidationError.from_exception_data(exc.title, [detail])
        except (KeyError, TypeError, ValueError):
            # A custom error type (PydanticCustomError in a validator): keep its rendered message.
            detail = InitErrorDetails(
                type=PydanticCustomError(error["type"], redact(error["msg"])),  # no ctx: not formatted
                loc=error["loc"],
                input=MASK,
            )
        details.append(detail)
    clean = ValidationError.from_exception_data(exc.title, details)
    add_note = getattr(clean, "add_note", None)  # Python 3.11+
    if add_note is not None:
        for note in notes:
            add_note(note)
    return clean


def _safe_ctx(value: Any) -> Any:
    if isinstance(value, BaseException):
        # A validator's exception: its text may quote the value it rejected.
        return (AssertionError if isinstance(value, AssertionError) else ValueError)(redact(str(value)))
    if isinstance(value, str):
        return redact(value)
    return value


def _missing_notes(exc: ValidationError, looked_up: Mapping[str, tuple[str, tuple[str, ...]]]) -> list[str]:
    notes: list[str] = []
    for error in exc.errors(include_url=False):
        if error["type"] != "missing" or not error["loc"]:
            continue
        head = error["loc"][0]
        if isinstance(head, str) and head in looked_up:
            name, keys = looked_up[head]
            if keys:
                shown = ", ".join(repr(k) for k in keys[:8]) + (", ..." if len(keys) > 8 else "")
                notes.append(f"secretkit looked for field {name!r} as {shown}: not found")
            else:
                notes.append(
                    f"secretkit did not look for field {name!r}: the store's allow-list refuses its names"
                )
    return notes


# -- the ready base class ----------------------------------------------------------------------


class SecretkitSettings(BaseSettings):
    """``BaseSettings`` whose fields come from a secretkit store, and that can ``refresh()``.

    Sources, highest priority first: keyword arguments, secretkit (the store's chain - the
    environment, ``./.env``, secret files, references - then ``env_file`` from the config),
    pydantic-settings' ``secrets_dir`` files. Override ``settings_customise_sources`` to
    change that; ``cls.secretkit_source(...)`` builds the secretkit source.

    The store is the one given to ``from_store``, else the class's ``secretkit_store``,
    else ``secretkit.default_store()``. A ``ValidationError`` from building or refreshing
    shows no input value.
    """

    secretkit_store: ClassVar[SecretStore | None] = None

    _secretkit_bindings: dict[str, _Binding] = PrivateAttr(default_factory=dict)

    def __init__(__pydantic_self__, **values: Any) -> None:
        store = _STORE.get()
        build = _Build(store if store is not None else type(__pydantic_self__).secretkit_store)
        token = _BUILD.set(build)
        error: ValidationError | None = None
        try:
            super().__init__(**values)
        except ValidationError as exc:
            error = redact_validation_error(exc, notes=_missing_notes(exc, build.looked_up))
        finally:
            _BUILD.reset(token)
        if error is not None:
            raise error  # outside the except block: the original, which shows inputs, is not chained
        __pydantic_self__._secretkit_bindings = build.bindings

    @classmethod
    def from_store(cls, store: SecretStore, /, **values: Any) -> Self:
        """Build the settings from ``store`` (keyword arguments still take priority)."""
        token = _STORE.set(store)
        try:
            return cls(**values)
        finally:
            _STORE.reset(token)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if _NoDecode is None:
            return
        # pydantic-settings' env and dotenv sources JSON-decode a `LiveSecret[str]` field and fail
        # on plain text; secretkit hands those fields handles, so decoding is never wanted.
        for field in cls.model_fields.values():
            if _kind_of(field.annotation) != "value" and _NoDecode not in field.metadata:
                field.metadata.append(_NoDecode)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            cls.secretkit_source(settings_cls, env_settings, dotenv_settings),
            file_secret_settings,
        )

    @classmethod
    def secretkit_source(
        cls,
        settings_cls: type[BaseSettings],
        env_settings: PydanticBaseSettingsSource | None = None,
        dotenv_settings: PydanticBaseSettingsSource | None = None,
        store: SecretStore | None = None,
    ) -> SecretkitSettingsSource:
        """The secretkit source, taking ``_case_sensitive=``, ``_env_prefix=`` and ``_env_file=``
        overrides from pydantic-settings' own sources when they are given."""
        case_sensitive = getattr(env_settings, "case_sensitive", None)
        env_prefix = getattr(env_settings, "env_prefix", None)
        env_file: EnvFiles | Literal[_Unset.FROM_CONFIG] | None = getattr(
            dotenv_settings, "env_file", _FROM_CONFIG
        )
        return SecretkitSettingsSource(
            settings_cls,
            store,
            case_sensitive=case_sensitive,
            env_prefix=env_prefix,
            env_file=env_file,
        )

    def __getstate__(self) -> dict[Any, Any]:
        # A store (locks, threads, clients) cannot cross a pickle: an unpickled copy keeps
        # its values but forgets where they came from, so its refresh() changes nothing.
        state = super().__getstate__()
        private = state.get("__pydantic_private__")
        if private and "_secretkit_bindings" in private:
            state["__pydantic_private__"] = {**private, "_secretkit_bindings": {}}
        return state

    def secretkit_bindings(self) -> dict[str, str]:
        """For each field secretkit set, the name or reference it was read from."""
        return {name: b.key for name, b in self._secretkit_bindings.items()}

    def refresh(self, *, force: bool = False) -> frozenset[str]:
        """Re-read the secrets behind the snapshot fields; replace the ones that changed.

        Reads go through the store's cache (a fresh value costs nothing); ``force=True``
        fetches each from its backend first. Changed fields are validated together before
        any is replaced: if one fails, none changes and a redacted ``ValidationError`` is
        raised. ``LiveSecret`` fields need no refresh. Returns the names of the fields
        that changed.
        """
        if self.model_config.get("frozen"):
            raise TypeError(
                f"{type(self).__name__} is frozen, so refresh() cannot replace its fields; "
                "build a new instance, or type the fields LiveSecret so they follow rotation"
            )
        with _REFRESH_LOCK:
            read: dict[tuple[int, str], Secret[Any]] = {}
            fresh: dict[str, tuple[_Binding, Secret[Any]]] = {}
            changed: list[str] = []
            for name, binding in self._secretkit_bindings.items():
                if binding.kind == "live":
                    continue
                slot = (id(binding.store), binding.key)
                new = read.get(slot)
                if new is None:
                    store = binding.store
                    new = read[slot] = store.refresh(binding.key) if force else store.get(binding.key)
                fresh[name] = (binding, new)
                # A Secret field shows its version, so a new version is a change; any other
                # field changes only with its value (a new version of a JSON secret may leave
                # this field's key as it was).
                if binding.kind == "secret" and _changed(binding.secret, new):
                    changed.append(name)
                elif binding.kind == "value" and binding.secret != new:
                    changed.append(name)
            candidate = self.model_copy() if changed else self
            validator = type(self).__pydantic_validator__
            error: ValidationError | None = None
            try:
                for name in changed:
                    binding, new = fresh[name]
                    field = type(self).model_fields[name]
                    value = binding.source._input(name, field, binding.store, binding.key, binding.kind, new)
                    validator.validate_assignment(candidate, name, None if value is _SKIP else value)
            except ValidationError as exc:
                error = redact_validation_error(exc)
            if error is not None:
                raise error  # outside the except block, so the original is not chained
            for name in changed:
                self.__dict__[name] = candidate.__dict__[name]
            bindings = dict(self._secretkit_bindings)
            for name, (binding, new) in fresh.items():
                bindings[name] = _Binding(name, binding.source, binding.store, binding.key, binding.kind, new)
            self._secretkit_bindings = bindings
            return frozenset(changed)


def declared_secrets(
    settings_cls: type[BaseSettings], store: SecretStore | None = None
) -> dict[str, tuple[str, ...]]:
    """For each field of ``settings_cls``, the names or references secretkit would read, in order.

    For preflight checks (``secretkit check --settings``): nothing is fetched.
    """
    return SecretkitSettingsSource(settings_cls, store).plan()
