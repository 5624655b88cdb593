"""Helpers of one backend call: observers told, options checked, fields picked, rotation told apart."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from . import _events
from ._backend import Backend, Fetched
from ._errors import AccessDenied, ConfigurationError, SecretNotFound, shown
from ._events import Outcome
from ._options import check_options
from ._refs import SecretRef
from ._secret import Missing, Secret, field_value

__all__ = ["changed", "check_options", "consumes_field", "field_of", "observed"]

log = logging.getLogger("secretkit")
T = TypeVar("T")


def observed(scheme: str, names: Sequence[str], reason: str, fn: Callable[[Any], T], arg: Any) -> T:
    """``fn(arg)``, told to every installed fetch observer (telemetry, audit)."""
    if not _events.observers:
        return fn(arg)
    spans = []
    for observer in list(_events.observers):
        try:
            spans.append(observer.start(scheme, names, reason))
        except Exception:
            log.warning("secretkit: fetch observer %r failed", observer, exc_info=True)
    try:
        result = fn(arg)
    except BaseException as exc:
        outcome: Outcome = (
            "not_found"
            if isinstance(exc, SecretNotFound)
            else "denied"
            if isinstance(exc, AccessDenied)
            else "error"
        )
        end_spans(spans, outcome, None, exc)
        raise
    end_spans(spans, "loaded", result.version if isinstance(result, Fetched) else None, None)
    return result


def end_spans(spans: list[Any], outcome: Outcome, version: str | None, error: BaseException | None) -> None:
    for span in spans:
        try:
            span.end(outcome, version, error)
        except Exception:
            log.warning("secretkit: fetch observer span %r failed", span, exc_info=True)


def consumes_field(backend: Backend, ref: SecretRef) -> bool:
    # A backend may read ``#field`` itself (dotenv's ``path/to/.env#KEY``): a bool, or a
    # function of the reference.
    consumes = getattr(backend, "consumes_field", False)
    if callable(consumes):
        return bool(consumes(ref))
    return bool(consumes)


def changed(old: Secret[Any], new: Secret[Any]) -> bool:
    # A new version, or the same version with another value: a secret deleted and created
    # again starts its versions over, and that is a rotation too.
    return old.version != new.version or old != new


def field_of(fetched: Fetched, ref: SecretRef, name: str, scheme: str) -> tuple[Any, Any]:
    """``(document, value)``: the parsed JSON secret and its field, parsed once for both."""
    assert ref.field is not None
    document, value = field_value(fetched.value, ref.field)
    if isinstance(value, Missing):
        del document  # a traceback with locals must not find the parsed secret in this frame
        if value.part is None:
            err = ConfigurationError(
                f"secret {shown(str(ref.base))} is not JSON, so it has no field {ref.field!r}; "
                "drop the #field or store the secret as a JSON object"
            )
            err.name, err.backend = name, scheme
            raise err
        raise SecretNotFound(name, backends=[scheme], detail=f"the JSON secret has no key {value.part!r}")
    return document, value
