"""Errors of typed settings, and the copy of a ``ValidationError`` that shows no input."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import SettingsError

from .._errors import SecretkitError
from .._redact import redact
from .._secret import MASK


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


def redact_validation_error(exc: ValidationError, *, notes: Sequence[str] = ()) -> ValidationError:
    """A copy of ``exc`` that shows no input: every ``input`` becomes a mask.

    Locations, error types and messages are kept; messages and context strings have any
    value secretkit has handed out masked. ``SecretkitSettings`` raises this instead of the
    original; call it yourself around a plain ``BaseSettings``. Raise the result outside
    the ``except`` block, so the original is not chained as its context.
    """
    details: list[InitErrorDetails] = []
    for error in exc.errors(include_url=False):
        detail = InitErrorDetails(type=error["type"], loc=error["loc"], input=MASK)
        if "ctx" in error:
            detail["ctx"] = {k: _safe_ctx(v) for k, v in error["ctx"].items()}
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
    for note in notes:
        clean.add_note(note)
    return clean


def _safe_ctx(value: Any) -> Any:
    if isinstance(value, BaseException):
        # A validator's exception: its text may quote the value it rejected.
        return (AssertionError if isinstance(value, AssertionError) else ValueError)(redact(str(value)))
    if isinstance(value, str):
        return redact(value)
    return value


def scrub_json_documents(exc: BaseException) -> None:
    """Empty the ``doc`` of every ``JSONDecodeError`` in ``exc``'s chain: it holds the whole value."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, json.JSONDecodeError):
            current.doc = MASK
        current = current.__cause__ or current.__context__


def missing_notes(exc: ValidationError, looked_up: Mapping[str, tuple[str, tuple[str, ...]]]) -> list[str]:
    """A note per missing field saying which names the store was asked for."""
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
