"""The grammar of ``run --watch`` and ``inject``: argparse only, so building the parser loads no machinery."""

from __future__ import annotations

import argparse
from typing import Any


def add_watch_arguments(run: argparse.ArgumentParser) -> None:
    """``run``'s options for following rotation (``--watch`` and what it does)."""
    run.add_argument(
        "--watch",
        action="store_true",
        help="keep the command on current values: when a secret it was given rotates, restart it "
        "(or signal it, with --on-rotate)",
    )
    run.add_argument(
        "--on-rotate",
        type=_on_rotate,
        default=None,
        metavar="restart|signal:NAME",
        help="with --watch: restart the command (default), or send it a signal (signal:HUP) and keep it",
    )
    _add_refresh(run)
    run.add_argument(
        "--grace",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="with --watch: seconds a restarted command has to exit after SIGTERM, then SIGKILL (default 10)",
    )


def add_inject_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """The ``inject`` command: a template's ``{{ secret "REF" }}`` placeholders rendered into a file."""
    inject = sub.add_parser(
        "inject",
        parents=[common],
        help='render a template\'s {{ secret "REF" }} placeholders into a file (atomically, mode 0600)',
        description='Render TEMPLATE into DEST: each {{ secret "REF" }} is replaced by the secret REF '
        "(a reference or a name) points to; nothing else in the template is interpreted. DEST is "
        "replaced atomically (a temporary file in its directory, fsync, rename), with mode 0600 unless "
        "--mode, and its owner kept. With --watch, DEST is rendered again when a secret rotates, and "
        "--exec or --signal tells its reader.",
    )
    inject.add_argument("template", metavar="TEMPLATE", help="the template file")
    inject.add_argument("dest", metavar="DEST", help="the file to write")
    inject.add_argument(
        "--mode",
        type=_mode,
        default=0o600,
        metavar="OCTAL",
        help="DEST's permission bits (default 0600)",
    )
    inject.add_argument(
        "--allow",
        action="append",
        default=None,
        metavar="PATTERN",
        help="render only references whose path matches PATTERN (repeatable; the store's allow-list)",
    )
    inject.add_argument(
        "--watch", action="store_true", help="keep running: render again whenever a secret in it rotates"
    )
    _add_refresh(inject)
    inject.add_argument(
        "--exec",
        dest="exec_command",
        metavar="COMMAND",
        help='after DEST changed, run COMMAND (split as a shell would, never run by one): "pgbouncer -R"',
    )
    inject.add_argument(
        "--signal",
        type=_signal_name,
        metavar="NAME",
        help="after DEST changed, send signal NAME (HUP, USR1, ...) to the process of --pid-file",
    )
    inject.add_argument("--pid-file", metavar="FILE", help="the file holding the process id for --signal")


def _add_refresh(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--refresh",
        type=_seconds,
        default=300.0,
        metavar="SECONDS",
        help="with --watch: how long a remote secret's value lives before it is fetched again (default 300); "
        "a rotation is seen within about this long",
    )


def _on_rotate(text: str) -> int | None:
    """``restart`` (None) or ``signal:NAME`` (the signal's number)."""
    if text == "restart":
        return None
    kind, _, name = text.partition(":")
    if kind == "signal" and name:
        return _signal_name(name)
    raise argparse.ArgumentTypeError("expected 'restart' or 'signal:NAME' (signal:HUP, signal:USR1, ...)")


def _signal_name(text: str) -> int:
    """A signal by name (``HUP``, ``SIGHUP``) or number."""
    import signal

    name = text.upper()
    try:
        if name.isdigit():
            return int(signal.Signals(int(name)))
        return int(signal.Signals[name if name.startswith("SIG") else "SIG" + name])
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError("expected a signal name such as HUP, USR1 or TERM") from None


def _mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError("expected octal permission bits, such as 0600 or 0640") from None
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError("expected permission bits between 0000 and 0777")
    return mode


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of seconds") from None
    if not 0.1 <= value <= 86400:  # also false for nan
        raise argparse.ArgumentTypeError("expected a number of seconds from 0.1 to 86400")
    return value
