"""Which inputs of a settings ``ValidationError`` are secrets: the rule log redaction follows.

An input is a secret, and shown as a mask, when it is the value of a field typed
``SecretStr``/``SecretBytes``/``Secret``/``LiveSecret``, sits under a name that marks a secret
(``SECRET_NAME_MARKERS``: ``api_key``, ``DB_PASSWORD``), came through a reference or from a
store (secretkit hands those over as ``MaskedStr``) or from a ``secrets_dir`` file. Any other
input is configuration (``PORT=abc``) and is shown as pydantic shows it, with the password of
a URL in it masked and any value secretkit handed out masked.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Collection
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo

from .._redact import redact, url_passwords
from .._secret import MASK, Secret
from .._secret_names import marks_secret as _marks_secret
from .values import MaskedBytes, MaskedStr

_SECRET_TYPES = (SecretStr, SecretBytes, Secret, MaskedStr, MaskedBytes)
_DEPTH = 32


def safe_input(
    model: type[BaseModel], loc: tuple[int | str, ...], given: Any, kind: str, secret_keys: Collection[str]
) -> Any:
    """What an error at ``loc`` may show of its input ``given``: it, a copy with secrets masked, or a mask."""
    # A "missing" error's input is the mapping the key is missing from, not a value at loc.
    path = loc[:-1] if kind == "missing" else loc
    if path and isinstance(path[0], str) and path[0] in secret_keys:
        return MASK
    secret, annotation = _walk(model, path)
    if secret or _secret_typed(annotation) or (path and _holds_masked(given, 0)):
        return MASK
    return _scrub(given, annotation, secret_keys if not path else (), 0)


def _walk(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[bool, Any]:
    """Whether a name or a field type on the way to ``loc`` marks a secret; the type at ``loc`` if known."""
    annotation: Any = model
    for part in loc:
        if isinstance(part, str) and _marks_secret(part):
            return True, None
        fields = _fields(annotation)
        found = _field(fields, part) if fields is not None else None
        if found is None:
            # A dict key, a list index, a union member's tag: the type is lost, names still count.
            annotation = _item_type(annotation, part)
            continue
        name, info = found
        if _marks_secret(name) or _secret_typed(info.annotation):
            return True, None
        annotation = info.annotation
    return False, annotation


def _scrub(value: Any, annotation: Any, secret_keys: Collection[str], depth: int) -> Any:
    """``value`` with its secret parts masked; the same object when it has none."""
    if isinstance(value, _SECRET_TYPES) or depth > _DEPTH:
        return MASK
    if isinstance(value, str):
        return _shown_text(value)
    if isinstance(value, dict):
        fields = _fields(annotation)
        out: dict[Any, Any] = {}
        for key, item in value.items():
            found = _field(fields, key) if fields is not None else None
            if isinstance(key, str) and (key in secret_keys or _marks_secret(key)):
                out[key] = MASK
            elif found is not None and (_marks_secret(found[0]) or _secret_typed(found[1].annotation)):
                out[key] = MASK
            elif depth and _holds_masked(item, 0):
                # Inside a field, a container holding a secret's text is that secret (a JSON secret).
                return MASK
            else:
                sub = found[1].annotation if found is not None else _item_type(annotation, key)
                out[key] = _scrub(item, sub, (), depth + 1)
        if all(out[key] is value[key] for key in value):
            return value
        return out
    if isinstance(value, list | tuple):
        if depth and _holds_masked(value, 0):
            return MASK
        items = [_scrub(item, _item_type(annotation, 0), (), depth + 1) for item in value]
        if all(new is old for new, old in zip(items, value, strict=True)):
            return value
        return tuple(items) if isinstance(value, tuple) else items
    return value


def _shown_text(text: str) -> str:
    clean = redact(text)
    if "://" in clean and "@" in clean:
        # A URL's password is a secret whatever the variable is called.
        for password in sorted(set(url_passwords(clean)), key=len, reverse=True):
            clean = clean.replace(f":{password}@", f":{MASK}@")
    return text if clean == text else clean


def _holds_masked(value: Any, depth: int) -> bool:
    if isinstance(value, _SECRET_TYPES):
        return True
    if depth >= _DEPTH:
        return False
    if isinstance(value, dict):
        return any(_holds_masked(item, depth + 1) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_masked(item, depth + 1) for item in value)
    return False


def _secret_typed(annotation: Any, depth: int = 0) -> bool:
    """Whether a field of this type holds a secret: ``SecretStr``, ``Secret``, ... or a container of them."""
    if annotation is None or depth > 8:
        return False
    origin = get_origin(annotation)
    if origin is Annotated:
        return _secret_typed(get_args(annotation)[0], depth + 1)
    base = origin if isinstance(origin, type) else annotation
    if isinstance(base, type) and issubclass(base, SecretStr | SecretBytes | Secret):
        return True
    if isinstance(base, type) and issubclass(base, BaseModel):
        return False  # a model holds secrets field by field: _walk and _scrub look inside
    return any(_secret_typed(arg, depth + 1) for arg in get_args(annotation) if arg is not Ellipsis)


def _unwrapped(annotation: Any) -> Any:
    """``X`` for ``Annotated[X, ...]`` and ``X | None``; the annotation otherwise."""
    for _ in range(8):
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin is Union or origin is types.UnionType:
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation
    return annotation


def _fields(annotation: Any) -> dict[str, FieldInfo] | None:
    """The fields of a model or pydantic dataclass type, else None."""
    target = _unwrapped(annotation)
    if isinstance(target, type) and issubclass(target, BaseModel):
        return target.model_fields
    if isinstance(target, type) and dataclasses.is_dataclass(target):
        fields = getattr(target, "__pydantic_fields__", None)
        return fields if isinstance(fields, dict) else None
    return None


def _field(fields: dict[str, FieldInfo], key: object) -> tuple[str, FieldInfo] | None:
    """The field an input key names: by name, alias or validation alias."""
    if not isinstance(key, str):
        return None
    info = fields.get(key)
    if info is not None:
        return key, info
    for name, info in fields.items():
        aliases = {info.alias, info.validation_alias if isinstance(info.validation_alias, str) else None}
        choices = getattr(info.validation_alias, "choices", None)
        if choices:
            aliases.update(c for c in choices if isinstance(c, str))
        if key in aliases or key.lower() == name.lower():
            return name, info
    return None


def _item_type(annotation: Any, key: object) -> Any:
    """The type of one item of a ``dict``/``list``/``tuple`` type, or None."""
    target = _unwrapped(annotation)
    origin = get_origin(target)
    args = get_args(target)
    if origin is dict and len(args) == 2:
        return args[1]
    if origin in (list, set, frozenset) and args:
        return args[0]
    if origin is tuple and args:
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
        if isinstance(key, int) and 0 <= key < len(args):
            return args[key]
    return None
