"""What a ``vault://`` reference's options may be, per engine, and the value they pick out of Vault's answer.

Shared by the KV reads of :mod:`secretkit.backends.vault` and the generic engine's of
:mod:`~secretkit.backends._vault_generic`: both check a reference against these tables before
any request (``secretkit._options`` words the refusal), and both turn Vault's data map into
the secret's value with ``?key=`` and ``&encoding=`` the same way.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from .._errors import ConfigurationError, InvalidReference, SecretNotFound, shown
from .._options import Shape, where
from .._refs import SecretRef

__all__ = ["GENERIC_OPTIONS", "KV_OPTIONS", "OPTIONS", "shapes", "value", "version_number"]

KV_OPTIONS = frozenset({"engine", "version", "key", "encoding"})
# Options of an engine=generic reference that configure secretkit; the others it accepts
# (version=, and the parameters of opted-in writes) are sent to Vault as request parameters.
GENERIC_OPTIONS = frozenset({"engine", "method", "key", "encoding", "lease"})
OPTIONS = KV_OPTIONS | GENERIC_OPTIONS
_ENGINE = Shape(r"kv|generic", "kv (the default) or generic")
_ENCODING = Shape(r"base64", "base64")
_KV_SHAPES = {
    "engine": _ENGINE,
    "encoding": _ENCODING,
    "version": Shape(r"[0-9]{1,19}", "a KV v2 version number, such as 3"),
}
# An engine=generic reference's version= is a request parameter like any other: Vault judges it.
_GENERIC_SHAPES = {
    "engine": _ENGINE,
    "encoding": _ENCODING,
    "method": Shape(r"get|post", "GET (read) or POST (write)", ignore_case=True),
    "lease": Shape(r"new", "one value, new"),
}


def shapes(ref: SecretRef) -> dict[str, Shape]:
    """The shape of each option's value for ``ref``'s engine."""
    return _GENERIC_SHAPES if ref.options.get("engine") == "generic" else _KV_SHAPES


def version_number(ref: SecretRef, version: str | None) -> int | None:
    if version is None:
        return None
    if not version.isdigit():
        raise InvalidReference(f"{where(ref)}: ?version= takes a KV v2 version number")
    return int(version)


def value(data: Any, ref: SecretRef) -> str | bytes:
    """The whole data map as JSON, or with ``?key=`` one key's raw value."""
    if not isinstance(data, Mapping):
        raise SecretNotFound(ref.path, detail="Vault returned no key/value data there")
    # encoding= and key= were checked by the backend's fetch(), before any request.
    key = ref.options.get("key")
    encoding = ref.options.get("encoding")
    if key is None:
        return json.dumps(data, ensure_ascii=False)
    if key not in data:
        # Not named: like every option value, ?key= is masked where the reference is shown.
        raise SecretNotFound(ref.path, detail="it has no key by the name ?key= gives")
    item = data[key]
    text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False)
    if encoding is None:
        return text
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        # The decoder's message never quotes its input; ours names only the key.
        # The key is named: it is one the secret has, so a key name, not a value pasted in a reference.
        raise ConfigurationError(f"{where(ref)}: the key {shown(key)} does not hold valid base64") from None
