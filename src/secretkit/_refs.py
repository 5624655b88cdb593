"""Parsing of ``scheme://path#field?query`` references into :class:`SecretRef`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from ._errors import InvalidReference, shown

__all__ = ["SecretRef", "looks_like_reference", "parse_reference", "reference_scheme"]

_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_REF_PREFIX = re.compile(r"^([a-z][a-z0-9+.-]*)://")


class SecretRef:
    """One secret in one backend: ``scheme://path#field?options``.

    Build it from parts, ``SecretRef("vault", "secret/app", "token")``, or from one
    reference string, ``SecretRef("vault://secret/app#token")``.
    ``field`` picks a key out of a JSON secret (dots for nesting); ``options`` are per
    scheme (``version``, ``stage``, ``region``, ...). Instances are immutable and hashable,
    so they can key caches and batches.
    """

    __slots__ = ("_hash", "field", "options", "path", "scheme")

    scheme: str
    path: str
    field: str | None
    options: Mapping[str, str]
    _hash: int

    def __init__(
        self,
        scheme: str,
        path: str | None = None,
        field: str | None = None,
        options: Mapping[str, str] | None = None,
    ) -> None:
        if path is None:
            # One argument: a whole reference, SecretRef("aws-sm://prod/db#password").
            if field is not None or options:
                raise TypeError("SecretRef(reference) takes no field or options: put them in the reference")
            parsed = parse_reference(scheme)
            scheme, path, field, options = parsed.scheme, parsed.path, parsed.field, parsed.options
        opts = dict(options or {})
        set_ = object.__setattr__
        set_(self, "scheme", scheme)
        set_(self, "path", path)
        set_(self, "field", field or None)
        set_(self, "options", MappingProxyType(opts))
        set_(self, "_hash", hash((scheme, path, field or None, frozenset(opts.items()))))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("SecretRef is immutable")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("SecretRef is immutable")

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretRef):
            return NotImplemented
        return (
            self.scheme == other.scheme
            and self.path == other.path
            and self.field == other.field
            and dict(self.options) == dict(other.options)
        )

    def __repr__(self) -> str:
        parts = [repr(self.scheme), repr(self.path)]
        if self.field is not None:
            parts.append(f"field={self.field!r}")
        if self.options:
            parts.append(f"options={dict(self.options)!r}")
        return f"SecretRef({', '.join(parts)})"

    def __str__(self) -> str:
        text = f"{self.scheme}://{self.path}"
        if self.field is not None:
            text += f"#{self.field}"
        if self.options:
            text += "?" + "&".join(
                f"{quote(k, safe='')}={quote(v, safe='/:')}" for k, v in sorted(self.options.items())
            )
        return text

    def __reduce__(self) -> tuple[type[SecretRef], tuple[Any, ...]]:
        return (type(self), (self.scheme, self.path, self.field, dict(self.options)))

    def replace(self, **changes: Any) -> SecretRef:
        """A copy with some of ``scheme``, ``path``, ``field``, ``options`` changed."""
        kwargs: dict[str, Any] = {
            "scheme": self.scheme,
            "path": self.path,
            "field": self.field,
            "options": dict(self.options),
        }
        kwargs.update(changes)
        return SecretRef(**kwargs)

    @property
    def base(self) -> SecretRef:
        """The same reference without ``#field``: what a backend actually fetches."""
        return self if self.field is None else self.replace(field=None)

    @property
    def normalized_path(self) -> str:
        """The path with empty and ``.`` segments dropped: what an allow-list pattern is matched to.

        ``..`` never reaches here: :func:`parse_reference` refuses it.
        """
        parts = [part for part in self.path.split("/") if part not in ("", ".")]
        return ("/" if self.path.startswith("/") else "") + "/".join(parts)

    @classmethod
    def parse(cls, text: str) -> SecretRef:
        """Parse ``scheme://path[#field][?query]`` (the query may also come before ``#``)."""
        return parse_reference(text)


def reference_scheme(value: str) -> str | None:
    """The scheme if ``value`` is shaped like a reference, else ``None``.

    Shape only: whether the scheme is one secretkit knows is the registry's business,
    so that ``postgres://...`` in an environment variable stays a plain value.
    """
    m = _REF_PREFIX.match(value)
    return m.group(1) if m else None


#: The old name of :func:`reference_scheme`, which returns a scheme, not a bool.
looks_like_reference = reference_scheme


def parse_reference(text: str) -> SecretRef:
    """Parse a reference, raising :class:`InvalidReference` with what is wrong and how to fix it."""
    if not isinstance(text, str):
        raise InvalidReference(f"a reference must be a str, not {type(text).__name__}")
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise InvalidReference(f"{_shown(text)} is not a reference: expected scheme://path[#field][?options]")
    if not _SCHEME.fullmatch(scheme):
        raise InvalidReference(
            f"{_shown(text)}: the scheme {scheme!r} is not valid; "
            "use lower-case letters, digits, '+', '-' or '.' (e.g. aws-sm://, vault://)"
        )
    path, field, query = _split(rest)
    if not path:
        raise InvalidReference(f"{_shown(text)}: the path is empty; expected {scheme}://path")
    if _has_parent_segment(path):
        # Backends (and HTTP clients) resolve '..', which would walk out of whatever an
        # allow-list pattern granted: vault://secret/app/../admin reads secret/admin.
        raise InvalidReference(
            f"{_shown(text)}: the path has a '..' segment; name the secret by its own path"
        )
    if field is not None:
        if not field:
            raise InvalidReference(f"{_shown(text)}: '#' is followed by no field name")
        if any(not part for part in field.split(".")):
            raise InvalidReference(
                f"{_shown(text)}: the field {field!r} has an empty part; use dots between keys (a.b.c)"
            )
    options: dict[str, str] = {}
    if query:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise InvalidReference(
                f"{_shown(text)}: the options {query!r} are not key=value pairs joined by '&'"
            ) from None
        for key, value in pairs:
            if key in options:
                raise InvalidReference(f"{_shown(text)}: the option {key!r} is given twice")
            options[key] = value
    return SecretRef(scheme, path, field, options)


def _has_parent_segment(path: str) -> bool:
    # Decoded as a server would (percent-encoding, even twice; backslashes as separators).
    for _ in range(3):
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    return ".." in path.replace("\\", "/").split("/")


def _split(rest: str) -> tuple[str, str | None, str | None]:
    hash_at, query_at = rest.find("#"), rest.find("?")
    if hash_at < 0 and query_at < 0:
        return rest, None, None
    if query_at < 0:
        return rest[:hash_at], rest[hash_at + 1 :], None
    if hash_at < 0:
        return rest[:query_at], None, rest[query_at + 1 :]
    if hash_at < query_at:
        return rest[:hash_at], rest[hash_at + 1 : query_at], rest[query_at + 1 :]
    return rest[:query_at], rest[hash_at + 1 :], rest[query_at + 1 : hash_at]


def _shown(text: str) -> str:
    # A malformed reference may be a secret pasted in the wrong place: show its shape only,
    # never user-info or option values, and never more than a line of it.
    if "://" in text:
        scheme = text.split("://", 1)[0]
        if _SCHEME.fullmatch(scheme):
            return f"the reference {shown(text)}"
    return "the value given"
