"""``secretkit inject``: a template's ``{{ secret "REF" }}`` placeholders rendered into a file, kept current.

For programs that read a config file rather than import secretkit (PgBouncer's
``auth_file``, nginx, a cron job's credentials file): the same references, allow-list,
cache and masking as the library. With ``--watch`` the template's secrets are read through
the store so it refreshes them, a rotation renders the file again, and ``--exec`` or
``--signal`` tells the program, only when the file's bytes changed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from .._localfile import UnsafeFile, read_local_bytes, read_local_text
from .._redact import StreamRedactor
from .._store import SecretStore
from ._atomic import remove_leftovers, write_atomic
from ._exits import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_USAGE, CliError, classify
from ._output import error_message, print_error, shown_name
from ._resolve import as_text, resolve_all
from ._rotation import RotationWatch, notice, poll_interval
from ._template import Template, parse_template

#: Rotations closer together than this make one render.
SETTLE = 1.0
#: The longest an --exec command may run before it is killed and reported.
EXEC_TIMEOUT = 60.0


class _Stopped(Exception):
    """SIGTERM or SIGINT: end cleanly, a write in progress undone (its temporary file removed)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def command(args: argparse.Namespace) -> int:
    """Render TEMPLATE into DEST once, or (``--watch``) at every rotation until stopped.

    SIGTERM ends a watch with 0 (a sidecar told to stop); it ends a single render with 128+N.
    A reload command already running (``--exec``) finishes first.
    """
    _check_arguments(args)
    _signals.install()
    try:
        return _command(args)
    except _Stopped as stop:
        return EXIT_OK if args.watch else 128 + stop.signum
    finally:
        _signals.restore()


def _command(args: argparse.Namespace) -> int:
    from .._api import configure

    template = _load_template(args.template)
    dest = Path(args.dest)
    # The store of this command: its allow-list is --allow, its values live --refresh seconds.
    store = configure(ttl=args.refresh, allow=args.allow)
    if remove_leftovers(dest):
        notice(f"removed a temporary file an interrupted run left beside {shown_name(args.dest)}")
    existed = dest.exists()
    rendered = _render(template, store, args.template)
    if isinstance(rendered, int):
        return rendered
    data, values = rendered
    changed = _write_if_changed(dest, data, args.mode)
    ok = _tell(args, values) if changed and existed else True
    if not args.watch:
        return EXIT_OK if ok else EXIT_FAILED
    return _watch(args, template, store, dest)


def _check_arguments(args: argparse.Namespace) -> None:
    if args.signal is not None and not args.pid_file:
        raise CliError("--signal needs --pid-file: the process to signal", EXIT_USAGE)
    if args.pid_file and args.signal is None:
        raise CliError("--pid-file is used with --signal NAME", EXIT_USAGE)
    if args.signal is not None and args.exec_command:
        raise CliError("give --exec or --signal, not both", EXIT_USAGE)
    if args.exec_command is not None and not shlex.split(args.exec_command):
        raise CliError("--exec needs a command", EXIT_USAGE)


def _load_template(path: str) -> Template:
    try:
        text = read_local_text(path)
    except FileNotFoundError:
        raise CliError(f"template {shown_name(path)!r}: no such file", EXIT_USAGE) from None
    except UnicodeDecodeError:
        raise CliError(f"template {shown_name(path)!r}: not UTF-8 text", EXIT_CONFIG) from None
    except UnsafeFile as exc:
        raise CliError(f"template {shown_name(path)!r} {exc.why}", EXIT_CONFIG) from None
    except OSError as exc:
        raise CliError(f"template {shown_name(path)!r}: {exc.strerror or exc}", EXIT_CONFIG) from None
    return parse_template(text, source=path)


def _render(template: Template, store: SecretStore, source: str) -> tuple[bytes, list[object]] | int:
    """The rendered bytes and the values in them, or the exit code after each failure was printed.

    Every key is resolved (allow-list first) before a byte is written: a failure leaves the
    destination as it was and creates no temporary file.
    """
    keys = template.distinct_keys
    resolved, failures = resolve_all(store, keys)
    if failures:
        for key in keys:
            if key in failures:
                print_error(f"{shown_name(source)}: {shown_name(key)}: {error_message(failures[key])}")
        return classify(next(failures[key] for key in keys if key in failures))[1]
    values: dict[str, str] = {}
    revealed: list[object] = []
    for key in keys:
        value = resolved[key].reveal()
        values[key] = as_text(value)
        revealed.append(value)
    return template.render(values).encode("utf-8", "surrogateescape"), revealed


def _write_if_changed(dest: Path, data: bytes, mode: int) -> bool:
    """Write ``data`` unless ``dest`` holds it already with ``mode``; whether it was written."""
    try:
        same = read_local_bytes(dest) == data and (os.stat(dest).st_mode & 0o777) == mode
    except OSError:
        same = False
    if same:
        return False
    write_atomic(dest, data, mode)
    return True


def _tell(args: argparse.Namespace, values: list[object]) -> bool:
    """Run --exec or send --signal after the file changed; False (and one line said) when that failed."""
    if args.exec_command:
        with _signals.held():
            return _run_exec(args.exec_command, values)
    if args.signal is not None:
        return _send_signal(args.signal, args.pid_file)
    return True


def _run_exec(text: str, values: list[object]) -> bool:
    argv = shlex.split(text)
    try:
        done = subprocess.run(  # noqa: S603 - the user's command, never a shell
            argv, capture_output=True, timeout=EXEC_TIMEOUT, stdin=subprocess.DEVNULL, check=False
        )
    except FileNotFoundError:
        print_error(f"--exec: command not found: {shown_name(argv[0])}")
        return False
    except subprocess.TimeoutExpired:
        print_error(f"--exec: {shown_name(argv[0])} did not finish within {EXEC_TIMEOUT:g} s; killed")
        return False
    except OSError as exc:
        print_error(f"--exec: cannot execute {shown_name(argv[0])}: {exc.strerror or exc}")
        return False
    # What it prints is passed on with the rendered values masked, as run masks its child.
    masker: StreamRedactor[bytes] = StreamRedactor(values)
    for data, stream in ((done.stdout, sys.stdout), (done.stderr, sys.stderr)):
        out = masker.clone()
        if data and stream is not None:
            stream.buffer.write(out.feed(data) + out.flush())
            stream.flush()
    if done.returncode != 0:
        code = 128 - done.returncode if done.returncode < 0 else done.returncode
        print_error(f"--exec: {shown_name(argv[0])} exited with code {code}")
        return False
    return True


def _send_signal(signum: int, pid_file: str) -> bool:
    try:
        text = read_local_text(pid_file, max_bytes=64).strip()
    except (OSError, UnicodeDecodeError) as exc:
        print_error(f"--pid-file {shown_name(pid_file)!r}: cannot read it: {error_message(exc)}")
        return False
    # 0 and negative numbers name process groups (-1: every process we may signal): never that.
    if not text.isdigit() or int(text) < 1:
        print_error(f"--pid-file {shown_name(pid_file)!r} does not hold a process id")
        return False
    try:
        os.kill(int(text), signum)
    except ProcessLookupError:
        print_error(f"--pid-file {shown_name(pid_file)!r}: no process {int(text)}")
        return False
    except PermissionError:
        print_error(f"--pid-file {shown_name(pid_file)!r}: not allowed to signal process {int(text)}")
        return False
    return True


def _watch(args: argparse.Namespace, template: Template, store: SecretStore, dest: Path) -> int:
    watch = RotationWatch(store, template.distinct_keys, poll=poll_interval(args.refresh), settle=SETTLE)
    watch.start()
    try:
        while True:
            if not watch.wait(1.0):
                continue
            rendered = _render(template, store, args.template)
            if isinstance(rendered, int):
                notice(f"{shown_name(args.dest)} was not rendered again; it keeps the previous values")
                continue
            data, values = rendered
            try:
                changed = _write_if_changed(dest, data, args.mode)
            except CliError as exc:
                print_error(str(exc))
                continue
            if changed:
                notice(f"{shown_name(args.dest)} rendered with rotated secrets")
                _tell(args, values)
    finally:
        watch.close()


class _StopSignals:
    """Turns SIGTERM and SIGINT into :class:`_Stopped`, held back while a reload command runs.

    A reload killed halfway can leave the program it reloads half-configured, and its output
    (masked) would be lost; the stop waits for it, which ``EXEC_TIMEOUT`` bounds.
    """

    def __init__(self) -> None:
        self._holding = False
        self._pending: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self._stop)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        if self._holding:
            self._pending = signum
            return
        raise _Stopped(signum)

    @contextmanager
    def held(self) -> Iterator[None]:
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
            pending, self._pending = self._pending, None
            if pending is not None:
                raise _Stopped(pending)


_signals = _StopSignals()
