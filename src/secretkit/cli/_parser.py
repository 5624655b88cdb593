"""The command line's grammar: argparse, with usage errors as one line and exit code 2."""

from __future__ import annotations

import argparse
from typing import NoReturn

from ._exits import EXIT_USAGE, PROG
from ._output import terminal_safe
from ._watch_args import add_inject_parser, add_watch_arguments


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line and the exit code the module docstring documents."""

    def error(self, message: str) -> NoReturn:
        # argparse quotes the arguments it refuses as given: an escape sequence among them is text here.
        message = terminal_safe(" ".join(message.split()))
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


_EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    a secret was not found (get), a secret failed (check), a problem was found (doctor)
  2    usage error (bad arguments, unknown command, invalid reference or unknown scheme)
  3    a backend is unavailable (unreachable, timed out, failing)
  4    access denied
  5    misconfigured, or a backend's extra is not installed
  70   unexpected error (use --debug)
  run: the child's exit code (128+N if killed by signal N), 126 cannot execute, 127 not found
"""


def build_parser() -> Parser:
    from .. import __version__

    common = Parser(add_help=False)
    # SUPPRESS: a subcommand's default must not overwrite `--debug` given before it.
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="print the traceback of an error"
    )
    parser = Parser(
        prog=PROG,
        description="Resolve secrets from the environment, .env, files, AWS, Vault, GCP and Azure.",
        epilog=_EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser, required=True)

    get = sub.add_parser(
        "get",
        parents=[common],
        help="show a secret's metadata (its value only with --reveal)",
        description="Resolve NAME (through the default chain) or a reference and show its metadata: "
        "name, source, version and when it was fetched. The value is printed only with --reveal.",
    )
    get.add_argument(
        "name", metavar="NAME|REF", help="a name (API_KEY) or a reference (vault://secret/app#key)"
    )
    get.add_argument("--reveal", action="store_true", help="print the value (raw; with --json, in the JSON)")
    get.add_argument("--json", action="store_true", help="print one JSON object")

    run = sub.add_parser(
        "run",
        parents=[common],
        help="run a command with the references in its environment resolved",
        description="Run CMD with every environment variable (and --env-file entry) that holds a "
        "reference (scheme://...) replaced by the secret it points to. This process's environment "
        "and the files are not changed. Signals are forwarded; the exit code is the command's. "
        "Injected values are masked in the command's output unless --no-mask.",
    )
    run.add_argument(
        "--env-file",
        action="append",
        default=[],
        metavar="FILE",
        help="add KEY=VALUE lines from FILE to the child's environment (repeatable; later files win)",
    )
    run.add_argument(
        "--no-mask",
        action="store_true",
        help="connect the command to this terminal directly; its output is not scanned or masked",
    )
    add_watch_arguments(run)
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ARGS...", help="the command to run")

    check = sub.add_parser(
        "check",
        parents=[common],
        help="preflight: resolve secrets and report each one's status, never its value",
        description="Resolve each secret and print its source, version and status (ok, not found, "
        "denied, unavailable, ...). Exits 1 if any fails. With no NAMES and no --settings, checks "
        "every reference held by the environment and ./.env.",
    )
    check.add_argument("names", nargs="*", metavar="NAMES", help="names or references to check")
    check.add_argument(
        "--settings",
        metavar="pkg.module:Class",
        help="also check every field of this pydantic-settings class (imported from the current directory)",
    )
    check.add_argument("--json", action="store_true", help="print one JSON object")

    add_inject_parser(sub, common)

    doctor = sub.add_parser(
        "doctor",
        parents=[common],
        help="which backends are configured, installed and reachable; which source wins for NAMES",
        description="Report the chain of backends, which extras are installed, which remote backends "
        "are configured and reachable, and for each NAME which backend of the chain has it and "
        "which one wins. Never shows a value. Exits 1 if it finds a problem.",
    )
    doctor.add_argument("names", nargs="*", metavar="NAMES", help="names to trace through the chain")
    doctor.add_argument("--json", action="store_true", help="print one JSON object")
    doctor.add_argument(
        "--timeout", type=_seconds, default=3.0, metavar="SECONDS", help="per reachability check (default 3)"
    )
    return parser


def _seconds(text: str) -> float:
    """A ``--timeout``: seconds above 0 and at most an hour (``nan`` and ``inf`` parse as floats too)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of seconds") from None
    if not 0 < value <= 3600:  # also false for nan
        raise argparse.ArgumentTypeError("expected a number of seconds above 0 and at most 3600")
    return value
