"""``check --settings``: each field of a settings class, then the class built as the app builds it."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from .. import _registry
from .._api import default_store
from .._errors import (
    MissingDependency,
    SecretkitError,
    SecretNotFound,
)
from .._redact import redact
from .._store import SecretStore
from ._exits import EXIT_CONFIG, EXIT_USAGE, CliError, classify
from ._output import error_message
from ._resolve import resolve_all
from ._status import StatusRow, status_row

_NEEDS_PYDANTIC = (
    '--settings needs pydantic-settings, which is not installed: pip install "secretkit[pydantic]"'
)


def _load_target(target: str) -> Any:
    """``pkg.module:Class`` (or ``pkg.module.Class``), imported with the current directory on the path."""
    import importlib

    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise CliError(f"--settings {target!r}: expected pkg.module:Class", EXIT_USAGE)
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        # The console script does not put the working directory on the path; `python -m` does.
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if isinstance(exc, MissingDependency) or (
            isinstance(exc, ModuleNotFoundError) and exc.name in ("pydantic", "pydantic_settings")
        ):
            raise CliError(_NEEDS_PYDANTIC, EXIT_CONFIG) from exc
        raise CliError(f"--settings {target!r}: cannot import {module_name!r} ({exc})", EXIT_USAGE) from exc
    except Exception as exc:
        raise CliError(
            f"--settings {target!r}: importing {module_name!r} failed ({error_message(exc)})", EXIT_USAGE
        ) from exc
    try:
        obj: Any = module
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise CliError(
            f"--settings {target!r}: {module_name!r} has no attribute {attr!r}", EXIT_USAGE
        ) from None
    return obj


def check_settings(target: str) -> list[StatusRow]:
    """A row per field of the settings class, then the class built as the application builds it."""
    try:
        from pydantic_settings import BaseSettings

        from ..pydantic import declared_secrets
    except ImportError as exc:
        raise CliError(_NEEDS_PYDANTIC, EXIT_CONFIG) from exc
    cls = _load_target(target)
    if not (isinstance(cls, type) and issubclass(cls, BaseSettings)):
        raise CliError(f"--settings {target!r} is not a pydantic-settings BaseSettings class", EXIT_USAGE)
    # A SecretkitSettings class may name its own store; the check must read the same one.
    store = getattr(cls, "secretkit_store", None)
    if not isinstance(store, SecretStore):
        store = default_store()
    plan = declared_secrets(cls, store)
    rows = [
        _check_field(name, plan.get(name, ()), bool(info.is_required()), store)
        for name, info in cls.model_fields.items()
    ]
    if not any(row.failed for row in rows):
        _validate_settings(cls, rows)
    return rows


def _check_field(field: str, keys: Sequence[str], required: bool, store: SecretStore) -> StatusRow:
    """The first of ``keys`` that resolves; a field with a default may resolve to none."""
    row: StatusRow | None = None
    resolved, failures = resolve_all(store, keys)
    for key in keys:
        if key in resolved:
            row = status_row(key, resolved[key], None)
            break
        error = failures[key]
        held = _held_reference(key)
        if held is not None:
            # The variable is set, to a reference that failed: say so, whatever the failure
            # ("not found as DB_PASSWORD" would send the user looking for an unset variable).
            row = _reference_row(key, held, store)
            break
        if not isinstance(error, SecretNotFound):
            row = status_row(key, None, error)
            break
    if row is None:
        shown = keys[0] if keys else field
        if required:
            tried = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
            row = StatusRow(
                shown,
                "not found",
                error=f"required, and not found as {tried}" if keys else "required, and no name may be read",
            )
        else:
            row = StatusRow(shown, "default")
    row.field, row.required = field, required
    return row


def _held_reference(key: str) -> str | None:
    """The reference the environment variable ``key`` holds, if it holds one."""
    if "://" in key:
        return None
    value = os.environ.get(key)
    return value if value is not None and _registry.is_reference(value) else None


def _reference_row(key: str, reference: str, store: SecretStore) -> StatusRow:
    """The row of a variable set to a reference: the reference's own failure, or ok."""
    try:
        secret = store.get(reference)
    except SecretkitError as exc:
        row = status_row(key, None, exc)
        row.error = f"{key} holds a reference that could not be read: {error_message(exc)}"
        return row
    return status_row(key, secret, None)


def _validate_settings(cls: Any, rows: list[StatusRow]) -> None:
    """Build the settings object as the application will; a field that fails validation fails the check."""
    from pydantic import ValidationError

    by_key: dict[str, StatusRow] = {}
    for row in rows:
        assert row.field is not None
        by_key[row.field] = row
        info = cls.model_fields[row.field]
        for alias in (info.alias, info.validation_alias):
            if isinstance(alias, str):
                by_key.setdefault(alias, row)
    try:
        cls()
    except ValidationError as exc:
        # Built from the error list without `input`: a plain BaseSettings' error text shows inputs.
        for err in exc.errors(include_input=False, include_url=False):
            loc = err.get("loc") or ()
            key = str(loc[0]) if loc else cls.__name__
            target = by_key.get(key)
            if target is None:
                target = by_key[key] = StatusRow(key, "invalid", field=key)
                rows.append(target)
            where = ".".join(str(part) for part in loc[1:])
            text = " ".join(f"{err.get('msg', '')} [{err.get('type', '')}]".split())
            target.status = "invalid"
            target.error = redact(f"does not validate{' at ' + where if where else ''}: {text}")
    except SecretkitError as exc:
        rows.append(StatusRow(cls.__name__, classify(exc)[0], error=error_message(exc)))
    except Exception as exc:  # the application's own validators may raise anything
        rows.append(
            StatusRow(cls.__name__, "error", error=f"building {cls.__name__} failed: {error_message(exc)}")
        )
