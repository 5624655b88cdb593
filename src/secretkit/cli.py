"""The ``secretkit`` command: read, inject, preflight and diagnose secrets from a shell or a pipeline.

::

    secretkit get NAME|REF [--reveal] [--json]
    secretkit run [--env-file FILE]... [--no-mask] -- CMD ARGS...
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
import base64
import json
import os
import re
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, NoReturn

from . import _registry
from ._api import default_store
from ._errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    InvalidReference,
    MissingDependency,
    SecretkitError,
    SecretNotFound,
)
from ._redact import MIN_LENGTH, redact
from ._refs import SecretRef, looks_like_reference, parse_reference
from ._secret import MASK, Secret
from ._store import SecretStore

__all__ = ["main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_DENIED = 4
EXIT_CONFIG = 5
EXIT_INTERNAL = 70
EXIT_CANNOT_EXECUTE = 126
EXIT_COMMAND_NOT_FOUND = 127
EXIT_INTERRUPTED = 130

PROG = "secretkit"


class CliError(Exception):
    """A failure the command reports as one line, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# -- errors ----------------------------------------------------------------------------------


def _classify(exc: BaseException) -> tuple[str, int]:
    """The status word and exit code for an error met while resolving a secret."""
    if isinstance(exc, SecretNotFound):
        return "not found", EXIT_FAILED
    if isinstance(exc, AccessDenied):
        return "denied", EXIT_DENIED
    if isinstance(exc, BackendUnavailable):
        return "unavailable", EXIT_UNAVAILABLE
    if isinstance(exc, InvalidReference):
        return "invalid", EXIT_USAGE
    if isinstance(exc, ImportError):  # MissingDependency, or a backend module absent from this install
        return "missing dependency", EXIT_CONFIG
    if isinstance(exc, ConfigurationError):
        return "misconfigured", EXIT_CONFIG
    return "error", EXIT_INTERNAL


def _message(exc: BaseException) -> str:
    """One line describing ``exc``, scrubbed of every value this process has revealed."""
    text = str(exc)
    if not isinstance(exc, (SecretkitError, CliError)):
        # A foreign error's type is part of its message ("ValueError: ...").
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    text = " ".join(text.split())
    # Errors secretkit builds carry no value; this catches what a vendor or user error might.
    text = redact(text)
    if len(text) > 800:
        text = text[:800] + "..."
    return text


def _error(text: str) -> None:
    _flush(sys.stdout)
    print(f"{PROG}: error: {text}", file=sys.stderr, flush=True)


def _flush(stream: IO[str] | None) -> None:
    if stream is not None:
        try:
            stream.flush()
        except (OSError, ValueError):
            pass


# -- argument parsing ------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line and the exit code the module docstring documents."""

    def error(self, message: str) -> NoReturn:
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


def _build_parser() -> _Parser:
    from . import __version__

    common = _Parser(add_help=False)
    # SUPPRESS: a subcommand's default must not overwrite `--debug` given before it.
    common.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="print the traceback of an error"
    )
    parser = _Parser(
        prog=PROG,
        description="Resolve secrets from the environment, .env, files, AWS, Vault, GCP and Azure.",
        epilog=_EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="print the traceback of an error")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser, required=True)

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
        "--timeout", type=float, default=3.0, metavar="SECONDS", help="per reachability check (default 3)"
    )
    return parser


# -- entry point -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``) and return the exit code."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    debug = bool(getattr(args, "debug", False))
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "get": _cmd_get,
        "run": _cmd_run,
        "check": _cmd_check,
        "doctor": _cmd_doctor,
    }
    try:
        code = commands[args.command](args)
        if sys.stdout is not None:
            sys.stdout.flush()  # here, where a closed pipe is caught, not at interpreter exit
        return code
    except KeyboardInterrupt:
        _error("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Whoever read our output stopped reading: nothing left to say, and nowhere to say it.
        _silence_stdout()
        return EXIT_FAILED
    except CliError as exc:
        if debug:
            _print_traceback(exc)
        _error(_message(exc))
        return exc.code
    except Exception as exc:  # every error becomes one line and an exit code
        if debug:
            _print_traceback(exc)
        _status, code = _classify(exc)
        text = _message(exc)
        if code == EXIT_INTERNAL and not debug:
            text += " (run with --debug for the traceback)"
        _error(text)
        return code


def _print_traceback(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    print(redact(text), file=sys.stderr, end="", flush=True)


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


# -- values ----------------------------------------------------------------------------------


def _as_text(value: object) -> str:
    """A value as an environment variable holds it (the rule of ``secretkit.environ``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return json.dumps(value)


def _kind(value: object) -> str:
    if isinstance(value, str):
        return "str"
    if isinstance(value, bytes):
        return "bytes"
    return "json"


_is_reference = _registry.is_reference


def _metadata(secret: Secret[Any]) -> dict[str, Any]:
    return {
        "name": secret.name,
        "source": secret.source,
        "version": secret.version,
        "fetched_at": secret.fetched_at.isoformat(timespec="seconds"),
        "type": _kind(secret.reveal()),
    }


def _resolve_all(
    store: SecretStore, keys: Sequence[str]
) -> tuple[dict[str, Secret[Any]], dict[str, BaseException]]:
    """Resolve names and references, batched per backend; every failure is kept, none raised."""
    failures: dict[str, BaseException] = {}
    batch: list[str] = []
    for key in dict.fromkeys(keys):
        scheme = looks_like_reference(key) if "://" in key else None
        if scheme is not None:
            # Built (and its SDK imported) here, where any error can be caught per key:
            # prefetch() expects backends that can at least be constructed.
            try:
                parse_reference(key)
                store.backend_for(scheme)
            except Exception as exc:  # reported per key
                failures[key] = exc
                continue
        batch.append(key)
    if batch:
        failures.update(store.prefetch(batch))
    resolved: dict[str, Secret[Any]] = {}
    for key in batch:
        if key in failures:
            continue
        try:
            resolved[key] = store.get(key)
        except Exception as exc:  # reported per key
            failures[key] = exc
    return resolved, failures


# -- get -------------------------------------------------------------------------------------


def _cmd_get(args: argparse.Namespace) -> int:
    secret = default_store().get(args.name)
    meta = _metadata(secret)
    if args.json:
        if args.reveal:
            value = secret.reveal()
            if isinstance(value, bytes):
                meta["value"] = base64.b64encode(value).decode("ascii")
                meta["encoding"] = "base64"
            else:
                meta["value"] = value
        print(json.dumps(meta, indent=2))
    elif args.reveal:
        _write_value(secret.reveal())
    else:
        for key, val in meta.items():
            print(f"{key + ':':<12}{'-' if val is None else val}")
        print(f"{'value:':<12}{MASK} (use --reveal to print it)")
    return EXIT_OK


def _write_value(value: object) -> None:
    sys.stdout.flush()
    out = sys.stdout.buffer
    if isinstance(value, bytes):
        out.write(value)  # binary as is: `secretkit get --reveal KEY > key.der` must round-trip
    else:
        out.write((_as_text(value) + "\n").encode("utf-8", "surrogateescape"))
    out.flush()


# -- run -------------------------------------------------------------------------------------


def _cmd_run(args: argparse.Namespace) -> int:
    argv = list(args.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise CliError(f"run needs a command: {PROG} run [--env-file FILE] -- CMD ARGS...", EXIT_USAGE)
    env = dict(os.environ)
    for path in args.env_file:
        env.update(_read_env_file(path))
    refs = {var: value for var, value in env.items() if _is_reference(value)}
    resolved, failures = _resolve_all(default_store(), list(refs.values()))
    failed = [(var, failures[refs[var]]) for var in sorted(refs) if refs[var] in failures]
    if failed:
        for var, exc in failed:
            _error(f"{var}: {_message(exc)}")
        return _classify(failed[0][1])[1]
    injected: list[object] = []
    for var, ref in refs.items():
        value = resolved[ref].reveal()
        text = _as_text(value)
        if "\0" in text:
            raise CliError(
                f"{var}: the secret {ref!r} contains a NUL character, which an environment variable "
                "cannot hold; pick a #field or store it without NUL",
                EXIT_CONFIG,
            )
        env[var] = text
        injected.append(value)
    masker = None if args.no_mask else Masker(mask_values(injected))
    return _spawn(argv, env, masker)


def _read_env_file(path: str) -> dict[str, str]:
    from .backends.dotenv import DotenvBackend

    file = Path(path)
    if not file.is_file():
        raise CliError(f"--env-file {path!r}: no such file", EXIT_USAGE)
    backend = DotenvBackend(file)
    # The dotenv backend's parser, so a file reads the same here as through dotenv://.
    return backend.values()


def mask_values(values: Iterable[object]) -> list[bytes]:
    """What to mask for injected values: each whole, each JSON leaf, each line of a multi-line one."""
    out: list[str] = []

    def collect(value: object, depth: int) -> None:
        if depth > 8:
            return
        if isinstance(value, bytes):
            value = value.decode("utf-8", "surrogateescape")
        if isinstance(value, str):
            out.append(value)
            if "\n" in value:
                out.extend(line.rstrip("\r") for line in value.split("\n"))
            stripped = value.strip()
            if depth == 0 and stripped[:1] in ("{", "["):
                try:
                    collect(json.loads(stripped), depth + 1)
                except ValueError:
                    pass
        elif isinstance(value, dict):
            out.append(json.dumps(value))
            for item in value.values():
                collect(item, depth + 1)
        elif isinstance(value, list):
            out.append(json.dumps(value))
            for item in value:
                collect(item, depth + 1)

    for value in values:
        collect(value, 0)
    return [v.encode("utf-8", "surrogateescape") for v in dict.fromkeys(out) if len(v) >= MIN_LENGTH]


class Masker:
    """Replaces known values in a byte stream fed in arbitrary chunks.

    A value split across two chunks is still masked: the tail of a chunk that could be the
    start of a value is held back until the next chunk (or the end) decides. Nothing else is
    held back, so a prompt without a newline still shows at once.
    """

    def __init__(self, values: Iterable[bytes], mask: bytes = MASK.encode()) -> None:
        self._values = sorted({v for v in values if v}, key=len, reverse=True)
        self._mask = mask
        self._carry = b""

    def clone(self) -> Masker:
        """A masker for another stream: the same values, its own held-back tail."""
        return Masker(self._values, self._mask)

    def feed(self, data: bytes) -> bytes:
        """What can be written now of everything fed so far."""
        if not self._values:
            return data
        buf = self._carry + data
        spans = self._spans(buf)
        cut = len(buf) - self._held(buf)
        for start, end in reversed(spans):
            if start < cut < end:
                cut = start  # a value that reaches into the held tail is decided next time, whole
                break
            if end <= cut:
                break
        self._carry = buf[cut:]
        return self._replace(buf, spans, cut)

    def flush(self) -> bytes:
        """The held-back tail, masked, at the end of the stream."""
        buf, self._carry = self._carry, b""
        return self._replace(buf, self._spans(buf), len(buf))

    def _spans(self, buf: bytes) -> list[tuple[int, int]]:
        # Every occurrence of every value, overlaps merged: overlapping values are masked as one.
        found: list[tuple[int, int]] = []
        for value in self._values:
            at = buf.find(value)
            while at >= 0:
                found.append((at, at + len(value)))
                at = buf.find(value, at + 1)
        found.sort()
        merged: list[tuple[int, int]] = []
        for start, end in found:
            if merged and start < merged[-1][1]:
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return merged

    def _held(self, buf: bytes) -> int:
        """The length of the longest tail of ``buf`` that is a proper prefix of some value."""
        best = 0
        size = len(buf)
        for value in self._values:
            longest = min(len(value) - 1, size)
            if longest <= best:
                continue
            first = value[:1]
            at = buf.find(first, size - longest)
            while at >= 0 and size - at > best:
                if value.startswith(buf[at:]):
                    best = size - at
                    break
                at = buf.find(first, at + 1)
        return best

    def _replace(self, buf: bytes, spans: list[tuple[int, int]], cut: int) -> bytes:
        parts: list[bytes] = []
        pos = 0
        for start, end in spans:
            if end > cut:
                break
            parts.append(buf[pos:start])
            parts.append(self._mask)
            pos = end
        parts.append(buf[pos:cut])
        return b"".join(parts)


class _SignalForwarder:
    """Passes SIGINT, SIGTERM and SIGHUP on to the child while it runs."""

    NAMES = ("SIGINT", "SIGTERM", "SIGHUP")

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._pending: list[int] = []
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread
        for name in self.NAMES:
            signum = getattr(signal, name, None)
            if signum is not None:
                self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def attach(self, proc: subprocess.Popen[bytes]) -> None:
        self._proc = proc
        pending, self._pending = self._pending, []
        for signum in pending:
            self._forward(proc, signum)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        proc = self._proc
        if proc is None:
            self._pending.append(signum)  # arrived while the child was being started
        else:
            self._forward(proc, signum)

    @staticmethod
    def _forward(proc: subprocess.Popen[bytes], signum: int) -> None:
        if signum == signal.SIGINT and _terminal_sent_it_to(proc):
            return  # Ctrl-C reached the whole foreground group, the child included: once is enough
        try:
            proc.send_signal(signum)
        except (ProcessLookupError, OSError):
            pass  # it has exited already


def _terminal_sent_it_to(proc: subprocess.Popen[bytes]) -> bool:
    """True when our terminal's foreground process group is the child's (so it saw Ctrl-C too)."""
    if not hasattr(os, "tcgetpgrp"):
        return False
    for fd in (0, 1, 2):
        try:
            if os.isatty(fd):
                return os.tcgetpgrp(fd) == os.getpgid(proc.pid)
        except OSError:
            continue
    return False


def _spawn(argv: list[str], env: dict[str, str], masker: Masker | None) -> int:
    pipe = subprocess.PIPE if masker is not None else None
    forwarder = _SignalForwarder()
    forwarder.install()
    try:
        try:
            proc = subprocess.Popen(argv, env=env, stdout=pipe, stderr=pipe)  # noqa: S603 - the user's command
        except FileNotFoundError:
            raise CliError(f"command not found: {argv[0]}", EXIT_COMMAND_NOT_FOUND) from None
        except PermissionError:
            raise CliError(f"cannot execute {argv[0]}: permission denied", EXIT_CANNOT_EXECUTE) from None
        except OSError as exc:
            raise CliError(f"cannot execute {argv[0]}: {exc.strerror or exc}", EXIT_CANNOT_EXECUTE) from None
        forwarder.attach(proc)
        pumps: list[threading.Thread] = []
        if masker is not None:
            assert proc.stdout is not None and proc.stderr is not None
            pumps = [
                _start_pump(proc.stdout, sys.stdout, masker.clone()),
                _start_pump(proc.stderr, sys.stderr, masker.clone()),
            ]
        code = _wait(proc)
        # Output still in the pipes (or written by a child that outlives the command) is
        # passed on, masked, until every writer has closed them: as a shell pipeline would.
        for pump in pumps:
            pump.join()
    finally:
        forwarder.restore()
    return 128 - code if code < 0 else code


def _wait(proc: subprocess.Popen[bytes]) -> int:
    # Not a bare proc.wait(): the kernel may deliver a signal to a pump thread, and Python runs
    # handlers only when the main thread runs bytecode, which a blocking waitpid() never does.
    while True:
        try:
            return proc.wait(timeout=0.25)
        except subprocess.TimeoutExpired:
            continue


def _start_pump(source: IO[bytes], target: IO[str] | None, masker: Masker) -> threading.Thread:
    thread = threading.Thread(target=_pump, args=(source, target, masker), name="secretkit-mask", daemon=True)
    thread.start()
    return thread


def _pump(source: IO[bytes], target: IO[str] | None, masker: Masker) -> None:
    out: IO[bytes] | None = getattr(target, "buffer", None)
    fd = source.fileno()
    try:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            if not _emit(out, masker.feed(data)):
                # Our reader has gone: closing the pipe lets the child see EPIPE/SIGPIPE
                # as it would without us in between, instead of writing into a void forever.
                return
        _emit(out, masker.flush())
    finally:
        source.close()


def _emit(out: IO[bytes] | None, data: bytes) -> bool:
    if out is None:
        return True
    if not data:
        return True
    try:
        out.write(data)
        out.flush()
    except (OSError, ValueError):
        return False
    return True


# -- check -----------------------------------------------------------------------------------


@dataclass
class _Row:
    name: str
    status: str
    source: str | None = None
    version: str | None = None
    fetched_at: str | None = None
    error: str | None = None
    field: str | None = None
    required: bool | None = None

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "default")

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "status": self.status.replace(" ", "_"),
            "source": self.source,
            "version": self.version,
            "fetched_at": self.fetched_at,
            "error": self.error,
        }
        if self.field is not None:
            data["field"] = self.field
            data["required"] = self.required
        return data


def _row(name: str, secret: Secret[Any] | None, error: BaseException | None) -> _Row:
    if secret is not None:
        return _Row(
            name,
            "ok",
            source=secret.source,
            version=secret.version,
            fetched_at=secret.fetched_at.isoformat(timespec="seconds"),
        )
    assert error is not None
    return _Row(name, _classify(error)[0], source=getattr(error, "backend", None), error=_message(error))


def _cmd_check(args: argparse.Namespace) -> int:
    store = default_store()
    names: list[str] = list(args.names)
    rows: list[_Row] = []
    if args.settings:
        rows.extend(_check_settings(args.settings))
    elif not names:
        names = sorted(_references_in_environment())
        if not names:
            raise CliError(
                "nothing to check: give NAMES or --settings pkg.module:Class "
                "(no environment variable or ./.env entry holds a reference)",
                EXIT_USAGE,
            )
    resolved, failures = _resolve_all(store, names)
    rows.extend(_row(name, resolved.get(name), failures.get(name)) for name in dict.fromkeys(names))
    failed = [row for row in rows if row.failed]
    if args.json:
        print(json.dumps({"ok": not failed, "secrets": [row.as_json() for row in rows]}, indent=2))
    else:
        _print_check_table(rows)
        for row in failed:
            _error(f"{row.field or row.name}: {row.error or row.status}")
    return EXIT_FAILED if failed else EXIT_OK


def _print_check_table(rows: Sequence[_Row]) -> None:
    with_fields = any(row.field is not None for row in rows)
    header = ["FIELD"] if with_fields else []
    header += ["NAME", "STATUS", "SOURCE", "VERSION"]
    table = [header]
    for row in rows:
        cells = [row.field or "-"] if with_fields else []
        cells += [row.name, row.status, row.source or "-", row.version or "-"]
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for cells in table:
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
    ok = sum(1 for row in rows if not row.failed)
    print(f"{len(rows)} checked: {ok} ok, {len(rows) - ok} failed")


def _references_in_environment(*, dotenv: bool = True) -> dict[str, str]:
    """Variables of the environment and of ./.env whose value is a reference, by name."""
    from .backends.dotenv import DotenvBackend

    found: dict[str, str] = {}
    if dotenv:
        backend = DotenvBackend(".env")
        for key, value in backend.values().items():
            if _is_reference(value):
                found[key] = value
    for key, value in os.environ.items():
        if _is_reference(value):
            found[key] = value  # the environment wins over .env, as in the default chain
    return found


# -- check --settings ------------------------------------------------------------------------

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
            f"--settings {target!r}: importing {module_name!r} failed ({_message(exc)})", EXIT_USAGE
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


def _check_settings(target: str) -> list[_Row]:
    """A row per field of the settings class, then the class built as the application builds it."""
    try:
        from pydantic_settings import BaseSettings

        from .pydantic import declared_secrets
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


def _check_field(field: str, keys: Sequence[str], required: bool, store: SecretStore) -> _Row:
    """The first of ``keys`` that resolves; a field with a default may resolve to none."""
    row: _Row | None = None
    resolved, failures = _resolve_all(store, keys)
    for key in keys:
        if key in resolved:
            row = _row(key, resolved[key], None)
            break
        error = failures[key]
        if not isinstance(error, SecretNotFound):
            row = _row(key, None, error)
            break
    if row is None:
        shown = keys[0] if keys else field
        if required:
            tried = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
            row = _Row(
                shown,
                "not found",
                error=f"required, and not found as {tried}" if keys else "required, and no name may be read",
            )
        else:
            row = _Row(shown, "default")
    row.field, row.required = field, required
    return row


def _validate_settings(cls: Any, rows: list[_Row]) -> None:
    """Build the settings object as the application will; a field that fails validation fails the check."""
    from pydantic import ValidationError

    by_key: dict[str, _Row] = {}
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
                target = by_key[key] = _Row(key, "invalid", field=key)
                rows.append(target)
            where = ".".join(str(part) for part in loc[1:])
            text = " ".join(f"{err.get('msg', '')} [{err.get('type', '')}]".split())
            target.status = "invalid"
            target.error = redact(f"does not validate{' at ' + where if where else ''}: {text}")
    except SecretkitError as exc:
        rows.append(_Row(cls.__name__, _classify(exc)[0], error=_message(exc)))
    except Exception as exc:  # the application's own validators may raise anything
        rows.append(_Row(cls.__name__, "error", error=f"building {cls.__name__} failed: {_message(exc)}"))


# -- doctor ----------------------------------------------------------------------------------


# Import names of the SDK distributions the extras install (find_spec needs the module).
_IMPORT_NAMES = {
    "boto3": "boto3",
    "hvac": "hvac",
    "google-cloud-secret-manager": "google.cloud.secretmanager",
    "grpcio": "grpc",
    "azure-keyvault-secrets": "azure.keyvault.secrets",
    "azure-identity": "azure.identity",
    "pydantic": "pydantic",
    "pydantic-settings": "pydantic_settings",
}

# Per scheme: the variables its SDK reads, and whether a variable's value is safe to show.
_CONFIG_VARS: dict[str, list[tuple[str, bool]]] = {
    "aws": [
        ("AWS_ENDPOINT_URL", True),
        ("AWS_REGION", True),
        ("AWS_DEFAULT_REGION", True),
        ("AWS_PROFILE", True),
        ("AWS_ACCESS_KEY_ID", False),
        ("AWS_SECRET_ACCESS_KEY", False),
        ("AWS_SESSION_TOKEN", False),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", True),
        ("AWS_ROLE_ARN", True),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", True),
        ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", True),
    ],
    "aws-sm": [("AWS_ENDPOINT_URL_SECRETS_MANAGER", True)],
    "aws-ssm": [("AWS_ENDPOINT_URL_SSM", True)],
    "vault": [
        ("VAULT_ADDR", True),
        ("VAULT_TOKEN", False),
        ("VAULT_NAMESPACE", True),
        ("VAULT_CACERT", True),
        ("VAULT_SKIP_VERIFY", True),
    ],
    "gcp-sm": [
        ("GOOGLE_CLOUD_PROJECT", True),
        ("GCLOUD_PROJECT", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
    ],
    "azure-kv": [
        ("AZURE_TENANT_ID", False),
        ("AZURE_CLIENT_ID", False),
        ("AZURE_CLIENT_SECRET", False),
        ("AZURE_CLIENT_CERTIFICATE_PATH", True),
        ("AZURE_FEDERATED_TOKEN_FILE", True),
        ("AZURE_AUTHORITY_HOST", True),
    ],
}

_VAULT_DEFAULT_ADDR = "https://127.0.0.1:8200"
_VAULT_HEALTH = {
    200: (True, "active, unsealed"),
    429: (True, "standby, unsealed"),
    472: (True, "disaster-recovery secondary"),
    473: (True, "performance standby"),
    501: (False, "not initialized"),
    503: (False, "sealed"),
}


@dataclass
class _Reach:
    target: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"target": self.target, "ok": self.ok, "detail": self.detail}


@dataclass
class _BackendReport:
    scheme: str
    extra: str | None
    module: bool
    packages: dict[str, str | None]  # distribution -> version, None when not importable
    configured: list[str]
    referenced_by: list[str]
    reach: _Reach | None = None
    note: str | None = None

    @property
    def installed(self) -> bool:
        return self.module and all(v is not None for v in self.packages.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "extra": self.extra,
            "installed": self.installed,
            "packages": self.packages,
            "configured": self.configured,
            "referenced_by": self.referenced_by,
            "reachable": self.reach.as_json() if self.reach else None,
            "note": self.note,
        }


def _cmd_doctor(args: argparse.Namespace) -> int:
    from . import __version__

    store = default_store()
    problems: list[str] = []
    try:
        references = _references_in_environment()
    except ConfigurationError as exc:  # a malformed ./.env is a finding, not the end of the report
        problems.append(_message(exc))
        references = _references_in_environment(dotenv=False)
    chain = [{"scheme": b.scheme, "detail": _describe_backend(b)} for b in store.backends]
    extras = _extras_report()
    backends = _backends_report(references)
    _check_reachability(backends, args.timeout, references)
    for report in backends:
        if report.referenced_by and not report.installed:
            problems.append(
                f"{', '.join(report.referenced_by)} use {report.scheme}://, but that backend is not installed"
                + (f': pip install "secretkit[{report.extra}]"' if report.extra else "")
            )
        if report.reach is not None and not report.reach.ok:
            problems.append(
                f"{report.scheme}: {report.reach.target} is not reachable ({report.reach.detail})"
            )
    traces = [_trace(name, store) for name in args.names]
    for trace in traces:
        if trace["status"] != "ok":
            problems.append(f"{trace['name']}: {trace['error'] or trace['status']}")
    if args.json:
        print(
            json.dumps(
                {
                    "secretkit": __version__,
                    "python": sys.version.split()[0],
                    "chain": chain,
                    "extras": extras,
                    "backends": [b.as_json() for b in backends],
                    "references": sorted(references),
                    "names": traces,
                    "problems": problems,
                },
                indent=2,
            )
        )
        return EXIT_FAILED if problems else EXIT_OK
    print(f"secretkit {__version__} on Python {sys.version.split()[0]} ({sys.executable})")
    print()
    print("chain for plain names (first that has a name wins):")
    for i, item in enumerate(chain, 1):
        print(f"  {i}. {item['scheme']:<8} {item['detail']}")
    print()
    print("extras:")
    for extra, packages in extras.items():
        shown = ", ".join(f"{dist} {ver}" if ver else f"{dist} missing" for dist, ver in packages.items())
        state = "installed" if all(packages.values()) else f'not installed (pip install "secretkit[{extra}]")'
        print(f"  {extra:<9} {state}: {shown}")
    print()
    print("backends:")
    for report in backends:
        installed = "installed" if report.installed else "not installed"
        print(f"  {report.scheme:<9} {installed}")
        if report.configured:
            print(f"            configured: {', '.join(report.configured)}")
        if report.referenced_by:
            print(f"            referenced by: {', '.join(report.referenced_by)}")
        if report.note:
            print(f"            {report.note}")
        if report.reach is not None:
            state = "reachable" if report.reach.ok else "NOT reachable"
            print(f"            {state}: {report.reach.target} ({report.reach.detail})")
    for trace in traces:
        print()
        _print_trace(trace)
    print()
    if problems:
        print(f"{len(problems)} problem(s):")
        for problem in problems:
            print(f"  - {problem}")
        return EXIT_FAILED
    print("no problems found")
    return EXIT_OK


def _describe_backend(backend: Any) -> str:
    from .backends.dotenv import DotenvBackend
    from .backends.env import EnvBackend
    from .backends.files import FileBackend

    if isinstance(backend, EnvBackend):
        return f"process environment ({len(os.environ)} variables; NAME_FILE points to a file)"
    if isinstance(backend, DotenvBackend):
        return f"{backend.path} ({'present' if backend.path.is_file() else 'absent'})"
    if isinstance(backend, FileBackend):
        return f"{backend.root} ({'present' if backend.root.is_dir() else 'absent'})"
    return repr(backend)


def _installed(dist: str) -> str | None:
    """The version of ``dist`` if its module can be imported, without importing it."""
    import importlib.metadata
    import importlib.util

    module = _IMPORT_NAMES.get(dist, dist.replace("-", "_"))
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _extra_packages() -> dict[str, list[str]]:
    """Each extra's distributions, from secretkit's own metadata (the registry when there is none)."""
    import importlib.metadata

    extras: dict[str, list[str]] = {}
    try:
        requires = importlib.metadata.requires("secretkit") or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    for requirement in requires:
        marker = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        if marker and name and name.group(0).lower() != "secretkit":
            extras.setdefault(marker.group(1), []).append(name.group(0).lower())
    for spec in _registry.KNOWN_BACKENDS.values():
        if spec.extra and spec.package and spec.extra not in extras:
            extras[spec.extra] = [spec.package]
    return extras


def _extras_report() -> dict[str, dict[str, str | None]]:
    return {
        extra: {dist: _installed(dist) for dist in dists}
        for extra, dists in sorted(_extra_packages().items())
        if extra not in ("all", "test")
    }


def _module_present(target: str) -> bool:
    import importlib.util

    module = target.partition(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _backends_report(references: Mapping[str, str]) -> list[_BackendReport]:
    extras = _extra_packages()
    reports: list[_BackendReport] = []
    for scheme, spec in sorted(_registry.KNOWN_BACKENDS.items()):
        if spec.extra is None:
            continue
        dists = extras.get(spec.extra) or ([spec.package] if spec.package else [])
        configured: list[str] = []
        for group in ("aws" if scheme.startswith("aws") else "", scheme):
            for var, shown in _CONFIG_VARS.get(group, []):
                value = os.environ.get(var)
                if value:
                    configured.append(f"{var}={_safe_url(value)}" if shown else f"{var} (set)")
        if scheme == "vault" and (Path.home() / ".vault-token").is_file():
            configured.append("~/.vault-token")
        if scheme.startswith("aws") and (Path.home() / ".aws").is_dir():
            configured.append("~/.aws/")
        referenced = sorted(var for var, ref in references.items() if looks_like_reference(ref) == scheme)
        reports.append(
            _BackendReport(
                scheme=scheme,
                extra=spec.extra,
                module=_module_present(spec.target),
                packages={dist: _installed(dist) for dist in dists},
                configured=configured,
                referenced_by=referenced,
            )
        )
    for scheme in sorted(_registry.known_schemes() - set(_registry.KNOWN_BACKENDS)):
        reports.append(
            _BackendReport(
                scheme=scheme,
                extra=None,
                module=True,
                packages={},
                configured=["plugin (entry point)"],
                referenced_by=sorted(
                    var for var, ref in references.items() if looks_like_reference(ref) == scheme
                ),
            )
        )
    return reports


def _safe_url(value: str) -> str:
    """A URL without its user-info or query (either may hold a credential)."""
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in value:
        return value
    try:
        parts = urlsplit(value)
    except ValueError:
        return "(set)"
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def _check_reachability(reports: list[_BackendReport], timeout: float, references: Mapping[str, str]) -> None:
    """Probe, in parallel, the endpoint of each remote backend that is configured or referenced."""
    jobs: list[tuple[_BackendReport, Callable[[], _Reach]]] = []
    for report in reports:
        if not (report.configured or report.referenced_by):
            continue
        probe = _probe_for(report, timeout, references)
        if probe is not None:
            jobs.append((report, probe))
    threads = []
    for report, probe in jobs:

        def run(report: _BackendReport = report, probe: Callable[[], _Reach] = probe) -> None:
            try:
                report.reach = probe()
            except Exception as exc:  # a probe's failure is a finding, not a crash
                report.reach = _Reach("?", False, _message(exc))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(timeout + 2.0)


def _probe_for(
    report: _BackendReport, timeout: float, references: Mapping[str, str]
) -> Callable[[], _Reach] | None:
    env = os.environ
    if report.scheme == "vault":
        addr = env.get("VAULT_ADDR")
        if not addr:
            addr = _VAULT_DEFAULT_ADDR
            report.note = f"VAULT_ADDR is not set: the backend uses {addr}, as the vault CLI does"
        return lambda: _probe_vault(addr, timeout)
    if report.scheme in ("aws-sm", "aws-ssm"):
        service, specific = (
            ("secretsmanager", "AWS_ENDPOINT_URL_SECRETS_MANAGER")
            if report.scheme == "aws-sm"
            else ("ssm", "AWS_ENDPOINT_URL_SSM")
        )
        endpoint = env.get(specific) or env.get("AWS_ENDPOINT_URL")
        if not endpoint:
            region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
            if not region:
                report.note = "no AWS_REGION or AWS_ENDPOINT_URL: the region comes from the profile, if any"
                return None
            endpoint = f"https://{service}.{region}.amazonaws.com"
        url = endpoint
        return lambda: _probe_http(url, timeout, lambda status: (True, f"HTTP {status}"))
    if report.scheme == "gcp-sm":
        return lambda: _probe_http(
            "https://secretmanager.googleapis.com/", timeout, lambda status: (True, f"HTTP {status}")
        )
    if report.scheme == "azure-kv":
        vaults = sorted(
            {
                ref.split("://", 1)[1].split("/", 1)[0]
                for var, ref in references.items()
                if var in report.referenced_by
            }
        )
        if not vaults:
            report.note = "reachability is checked per vault: reference a secret (azure-kv://VAULT/NAME)"
            return None
        url = f"https://{vaults[0]}.vault.azure.net/"
        return lambda: _probe_http(url, timeout, lambda status: (True, f"HTTP {status}"))
    return None


def _probe_vault(addr: str, timeout: float) -> _Reach:
    def judge(status: int) -> tuple[bool, str]:
        return _VAULT_HEALTH.get(status, (False, f"unexpected HTTP {status}"))

    context = None
    if addr.startswith("https"):
        import ssl

        if os.environ.get("VAULT_SKIP_VERIFY", "").lower() in ("1", "true", "yes"):
            context = ssl._create_unverified_context()  # noqa: S323 - the user asked for it, as the vault CLI does
        elif os.environ.get("VAULT_CACERT"):
            context = ssl.create_default_context(cafile=os.environ["VAULT_CACERT"])
    return _probe_http(addr.rstrip("/") + "/v1/sys/health", timeout, judge, context=context)


def _probe_http(
    url: str,
    timeout: float,
    judge: Callable[[int], tuple[bool, str]],
    *,
    context: Any = None,
) -> _Reach:
    """GET ``url``: any HTTP answer means reachable; ``judge`` reads the status."""
    import socket
    import ssl
    import urllib.error
    import urllib.request

    shown = _safe_url(url)
    if not url.startswith(("http://", "https://")):
        return _Reach(shown, False, "not an http(s) URL")
    request = urllib.request.Request(url, method="GET", headers={"User-Agent": "secretkit-doctor"})  # noqa: S310 - http(s) only, checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            ok, detail = judge(response.status)
    except urllib.error.HTTPError as exc:
        ok, detail = judge(exc.code)
        exc.close()
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            return _Reach(shown, False, "connection refused")
        if isinstance(reason, TimeoutError):
            return _Reach(shown, False, f"timed out after {timeout:g}s")
        if isinstance(reason, socket.gaierror):
            return _Reach(shown, False, "cannot resolve the host name")
        if isinstance(reason, ssl.SSLError):
            return _Reach(shown, False, f"TLS error: {reason.reason or reason}")
        return _Reach(shown, False, redact(str(reason)))
    except TimeoutError:
        return _Reach(shown, False, f"timed out after {timeout:g}s")
    except OSError as exc:
        return _Reach(shown, False, redact(exc.strerror or str(exc)))
    return _Reach(shown, ok, detail)


def _trace(name: str, store: SecretStore) -> dict[str, Any]:
    """Where ``name`` is found in the chain, which backend wins, and what it resolves to."""
    sources: list[dict[str, Any]] = []
    winner: str | None = None
    points_to: str | None = None
    if "://" in name and looks_like_reference(name):
        points_to = name
    else:
        for backend in store.backends:
            entry: dict[str, Any] = {"backend": backend.scheme, "found": False}
            try:
                fetched = backend.fetch(SecretRef(backend.scheme, name))
            except SecretNotFound:
                pass
            except Exception as exc:  # reported per backend
                entry["error"] = _message(exc)
            else:
                entry["found"] = True
                if isinstance(fetched.value, str) and _is_reference(fetched.value):
                    # A reference is a pointer, not a value: safe to show, and what a user needs to see.
                    entry["reference"] = fetched.value
                if winner is None:
                    winner = backend.scheme
                    points_to = entry.get("reference")
            sources.append(entry)
    resolved, failures = _resolve_all(store, [name])
    row = _row(name, resolved.get(name), failures.get(name))
    return {
        "name": name,
        "sources": sources,
        "winner": winner,
        "reference": points_to,
        "status": row.status.replace(" ", "_"),
        "source": row.source,
        "version": row.version,
        "error": row.error,
    }


def _print_trace(trace: Mapping[str, Any]) -> None:
    print(f"{trace['name']}:")
    for entry in trace["sources"]:
        if entry.get("error"):
            state = f"error: {entry['error']}"
        elif entry["found"]:
            state = "has it"
            if entry.get("reference"):
                state += f" (a reference to {entry['reference']})"
        else:
            state = "-"
        mark = "  <- wins" if trace["winner"] == entry["backend"] and entry["found"] else ""
        print(f"  {entry['backend']:<8} {state}{mark}")
    status = trace["status"].replace("_", " ")
    line = f"  resolves: {status}"
    if trace["status"] == "ok":
        line += f" from {trace['source']}" + (f", version {trace['version']}" if trace["version"] else "")
    elif trace["error"]:
        line += f" ({trace['error']})"
    print(line)
