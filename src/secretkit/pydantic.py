"""pydantic-settings integration: ``BaseSettings`` whose values may be secrets.

The one public module that imports pydantic and pydantic-settings (the ``secretkit[pydantic]``
extra), so that ``import secretkit`` stays light. ``SecretkitSettings`` runs
pydantic-settings' own sources, subclassed so that references resolve through a store::

    from typing import Annotated
    from pydantic import SecretStr
    from secretkit import LiveSecret
    from secretkit.pydantic import Ref, SecretkitSettings

    class Settings(SecretkitSettings):
        database_url: SecretStr            # DATABASE_URL, exactly as BaseSettings reads it
        stripe_key: Annotated[SecretStr, Ref("aws-sm://prod/stripe#api_key")]  # by reference
        api_token: LiveSecret[str]         # follows rotation by itself
        port: int = 8000

    settings = Settings()
    settings.refresh()   # re-reads the secret fields; replaces only those that changed
"""

from __future__ import annotations

import functools
import threading
from typing import TYPE_CHECKING, Any, ClassVar

from ._errors import MissingDependency

try:
    from pydantic import PrivateAttr, SecretBytes, SecretStr, ValidationError
    from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsError
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    _missing = MissingDependency("pydantic", "pydantic-settings", "pydantic")
    _missing.args = ('secretkit.pydantic needs pydantic-settings: pip install "secretkit[pydantic]"',)
    raise _missing from exc

from ._redact import remember
from ._refs import SecretRef
from ._secret import Secret
from ._settings.build import BUILD, STORE, Binding, Build, Source
from ._settings.errors import (
    SecretkitSettingsError,
    missing_notes,
    redact_validation_error,
    scrub_json_documents,
)
from ._settings.isolation import current as current_isolation
from ._settings.local_sources import (
    SecretkitDotEnvSettingsSource,
    SecretkitEnvSettingsSource,
    SecretkitSecretsSettingsSource,
    secretkit_version_of,
)
from ._settings.store_source import NONE, SecretkitSettingsSource
from ._settings.values import Ref, Resolved, changed, check_reference
from ._store import SecretStore

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Self

__all__ = [
    "Ref",
    "SecretkitDotEnvSettingsSource",
    "SecretkitEnvSettingsSource",
    "SecretkitSecretsSettingsSource",
    "SecretkitSettings",
    "SecretkitSettingsError",
    "SecretkitSettingsSource",
    "declared_secrets",
    "redact_validation_error",
]

_REFRESH_LOCK = threading.Lock()


def _with_secretkit_sources(customise: Callable[..., tuple[PydanticBaseSettingsSource, ...]]) -> Any:
    """Wrap a ``settings_customise_sources``: it receives secretkit's versions of pydantic-settings'
    sources, and the build learns the final order (for its one prefetch)."""

    @functools.wraps(customise)
    def wrapped(cls: type[BaseSettings], *args: Any, **kwargs: Any) -> tuple[PydanticBaseSettingsSource, ...]:
        args = tuple(secretkit_version_of(a) for a in args)
        kwargs = {k: secretkit_version_of(v) for k, v in kwargs.items()}
        sources = customise(cls, *args, **kwargs)
        build = BUILD.get()
        if build is not None:
            build.sources = [s for s in sources if isinstance(s, Source)]
        return sources

    wrapped.__secretkit_wrapped__ = True  # type: ignore[attr-defined]
    return classmethod(wrapped)


class SecretkitSettings(BaseSettings):
    """``BaseSettings`` plus secrets, and ``refresh()``.

    The sources are pydantic-settings' own - keyword arguments, then the environment,
    ``env_file`` and ``secrets_dir`` subclassed so that a value that is a reference
    (``vault://...``) gives the secret it names - and last secretkit's source, which reads
    ``Ref(...)`` fields and asks the store's chain for fields nothing else set. A
    ``settings_customise_sources`` override receives the secretkit versions of
    pydantic-settings' sources.

    The store is the one given to ``from_store``, else the ``secretkit_memory`` fixture's
    during a test, else the class's ``secretkit_store``, else ``secretkit.default_store()``.
    A ``ValidationError`` from building or refreshing masks the input of every secret (see
    ``redact_validation_error``) and shows configuration as pydantic does. A variable,
    ``.env`` entry or ``secrets_dir`` file holding a reference that cannot be read fails the
    build with ``SecretkitSettingsError``, naming what held it, the reference and the cause.
    """

    secretkit_store: ClassVar[SecretStore | None] = None

    _secretkit_bindings: dict[str, Binding] = PrivateAttr(default_factory=dict)
    # The keyword arguments of the build, for refresh() to build a nested field again.
    _secretkit_init: dict[str, Any] = PrivateAttr(default_factory=dict)

    def __init__(__pydantic_self__, **values: Any) -> None:
        cls = type(__pydantic_self__)
        store = STORE.get()
        if store is None:
            # A test's isolation (secretkit_memory) wins over the class's own store: under it,
            # nothing real is read unless the test passes a store to from_store().
            isolation = current_isolation()
            store = isolation.store if isolation is not None else cls.secretkit_store
        build = Build(store, frozenset(k for k in ("_env_file", "_secrets_dir") if k in values))
        token = BUILD.set(build)
        error: ValidationError | None = None
        try:
            super().__init__(**values)
        except ValidationError as exc:
            error = redact_validation_error(
                exc,
                notes=missing_notes(exc, build.looked_up),
                settings_cls=cls,
                secret_keys=build.secret_keys,
            )
        except SettingsError as exc:
            scrub_json_documents(exc)
            raise
        finally:
            BUILD.reset(token)
        if error is not None:
            raise error  # outside the except block: the original, which shows inputs, is not chained
        __pydantic_self__._secretkit_bindings = build.bindings
        if any(binding.leaves for binding in build.bindings.values()):
            __pydantic_self__._secretkit_init = values
        __pydantic_self__._secretkit_remember()

    def _secretkit_remember(self) -> None:
        """Register the values of secret-typed fields for log redaction, for as long as the settings live.

        A ``SecretStr`` read from a plain variable is a secret by its type, though nothing
        secretkit fetched (``Secret`` fields are registered by the store already).
        """
        for name in type(self).model_fields:
            value = self.__dict__.get(name)
            if isinstance(value, SecretStr | SecretBytes):
                remember(value.get_secret_value(), owner=self)

    @classmethod
    def from_store(cls, store: SecretStore, /, **values: Any) -> Self:
        """Build the settings from ``store`` (keyword arguments still take priority)."""
        token = STORE.set(store)
        try:
            return cls(**values)
        finally:
            STORE.reset(token)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name, info in cls.model_fields.items():
            for item in info.metadata:
                if isinstance(item, SecretRef):
                    # Ref() checks itself when built; a SecretRef marker is checked with its class.
                    check_reference(str(item), f"field {name!r} of {cls.__name__}")
        own = cls.__dict__.get("settings_customise_sources")
        if isinstance(own, classmethod) and not getattr(own.__func__, "__secretkit_wrapped__", False):
            cls.settings_customise_sources = _with_secretkit_sources(own.__func__)  # type: ignore[method-assign]

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
            env_settings,
            dotenv_settings,
            file_secret_settings,
            cls.secretkit_source(settings_cls, env_settings),
        )

    @classmethod
    def secretkit_source(
        cls,
        settings_cls: type[BaseSettings],
        env_settings: PydanticBaseSettingsSource | None = None,
        dotenv_settings: PydanticBaseSettingsSource | None = None,
        store: SecretStore | None = None,
    ) -> SecretkitSettingsSource:
        """secretkit's source (``Ref`` fields, the store's chain), taking ``_case_sensitive=`` and
        ``_env_prefix=`` from pydantic-settings' environment source, and ``_env_file=`` from its
        ``.env`` source when one is given (leave it out when that source runs too)."""
        source = SecretkitSettingsSource(
            settings_cls,
            store,
            case_sensitive=getattr(env_settings, "case_sensitive", None),
            env_prefix=getattr(env_settings, "env_prefix", None),
            env_file=getattr(dotenv_settings, "env_file", None),
            env_ignore_empty=getattr(env_settings, "env_ignore_empty", None),
            env_parse_none_str=getattr(env_settings, "env_parse_none_str", None),
        )
        init_state = getattr(env_settings, "_init_state", None)
        if init_state is not None:
            # The state pydantic-settings' sources share for one build (2.14+: a warning about a
            # field is given once, not once per source).
            source._init_state = init_state
        return source

    def __getstate__(self) -> dict[Any, Any]:
        # A store (locks, threads, clients) cannot cross a pickle: an unpickled copy keeps
        # its values but forgets where they came from, so its refresh() changes nothing.
        state = super().__getstate__()
        private = state.get("__pydantic_private__")
        if private and "_secretkit_bindings" in private:
            state["__pydantic_private__"] = {**private, "_secretkit_bindings": {}, "_secretkit_init": {}}
        return state

    def secretkit_bindings(self) -> dict[str, str]:
        """For each field read through secretkit, the name or reference it was read from."""
        return {name: b.key for name, b in self._secretkit_bindings.items()}

    def refresh(self, *, force: bool = False) -> frozenset[str]:
        """Re-read the secrets behind the snapshot fields; replace the ones that changed.

        Reads go through the store's cache (a fresh value costs nothing); ``force=True``
        fetches each from its backend first, the secrets of ``LiveSecret`` fields included, so
        that their next ``reveal()`` is current too (a live handle is never replaced: it reads
        the store's cache). A field built from nested inputs holding references
        (``APP_DB__PASSWORD=vault://...``) is built again through the sources when one of its
        secrets changed. Changed fields are validated together before any is replaced: if one
        fails, none changes and a redacted ``ValidationError`` is raised. Returns the names of
        the fields it replaced.
        """
        if self.model_config.get("frozen"):
            raise TypeError(
                f"{type(self).__name__} is frozen, so refresh() cannot replace its fields; "
                "build a new instance, or type the fields LiveSecret so they follow rotation"
            )
        with _REFRESH_LOCK:
            read: dict[tuple[int, str], Secret[Any]] = {}

            def now(store: SecretStore, key: str) -> Secret[Any]:
                slot = (id(store), key)
                new = read.get(slot)
                if new is None:
                    new = read[slot] = store.refresh(key) if force else store.get(key)
                return new

            fresh: dict[str, tuple[Binding, Secret[Any]]] = {}
            changes: list[str] = []
            rebuild: list[Binding] = []
            for name, binding in self._secretkit_bindings.items():
                if binding.kind == "live":
                    # A live handle reads the store's cache, so it is not replaced; a forced
                    # refresh fetches its secret too, so the handle's next reveal() is current.
                    if force:
                        fresh[name] = (binding, now(binding.store, binding.key))
                    continue
                if binding.leaves:
                    # Nested inputs, which pydantic-settings merges across sources: when one of
                    # their secrets changed, the field is built again through the sources.
                    if any(old != now(binding.store, key) for key, old in binding.leaves):
                        rebuild.append(binding)
                    continue
                new = now(binding.store, binding.key)
                fresh[name] = (binding, new)
                # A Secret field shows its version, so a new version is a change; any other
                # field changes only with its value (a new version of a JSON secret may leave
                # this field's key as it was).
                if (binding.kind == "secret" and changed(binding.secret, new)) or (
                    binding.kind == "value" and binding.secret != new
                ):
                    changes.append(name)
            # A redacted ValidationError from building again leaves every field as it was.
            again = type(self).from_store(rebuild[0].store, **self._secretkit_init) if rebuild else None
            rebuilt: dict[str, Any] = {}
            if again is not None:
                for b in rebuild:
                    if again.__dict__[b.field_name] != self.__dict__[b.field_name]:
                        rebuilt[b.field_name] = again.__dict__[b.field_name]
            candidate = self.model_copy() if changes or rebuilt else self
            validator = type(self).__pydantic_validator__
            error: ValidationError | None = None
            try:
                for name in changes:
                    binding, new = fresh[name]
                    field = type(self).model_fields[name]
                    value = binding.source.prepare_field_value(
                        name, field, Resolved(new, binding.key), binding.value_is_complex
                    )
                    validator.validate_assignment(candidate, name, None if value is NONE else value)
                for name, value in rebuilt.items():
                    validator.validate_assignment(candidate, name, value)
            except ValidationError as exc:
                error = redact_validation_error(exc, settings_cls=type(self))
            if error is not None:
                raise error  # outside the except block, so the original is not chained
            changes += rebuilt
            for name in changes:
                self.__dict__[name] = candidate.__dict__[name]
            if changes:
                self._secretkit_remember()
            self._secretkit_bindings = {
                name: (
                    fresh[name][0].renewed(fresh[name][1])
                    if name in fresh
                    else again._secretkit_bindings.get(name, binding)
                    if again is not None and binding.leaves
                    else binding
                )
                for name, binding in self._secretkit_bindings.items()
            }
            return frozenset(changes)


SecretkitSettings.settings_customise_sources = _with_secretkit_sources(  # type: ignore[method-assign]
    SecretkitSettings.settings_customise_sources.__func__  # type: ignore[attr-defined]
)


def declared_secrets(
    settings_cls: type[BaseSettings], store: SecretStore | None = None
) -> dict[str, tuple[str, ...]]:
    """For each field of ``settings_cls``, the names or references secretkit's store would be asked for.

    For preflight checks (``secretkit check --settings``): nothing is fetched.
    """
    return SecretkitSettingsSource(settings_cls, store).plan()
