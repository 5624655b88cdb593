"""The allow-list: one object that says which names and references a store may read, wherever asked.

The store, the settings sources and the CLI all ask this object, so a reference gets one
answer whichever way it comes in. A reference is matched by its normalised path (no empty or
``.`` segments, no ``#field``, no ``?options``), and a percent-encoded path is admitted only
if its decoded form is admitted too: a backend that decodes must not read past a pattern.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from urllib.parse import unquote

from ._errors import AccessDenied, ConfigurationError, shown
from ._refs import SecretRef

__all__ = ["AllowList"]


class AllowList(tuple[str, ...]):
    """The patterns as given (so ``store.allow`` still reads as a tuple), and the one way to match them.

    A pattern is an ``fnmatch`` pattern. ``API_*`` matches plain names and reference paths
    (``prod/app/*``); ``scheme://path`` matches references of that scheme only. A pattern's
    scheme is matched whatever its case, and its path is normalised as a reference's is.
    """

    _ref_patterns: tuple[str, ...]

    def __new__(cls, patterns: Iterable[str]) -> AllowList:
        if isinstance(patterns, str):
            # tuple("prod/*") would be six one-character patterns, "*" among them.
            raise ConfigurationError(
                f"allow= takes a list of patterns, not one str: allow=[{shown(patterns)}]"
            )
        given = tuple(patterns)
        for pattern in given:
            _check(pattern)
        self = super().__new__(cls, given)
        self._ref_patterns = tuple(dict.fromkeys(_normalised_pattern(p) for p in given))
        return self

    def admits_name(self, name: str) -> bool:
        """Whether a plain name (tried along a chain) is granted."""
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self)

    def admits_ref(self, ref: SecretRef) -> bool:
        """Whether a reference is granted: its normalised path, decoded or not; never #field or options."""
        forms = _path_forms(ref.normalized_path)
        # A '..' walks out of whatever a pattern granted (and a '*' would match across it): a
        # reference built without the parser's check is refused here too.
        if any(".." in path.replace("\\", "/").split("/") for path in forms):
            return False
        return all(self._admits_path(ref.scheme, path) for path in forms)

    def refusal(self, name: str, why: str) -> AccessDenied:
        """The error for a refused ``name``: the patterns are shown, so the fix is plain."""
        err = AccessDenied(
            f"secret {shown(name)} is refused by this store's allow-list ({why}: {list(self)}); "
            "add a matching pattern to allow=[...] to permit it"
        )
        err.name = name
        return err

    def _admits_path(self, scheme: str, path: str) -> bool:
        with_scheme = f"{scheme}://{path}"
        return any(
            fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(with_scheme, pattern)
            for pattern in self._ref_patterns
        )

    def __repr__(self) -> str:
        return f"AllowList({list(self)!r})"

    def __reduce__(self) -> tuple[type[AllowList], tuple[tuple[str, ...]]]:
        return (type(self), (tuple(self),))


def _check(pattern: object) -> None:
    if not isinstance(pattern, str):
        raise ConfigurationError(f"an allow-list pattern must be a str, not {type(pattern).__name__}")
    if "#" in pattern:
        # A #field is never part of the match (a field of a secret is as readable as the rest of
        # it), so this pattern could match nothing: a silent refusal of what it meant to grant.
        raise ConfigurationError(
            f"the allow-list pattern {shown(pattern)} has a '#': patterns match a secret's path, never "
            "its #field; allow the whole secret (dotenv:///app/.env, vault://secret/app)"
        )
    path = pattern.split("://", 1)[1] if "://" in pattern else pattern
    if ".." in path.split("/"):
        raise ConfigurationError(
            f"the allow-list pattern {shown(pattern)} has a '..' segment, which no reference may "
            "have; write the path it means"
        )


def _normalised_pattern(pattern: str) -> str:
    """``pattern`` as a normalised reference is written: scheme lower-cased, no ``.`` or ``//``."""
    scheme, sep, path = pattern.partition("://")
    if not sep:
        scheme, path = "", pattern
    normal = SecretRef("x", path).normalized_path if path else path
    return f"{scheme.lower()}://{normal}" if sep else normal


def _path_forms(path: str) -> list[str]:
    # The path as written and as a server would decode it (twice-encoded too), each normalised.
    forms = [path]
    for _ in range(3):
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
        forms.append(SecretRef("x", decoded).normalized_path)
    return forms
