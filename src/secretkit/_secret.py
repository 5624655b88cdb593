"""Secret and LiveSecret: values that only ``reveal()`` gives out."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any, Generic, NoReturn, Protocol, TypeVar

from . import _redact
from ._errors import ConfigurationError, SecretNotFound, shown

__all__ = ["MASK", "LiveSecret", "Secret"]

T = TypeVar("T")
MASK = "**********"
# Hashes are keyed per process: an unkeyed hash(Secret) == hash(value) would let anyone who
# sees a hash (a dict's layout, a debug dump) confirm a guess of the value.
_HASH_KEY = os.urandom(16)


class _Redacted:
    """Behaviour shared by snapshots and live handles: every way out but reveal() is masked."""

    __slots__ = ()

    name: str

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"{type(self).__name__}({shown(self.name)}, {MASK!r})"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError(
            f"{type(self).__name__} {shown(self.name)} cannot be pickled: pickle would write the value. "
            "Pass the name (or a reference) and resolve it where it is used."
        )

    def __getstate__(self) -> NoReturn:
        self.__reduce_ex__(2)

    def __copy__(self) -> _Redacted:
        return self  # immutable: a copy is the same object, and no copy path sees the value

    def __deepcopy__(self, memo: dict[int, Any]) -> _Redacted:
        return self

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        # Called only by pydantic, so importing pydantic_core here keeps `import secretkit` light.
        from pydantic_core import core_schema

        def serialize(value: Any, info: Any) -> Any:
            return MASK if info.mode == "json" else value

        return core_schema.is_instance_schema(
            cls,
            serialization=core_schema.plain_serializer_function_ser_schema(
                serialize, info_arg=True, when_used="always"
            ),
        )


class Secret(_Redacted, Generic[T]):
    """A resolved secret: ``reveal()`` is the only way to the value.

    ``str``, ``format``, ``repr``, logging, ``copy`` and pydantic dumps show a mask;
    ``pickle`` and ``json.dumps`` raise ``TypeError``. ``==`` compares values in constant
    time and is never true against a plain ``str``. ``name``, ``source``, ``version`` and
    ``fetched_at`` are safe to show.
    """

    # __weakref__: redaction keeps a value registered exactly as long as a Secret holds it.
    __slots__ = ("__weakref__", "_registered", "_value", "fetched_at", "name", "source", "version")

    name: str
    source: str | None
    version: str | None
    fetched_at: datetime
    _registered: bool

    def __init__(
        self,
        name: str,
        value: T,
        *,
        source: str | None = None,
        version: str | None = None,
        fetched_at: datetime | None = None,
        register: bool = True,
    ) -> None:
        set_ = object.__setattr__
        set_(self, "_value", value)
        set_(self, "name", name)
        set_(self, "source", source)
        set_(self, "version", version)
        set_(self, "fetched_at", fetched_at or datetime.now(UTC))
        set_(self, "_registered", False)
        if register:
            self._register()
        if isinstance(value, str):
            # Even unregistered configuration: a URL's password is a secret, whatever the name.
            _redact.remember_url_passwords(value, owner=self)

    def _register(self) -> None:
        """Make log redaction scrub this value (idempotent).

        Plain configuration read through ``getenv``/``environ`` is built unregistered, so
        ``production`` or ``8080`` stays readable in logs; anything handed out as a secret
        is registered before it is returned.
        """
        if not self._registered:
            object.__setattr__(self, "_registered", True)
            _redact.remember(self._value, owner=self)  # type: ignore[attr-defined]

    def reveal(self) -> T:
        """The value. Keep what this returns out of logs, errors and responses."""
        return self._value  # type: ignore[no-any-return,attr-defined]

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Secret is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return False
        import hmac  # here: hmac and hashlib load OpenSSL, a tenth of `import secretkit`

        return hmac.compare_digest(_comparable(self._value), _comparable(other._value))  # type: ignore[attr-defined]

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        import hashlib

        digest = hashlib.blake2b(_comparable(self._value), key=_HASH_KEY, digest_size=8).digest()  # type: ignore[attr-defined]
        return int.from_bytes(digest, "big", signed=True)

    def field(self, path: str) -> Secret[Any]:
        """The secret at ``path`` (``"a.b"``; digits index lists) of this JSON secret."""
        # Indexed, not unpacked: the parsed document must not stay in a local of this frame,
        # where a traceback captured with locals (Sentry's default) would find every key.
        value = field_value(self._value, path)[1]  # type: ignore[attr-defined]
        if isinstance(value, Missing):
            # Raised here, where no local holds the value (error reporters capture locals).
            if value.part is None:
                raise ConfigurationError(
                    f"secret {shown(self.name)} is not JSON, so it has no field {path!r}; "
                    "drop the #field or store the secret as a JSON object"
                )
            raise SecretNotFound(
                f"{self.name}#{path}",
                backends=[self.source] if self.source else (),
                detail=f"the JSON secret has no key {value.part!r}",
            )
        return Secret(
            f"{self.name}#{path}",
            value,
            source=self.source,
            version=self.version,
            fetched_at=self.fetched_at,
        )


class Missing:
    """What :func:`field_value` gives when the path is absent (``part``) or the value is not JSON."""

    __slots__ = ("part",)

    def __init__(self, part: str | None) -> None:
        self.part = part  # the missing key, or None when the value is not JSON


def field_value(value: Any, path: str) -> tuple[Any, Any]:
    """``(document, value at path)``: the parsed document, and the value or a :class:`Missing`.

    Never raises: an exception from here would carry this frame, with the document in its
    locals, to whoever captures the traceback. A caller that raises on a :class:`Missing`
    drops the document first.
    """
    if isinstance(value, (str, bytes, bytearray)):
        import json  # here: the first JSON field read pays for it, not `import secretkit`

        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # RecursionError: hostile nesting
            return None, Missing(None)
    document = value
    for part in path.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and _is_index(part) and int(part) < len(value):
            value = value[int(part)]
        else:
            return document, Missing(part)
    return document, value


def _is_index(part: str) -> bool:
    # isdecimal, not isdigit: int("²") raises; and short, as int() refuses very long digit strings.
    return part.isascii() and part.isdecimal() and len(part) < 19


class _Reader(Protocol):
    """What a live handle reads through (a ``SecretStore``): named here so this module imports no store."""

    def get(self, name: str, /) -> Secret[Any]: ...


class LiveSecret(_Redacted, Generic[T]):
    """A handle whose ``reveal()`` reads through the store's cache on every call.

    Hold it for hours (in a settings object, a client) and it still gives the rotated
    value; each read is a cache hit unless the value is due for refresh.
    """

    __slots__ = ("_store", "name")

    name: str

    _store: _Reader

    def __init__(self, store: _Reader, name: str) -> None:
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "name", name)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("LiveSecret is immutable")

    def reveal(self) -> T:
        """The current value, through the cache."""
        return self._store.get(self.name).reveal()  # type: ignore[no-any-return]

    def snapshot(self) -> Secret[T]:
        """The current :class:`Secret`, with its version and fetch time."""
        return self._store.get(self.name)

    @property
    def version(self) -> str | None:
        return self.snapshot().version

    @property
    def source(self) -> str | None:
        return self.snapshot().source

    def __eq__(self, other: object) -> bool:
        # Two handles are equal when they read the same name from the same store; comparing
        # current values would make equality (and hashing) change under rotation.
        if not isinstance(other, LiveSecret):
            return False
        return self._store is other._store and self.name == other.name

    def __hash__(self) -> int:
        return hash((id(self._store), self.name))


def _comparable(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    import json

    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
