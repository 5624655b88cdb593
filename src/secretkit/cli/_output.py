"""Error lines and tracebacks on stderr, always scrubbed of values; a reader that went away."""

from __future__ import annotations

import os
import sys
import traceback
from typing import IO

from .._errors import SecretkitError
from .._redact import redact
from ._exits import PROG, CliError
from ._urls import scrub_credentials


def error_message(exc: BaseException) -> str:
    """One line describing ``exc``, scrubbed of every value this process has revealed."""
    text = str(exc)
    if not isinstance(exc, (SecretkitError, CliError)):
        # A foreign error's type is part of its message ("ValueError: ...").
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    text = " ".join(text.split())
    # Errors secretkit builds carry no value; this catches what a vendor or user error might,
    # and the credentials a vendor error may echo from a URL the user set (VAULT_ADDR, ...).
    text = scrub_credentials(redact(text))
    if len(text) > 800:
        text = text[:800] + "..."
    return text


def shown_name(name: str) -> str:
    """A name or reference as given, for a table or a message: no credentials, no control bytes, bounded."""
    text = scrub_credentials(name[: _NAME_LIMIT + 1])
    if not text.isprintable():
        text = "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)
    return text if len(text) <= _NAME_LIMIT else text[:_NAME_LIMIT] + "..."


_NAME_LIMIT = 200


def print_error(text: str) -> None:
    flush(sys.stdout)
    print(f"{PROG}: error: {text}", file=sys.stderr, flush=True)


def flush(stream: IO[str] | None) -> None:
    if stream is not None:
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def print_traceback(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    print(scrub_credentials(redact(text)), file=sys.stderr, end="", flush=True)


def silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
