"""What a settings field is (a value, a ``Secret``, a live handle) and the text handed to pydantic.

Values secretkit resolves reach pydantic as ``str`` subclasses whose ``repr`` is a mask,
because pydantic's error text and pydantic-settings' debug log print inputs with ``repr``.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, NoReturn, Union, get_args, get_origin

from pydantic.fields import FieldInfo

from .. import _options, _registry
from .._errors import InvalidReference, shown
from .._refs import SecretRef, near_miss, parse_reference, reference_scheme
from .._secret import MASK, LiveSecret, Secret

Kind = Literal["value", "secret", "live"]


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
        check_reference(key, f"Ref({shown(key)})")  # when the class is defined, not at startup
        object.__setattr__(self, "key", key)

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Ref is immutable")

    def __repr__(self) -> str:
        return f"Ref({self.key!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and other.key == self.key

    def __hash__(self) -> int:
        return hash((Ref, self.key))


class MaskedStr(str):
    """A str whose repr is a mask (pydantic makes it a plain ``str`` for ``str`` and ``SecretStr`` fields)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(MASK)


class MaskedBytes(bytes):
    __slots__ = ()

    def __repr__(self) -> str:
        return repr(MASK)


class Resolved(MaskedStr):
    """The text of a secret the store returned, remembering the key it was read by and the snapshot."""

    key: str
    secret: Secret[Any]

    def __new__(cls, secret: Secret[Any], key: str) -> Resolved:
        value = secret.reveal()
        if isinstance(value, bytes):
            value = value.decode("utf-8", "surrogateescape")
        elif not isinstance(value, str):
            import json

            value = json.dumps(value)
        text = super().__new__(cls, value)
        text.key = key
        text.secret = secret
        return text


def masked(value: Any, depth: int = 0) -> Any:
    """``value`` with every string in it masked in ``repr`` (decoded JSON included)."""
    if isinstance(value, MaskedStr | MaskedBytes):
        return value
    if isinstance(value, str):
        return MaskedStr(value)
    if isinstance(value, bytes):
        return MaskedBytes(value)
    if depth < 32 and isinstance(value, dict):
        return {k: masked(v, depth + 1) for k, v in value.items()}
    if depth < 32 and isinstance(value, list):
        return [masked(v, depth + 1) for v in value]
    return value


def resolved_leaves(value: Any, depth: int = 0) -> list[Resolved]:
    """The secrets inside a nested input (``APP_DB__PASSWORD=vault://...`` under ``db``)."""
    if isinstance(value, Resolved):
        return [value]
    if depth < 32 and isinstance(value, dict):
        return [leaf for item in value.values() for leaf in resolved_leaves(item, depth + 1)]
    if depth < 32 and isinstance(value, list):
        return [leaf for item in value for leaf in resolved_leaves(item, depth + 1)]
    return []


def check_reference(key: str, what: str) -> None:
    """Refuse a marker's reference with a scheme no backend serves, or an option its backend lacks.

    ``what`` names the marker in the message. A plain name (no ``:/``) passes: the store's chain
    is asked for it. Checked when the settings class is defined, so a typo fails at import.
    """
    known = _registry.known_schemes()
    missed = near_miss(key, known)
    if missed is not None:
        written, meant = missed
        if not key.startswith(f"{written}://"):
            raise InvalidReference(f"{what}: {written}:/ is not a reference; write {meant}://path")
        raise InvalidReference(
            f"{what}: no backend serves the scheme {written!r}; did you mean {meant!r}? "
            f"(schemes are compared as written: {meant}://...)"
        )
    scheme = reference_scheme(key)
    if "://" not in key or scheme is None:
        if "://" in key:
            # "://" after something that is no scheme: it cannot be a plain name either.
            parse_reference(key)
        return
    if scheme not in known:
        raise InvalidReference(
            f"{what}: no backend serves the scheme {scheme!r}; known schemes: {', '.join(sorted(known))}"
        )
    ref = parse_reference(key)
    if not ref.options or scheme not in _registry.KNOWN_BACKENDS:
        return  # a third-party backend is not imported to check: its own fetch does
    backend = _registry.backend_class(scheme)  # secretkit's module only: SDKs load when one is built
    accepted = getattr(backend, "options", None)
    if not isinstance(accepted, frozenset) or ref.options.get("engine") == "generic":
        # Vault's generic engine sends other options as request parameters, which a
        # VaultBackend instance declares (post_paths=): checked when it fetches.
        return
    shapes = getattr(backend, "option_shapes", None)
    _options.check(scheme, ref, accepted, shapes if isinstance(shapes, dict) else {})


def union_members(annotation: Any) -> list[Any]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return union_members(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        out: list[Any] = []
        for arg in get_args(annotation):
            if arg is not type(None):
                out.extend(union_members(arg))
        return out
    return [annotation]


def kind_of(annotation: Any) -> Kind:
    """``live`` for a ``LiveSecret`` field, ``secret`` for a ``Secret`` field, else ``value``."""
    kinds: set[Kind] = set()
    for member in union_members(annotation):
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


def marker(field: FieldInfo) -> str | None:
    """The key of a field's ``Ref(...)`` / ``SecretRef(...)`` marker, if it has one."""
    for item in field.metadata:
        if isinstance(item, Ref):
            return item.key
        if isinstance(item, SecretRef):
            return str(item)
    return None


def changed(old: Secret[Any], new: Secret[Any]) -> bool:
    """A new version or a new value (a recreated secret whose version number starts again counts)."""
    if old is new:
        return False
    if old.version is not None and new.version is not None and old.version != new.version:
        return True
    return old != new
