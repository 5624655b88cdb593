"""Parsing of ``scheme://path#field?query`` references into :class:`SecretRef`."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, quote, unquote

from ._errors import InvalidReference, shown

__all__ = [
    "SecretRef",
    "closest_scheme",
    "near_miss",
    "parse_reference",
    "reference_scheme",
]

_SCHEME = re.compile(r"[a-z][a-z0-9+.-]*")
_REF_PREFIX = re.compile(r"^([a-z][a-z0-9+.-]*)://")
# What a mistyped scheme looks like (AWS-SM, aws_sm): safe to name in an error.
_SCHEME_LIKE = re.compile(r"[A-Za-z0-9+._-]{1,40}")


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
        # Escaped as parse_reference unescapes, so the text names this reference again: caches,
        # allow-lists and the settings sources re-parse it (a .env file in /srv/app#2/).
        text = f"{self.scheme}://{_escaped(self.path)}"
        if self.field is not None:
            text += f"#{_escaped(self.field)}"
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


def parse_reference(text: str) -> SecretRef:
    """Parse a reference, raising :class:`InvalidReference` with what is wrong and how to fix it.

    In the path and the field, ``%23``, ``%3F`` and ``%25`` stand for ``#``, ``?`` and ``%``
    (how ``str(ref)`` writes them); any other ``%xx`` is kept as written, for the backend.
    """
    if not isinstance(text, str):
        raise InvalidReference(f"a reference must be a str, not {type(text).__name__}")
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise InvalidReference(f"{_shown(text)} is not a reference: expected scheme://path[#field][?options]")
    if not _SCHEME.fullmatch(scheme):
        # Whatever comes before '://' may be a pasted secret: named only when scheme-shaped.
        written = f"the scheme {scheme!r}" if _SCHEME_LIKE.fullmatch(scheme) else "the text before '://'"
        raise InvalidReference(
            f"{_shown(text)}: {written} is not a valid scheme; "
            "use lower-case letters, digits, '+', '-' or '.' (e.g. aws-sm://, vault://)"
        )
    raw_path, raw_field, query = _split(rest)
    path = _unescaped(raw_path)
    field = None if raw_field is None else _unescaped(raw_field)
    if not path:
        raise InvalidReference(f"{_shown(text)}: the path is empty; expected {scheme}://path")
    if _has_parent_segment(raw_path) or _has_parent_segment(path):
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
                f"{_shown(text)}: the field {shown(field)} has an empty part; use dots between keys (a.b.c)"
            )
    options: dict[str, str] = {}
    if query:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            # Never the query itself: its values may be credentials (?token=...), and the
            # reference as _shown gives it already masks them.
            raise InvalidReference(
                f"{_shown(text)}: the options are not key=value pairs joined by '&' "
                "(each option needs '=', and an '&' inside a value is written %26)"
            ) from None
        for key, value in pairs:
            if key in options:
                raise InvalidReference(f"{_shown(text)}: the option {shown(key)} is given twice")
            options[key] = value
    return SecretRef(scheme, path, field, options)


# Only the three characters that would change how a reference splits are escaped ('%' only
# where it would read as one of those escapes), so every other path reads as it always did:
# file:///run/secrets/a%20b is still the file named "a%20b".
_ESCAPE = re.compile(r"[#?]|%(?=2[35]|3[fF])")
_UNESCAPE = re.compile(r"%(?:2[35]|3[fF])")
_ESCAPES = {"#": "%23", "?": "%3F", "%": "%25"}


def _escaped(part: str) -> str:
    if "%" not in part and "#" not in part and "?" not in part:
        return part  # what almost every path is
    return _ESCAPE.sub(lambda m: _ESCAPES[m[0]], part)


def _unescaped(part: str) -> str:
    return _UNESCAPE.sub(lambda m: chr(int(m[0][1:], 16)), part) if "%" in part else part


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


# -- near misses: a scheme typed wrong --------------------------------------------------------

# `AWS-SM://x`, `aws_sm:/x`: a scheme-like word, a colon and one or more slashes.
_NEAR_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9+._-]*):/")


def closest_scheme(scheme: str, known: Iterable[str], *, cutoff: float = 0.75) -> str | None:
    """The scheme of ``known`` that ``scheme`` was most likely meant to be, if any is close.

    Compared case-insensitively, with ``_`` read as ``-`` (``AWS_SM`` is ``aws-sm``); then by
    similarity (``aws-sn`` is ``aws-sm``, ``vualt`` is ``vault``). ``None`` when nothing is close,
    so that ``postgres`` or ``https`` is never taken for a typo.
    """
    import difflib

    schemes = sorted(known)
    wanted = scheme.lower().replace("_", "-")
    for candidate in schemes:
        if candidate.lower() == wanted:
            return candidate
    close = difflib.get_close_matches(wanted, schemes, n=1, cutoff=cutoff)
    return close[0] if close else None


def near_miss(value: str, known: Iterable[str]) -> tuple[str, str] | None:
    """``(scheme as written, the scheme meant)`` when ``value`` is a reference with a scheme typed wrong.

    ``aws-sn://x``, ``AWS-SM://x``, ``aws_sm://x``, ``aws-sm:/x``: shaped like a reference to a
    known scheme and not one. ``None`` for a well-formed reference, for a value that is no
    reference (``postgres://...``, ``https://...``, ``host:5432``, ``env:prod``) and for
    anything too long to be a scheme.
    """
    match = _NEAR_PREFIX.match(value)
    if match is None or len(match[1]) > 40:
        return None
    written = match[1]
    schemes = frozenset(known)
    well_formed = value.startswith(f"{written}://")
    if well_formed and written in schemes:
        return None
    meant = closest_scheme(written, schemes) if well_formed else _same_scheme(written, schemes)
    return (written, meant) if meant is not None else None


def _same_scheme(written: str, schemes: frozenset[str]) -> str | None:
    # With ":/" rather than "://" only the scheme itself, in another case or with "_", is a
    # near miss: "note:/tmp" stays a value.
    wanted = written.lower().replace("_", "-")
    return next((s for s in sorted(schemes) if s.lower() == wanted), None)
