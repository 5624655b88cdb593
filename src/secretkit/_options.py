"""The one check of a reference's ``?options``, made before any backend call, in one wording.

A backend declares the option names it takes (``options``) and, optionally, the shape of
their values (``option_shapes``: a mapping, or a function of the reference). A name it does
not take, or a value of the wrong shape, is an :class:`InvalidReference` raised here, before
anything is sent: a malformed option is the reference's fault, never an outage to ride out
on a stale value. Messages never show an option's value (a reference masks them: a value may
be a secret pasted in the wrong place), and show a name only when it looks like one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._errors import InvalidReference, shown
from ._refs import SecretRef

__all__ = ["Shape", "check", "check_options", "where"]

# Option names are short words; anything else may be a value typed where a name goes.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,39}")
_REMOVE = "remove it from the reference"


class Shape:
    """The values one option takes: a pattern the whole value must match, and how to say so."""

    __slots__ = ("pattern", "says")

    def __init__(self, pattern: str, says: str, *, ignore_case: bool = False) -> None:
        self.pattern = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
        #: What a valid value looks like, for the message (never the value given).
        self.says = says

    def fits(self, value: str) -> bool:
        return self.pattern.fullmatch(value) is not None

    def __repr__(self) -> str:
        return f"Shape({self.pattern.pattern!r})"


ShapeSpec = Mapping[str, Shape] | Callable[[SecretRef], Mapping[str, Shape]]


def where(ref: SecretRef) -> str:
    """``the reference '<scheme>://<path>[#field]'``: how a message names a reference, without options."""
    text = f"{ref.scheme}://{ref.path}" + (f"#{ref.field}" if ref.field is not None else "")
    return f"the reference {shown(text)}"


def check_options(backend: Any, ref: SecretRef) -> None:
    """Refuse, before ``backend`` is asked, options it does not declare and values of the wrong shape.

    A backend that declares no ``options`` takes any (third-party backends written before
    options were checked); one that declares no ``option_shapes`` takes any value.
    """
    if not ref.options:
        return
    spec: ShapeSpec | None = getattr(backend, "option_shapes", None)
    shapes = spec(ref) if callable(spec) else spec
    check(str(backend.scheme), ref, getattr(backend, "options", None), shapes or {})


def check(
    scheme: str,
    ref: SecretRef,
    accepted: Iterable[str] | None,
    shapes: Mapping[str, Shape],
    *,
    fix: str = _REMOVE,
) -> None:
    """The check itself, for a backend whose accepted names depend on the reference (Vault's engines)."""
    if not ref.options:
        return
    if accepted is not None:
        takes = frozenset(accepted)
        unknown = sorted(set(ref.options) - takes)
        if unknown:
            named = ", ".join(_name(n) for n in unknown)
            raise InvalidReference(
                f"{where(ref)}: the {scheme} backend has no option {named} "
                f"(it takes: {', '.join(sorted(takes)) or 'none'}); {fix}"
            )
    for name, value in ref.options.items():
        shape = shapes.get(name)
        if shape is not None and not shape.fits(value):
            raise InvalidReference(
                f"{where(ref)}: the {scheme} backend's ?{name}= takes {shape.says}, and the value given "
                "is not one (it is not shown: an option may hold a secret); fix it in the reference"
            )


def _name(name: str) -> str:
    return repr(name) if _NAME.fullmatch(name) else "(a name that is not shown)"
