"""What the store makes of a backend's failure: wrapped, sealed, scrubbed.

Factored out of the store: every error a backend raises passes through here on its way
to a caller, and nothing a caller sees may carry a value or a backend's frames.
"""

from __future__ import annotations

from typing import Any

from .._errors import BackendUnavailable, SecretkitError, shown, without_userinfo
from .._redact import redact

__all__ = ["ScrubbedError", "sealed", "scrubbed", "wrapped"]


def sealed(err: BaseException) -> Any:
    """``err`` with no traceback anywhere in its chain, and no hidden context.

    Frames between a backend and the store hold raw responses and values in their locals;
    error reporters that capture locals (Sentry does by default) would send them. Types
    and messages, which say what went wrong, are kept.
    """
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        if current.__suppress_context__:
            current.__context__ = None
        current = current.__cause__ or current.__context__
    return err


class ScrubbedError(Exception):
    """Stands in for a vendor exception whose message showed a secret value."""

    #: The type name of the exception it stands in for: telemetry and audit name the cause by it.
    original_type: str | None = None


def _stand_in(exc: BaseException, message: str) -> ScrubbedError:
    err = ScrubbedError(message)
    err.original_type = type(exc).__name__
    return err


def scrubbed(exc: BaseException) -> BaseException:
    """``exc``, or a copy of it whose message shows no registered value.

    A vendor exception chained as ``__cause__`` is printed with every traceback; if its
    message echoes a value (a server repeating the request back), the copy keeps its type
    and the scrubbed message, and drops its attributes (raw responses).
    """
    try:
        text = str(exc)
    except Exception:
        return _stand_in(exc, type(exc).__name__)
    clean = without_userinfo(redact(text))
    if clean == text:
        return exc
    try:
        copy = exc.__class__.__new__(exc.__class__)
        copy.args = (clean,)
        if without_userinfo(redact(str(copy))) == str(copy):
            return copy
    except Exception:  # noqa: S110 - an exception class whose __str__ needs its attributes
        pass
    return _stand_in(exc, f"{type(exc).__name__}: {clean}")


def wrapped(exc: BaseException, name: str, scheme: str) -> SecretkitError:
    if isinstance(exc, SecretkitError):
        if exc.name is None:
            exc.name = name
        if exc.backend is None:
            exc.backend = scheme
        if len(exc.args) == 1 and isinstance(exc.args[0], str):
            # A backend's own message may quote an address it was configured with.
            exc.args = (without_userinfo(exc.args[0]),)
        return exc
    detail = without_userinfo(redact(str(exc)))
    if len(detail) > 200:
        detail = detail[:200] + "..."
    err = BackendUnavailable(
        f"secret {shown(name)}: the {scheme} backend failed ({type(exc).__name__}"
        + (f": {detail}" if detail else "")
        + "); check that the backend is reachable"
    )
    err.name, err.backend = name, scheme
    return err
