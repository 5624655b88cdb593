"""The ``secretkit`` command: read, inject, preflight and diagnose secrets from a shell or a pipeline.

::

    secretkit get NAME|REF [--reveal] [--json]
    secretkit run [--env-file FILE]... [--no-mask] [--watch [--on-rotate signal:HUP]] -- CMD ARGS...
    secretkit inject TEMPLATE DEST [--mode 0600] [--allow PATTERN]... [--watch] [--exec CMD|--signal S]
    secretkit check [NAMES...] [--settings pkg.module:Class] [--json]
    secretkit doctor [NAMES...] [--json] [--timeout SECONDS]

Exit codes, the same for every command:

====  =========================================================================================
0     success
1     a secret was not found (``get``), a secret failed (``check``), a problem found (``doctor``)
2     usage error: bad arguments, an unknown command, an invalid reference or unknown scheme,
      a ``--settings`` target that cannot be loaded, a missing ``--env-file``
3     a backend is unavailable: unreachable, timed out, or failing
4     access denied, by a backend or by the store's allow-list
5     secretkit or a backend is misconfigured, or a backend's extra is not installed
70    an unexpected error (run again with ``--debug`` for the traceback)
130   interrupted
====  =========================================================================================

``run`` exits with the child's code once the child has started (128+N when signal N killed
it), 126 when the command cannot be executed and 127 when it is not found; before the child
starts, its own failures use the codes above.

An error is one line on stderr (``secretkit: error: ...``); ``--debug`` adds the traceback.
No output shows a secret value unless ``get --reveal`` asks for it, and ``run`` masks the
values it injected in the child's output unless ``--no-mask`` is given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from ._exits import EXIT_FAILED, EXIT_INTERNAL, EXIT_INTERRUPTED, CliError, classify
from ._output import error_message, print_error, print_traceback, silence_stdout
from ._parser import build_parser

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    try:
        code = _command(args.command)(args)
        if sys.stdout is not None:
            sys.stdout.flush()  # here, where a closed pipe is caught, not at interpreter exit
        return code
    except KeyboardInterrupt:
        print_error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Whoever read our output stopped reading: nothing left to say, and nowhere to say it.
        silence_stdout()
        return EXIT_FAILED
    except CliError as exc:
        if debug:
            print_traceback(exc)
        print_error(error_message(exc))
        return exc.code
    except Exception as exc:  # every error becomes one line and an exit code
        if debug:
            print_traceback(exc)
        _status, code = classify(exc)
        text = error_message(exc)
        if code == EXIT_INTERNAL and not debug:
            text += " (run with --debug for the traceback)"
        print_error(text)
        return code


def _command(name: str) -> Callable[[argparse.Namespace], int]:
    """The command's function, its module imported on demand so ``get`` loads no subprocess machinery."""
    if name == "get":
        from .get import command
    elif name == "run":
        from .run import command
    elif name == "check":
        from .check import command
    elif name == "inject":
        from .inject import command
    else:
        from .doctor import command
    return command
