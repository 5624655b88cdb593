"""Everything the CLI prints goes through here: scrubbed of values, control characters escaped.

A line may carry text from a file (SOPS metadata, a .env), a server (a version, an error)
or an argument; a terminal acts on the escape sequences such text can hold (clear a line,
move the cursor, write the clipboard with OSC 52). ``say`` and ``print_error`` escape them,
so no command prints with ``print`` directly. ``get --reveal`` writes the value raw, as asked.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import IO, Any

from .._errors import SecretkitError, printable, public_name
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
    # Escaped after, so a value holding a control character is still found as it is.
    text = printable(scrub_credentials(redact(text)))
    if len(text) > 800:
        text = text[:800] + "..."
    return text


def shown_name(name: str) -> str:
    """A name or reference as given, for a table or a message: ``public_name``, the one shape."""
    return public_name(name)


def terminal_safe(text: str) -> str:
    """``text`` as one line may show it on a terminal: every control character escaped.

    Line breaks too: a field that could start a new line could print one that reads
    "no problems found", so a report's lines are each a call of their own.
    """
    return printable(text)


def say(text: str = "") -> None:
    """Print one line of a command's report on stdout, control characters escaped."""
    print(terminal_safe(text))


def say_block(title: str, lines: list[str]) -> None:
    """A titled block of indented lines (a report section: the SOPS files, ...)."""
    say(title)
    for line in lines:
        say(f"  {line}")


def say_json(data: Any) -> None:
    """Print a JSON report: ASCII only (JSON escapes every control character), then ``say``."""
    import json

    for line in json.dumps(data, indent=2, ensure_ascii=True).split("\n"):
        say(line)


def print_error(text: str) -> None:
    flush(sys.stdout)
    print(f"{PROG}: error: {terminal_safe(text)}", file=sys.stderr, flush=True)


def flush(stream: IO[str] | None) -> None:
    if stream is not None:
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


def print_traceback(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    text = scrub_credentials(redact(text))
    # A traceback is lines; what its messages hold is escaped within them.
    print("\n".join(printable(line) for line in text.split("\n")), file=sys.stderr, end="", flush=True)


def silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
