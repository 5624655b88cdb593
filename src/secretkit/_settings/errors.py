"""Errors of typed settings, and the copy of a ``ValidationError`` that shows no secret input."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError
from pydantic_settings import SettingsError

from .._errors import SecretkitError
from .._redact import redact
from .._secret import MASK
from .inputs import safe_input


class SecretkitSettingsError(SettingsError, SecretkitError):
    """Some fields' secrets could not be read (unreachable backend, access denied, ...).

    ``errors`` maps each field name to its secretkit error. Catch it as pydantic-settings'
    ``SettingsError`` or as secretkit's ``SecretkitError``. Never carries a secret value.
    """

    def __init__(
        self, errors: Mapping[str, SecretkitError], holders: Mapping[str, str] | None = None
    ) -> None:
        self.errors = dict(errors)
        #: For a field whose value named a secret (``DB_PASSWORD=aws-sm://...``): what held the reference.
        self.holders = dict(holders or {})
        lines = []
        for field, exc in self.errors.items():
            holder = self.holders.get(field)
            held = f"{holder} holds a reference that could not be read: " if holder else ""
            lines.append(f"field {field!r}: {held}{exc}")
        noun = "field" if len(lines) == 1 else "fields"
        super().__init__(f"secretkit could not read {len(lines)} settings {noun}: " + "; ".join(lines))


def redact_validation_error(
    exc: ValidationError,
    *,
    notes: Sequence[str] = (),
    settings_cls: type[BaseModel] | None = None,
    secret_keys: Collection[str] = (),
) -> ValidationError:
    """A copy of ``exc`` in which the input of every secret is a mask.

    With ``settings_cls``, an input is masked when it is a secret (see :mod:`._settings.inputs`):
    a field typed ``SecretStr``/``SecretBytes``/``Secret``/``LiveSecret``, a name that marks a
    secret (``SECRET_NAME_MARKERS``), a value that came through a reference or from a store,
    or one of ``secret_keys`` (the inputs a ``secrets_dir`` file gave); a URL's password is
    masked in any other input, which is otherwise kept as pydantic shows it. Without
    ``settings_cls`` nothing is known of the fields, so every input is masked.

    Locations, error types and messages are kept; messages and context strings have any
    value secretkit has handed out masked. ``SecretkitSettings`` raises this instead of the
    original; call it yourself around a plain ``BaseSettings``. Raise the result outside
    the ``except`` block, so the original is not chained as its context.
    """
    details: list[InitErrorDetails] = []
    touched = False
    for error in exc.errors(include_url=False):
        given = error.get("input")
        if settings_cls is None:
            shown_input: Any = MASK
        else:
            shown_input = safe_input(settings_cls, error["loc"], given, error["type"], secret_keys)
        touched = touched or shown_input is not given
        detail = InitErrorDetails(type=error["type"], loc=error["loc"], input=shown_input)
        if "ctx" in error:
            ctx = {k: _safe_ctx(v) for k, v in error["ctx"].items()}
            touched = touched or any(ctx[k] is not v for k, v in error["ctx"].items())
            detail["ctx"] = ctx
        try:
            ValidationError.from_exception_data(exc.title, [detail])
        except (KeyError, TypeError, ValueError):
            # A custom error type (PydanticCustomError in a validator): keep its rendered message.
            message = redact(error["msg"])
            touched = touched or message != error["msg"]
            detail = InitErrorDetails(
                type=PydanticCustomError(error["type"], message),  # no ctx: not formatted
                loc=error["loc"],
                input=shown_input,
            )
        details.append(detail)
    if touched:
        hide = bool(settings_cls is not None and settings_cls.model_config.get("hide_input_in_errors"))
        clean = ValidationError.from_exception_data(exc.title, details, hide_input=hide)
    else:
        # Nothing to hide: the error pydantic raised, exactly (its message, its input types).
        clean = exc
    for note in notes:
        clean.add_note(note)
    return clean


def _safe_ctx(value: Any) -> Any:
    if isinstance(value, BaseException):
        # A validator's exception: its text may quote the value it rejected.
        text = str(value)
        clean = redact(text)
        if clean == text:
            return value
        return (AssertionError if isinstance(value, AssertionError) else ValueError)(clean)
    if isinstance(value, str):
        clean = redact(value)
        return value if clean == value else clean
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
