"""The child of ``run``, output masked; with ``--watch`` one at a time, stopped (TERM, grace, KILL).

The masker can grow while a child runs (a rotation adds the new values before the child is
told of them), so each pump reads it from a :class:`Masks` holder and carries its stream's
held-back tail over to the grown one: a value split across two reads around a rotation is
still masked whole.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from types import FrameType
from typing import IO

from .._redact import StreamRedactor
from ._exits import EXIT_CANNOT_EXECUTE, EXIT_COMMAND_NOT_FOUND, CliError
from ._output import shown_name
from ._signals import SignalForwarder

__all__ = ["Child", "Masks", "StopForwarder", "launch"]

#: Values kept masked across rotations: the newest this many, so months of hourly
#: rotations do not grow the matcher without bound. Old values stay masked for weeks.
MAX_MASKED = 2000


class Masks:
    """The values masked in every child's output: grows at each rotation, never shrinks (up to a bound)."""

    def __init__(self, values: list[object]) -> None:
        self._lock = threading.Lock()
        self._values = list(values)
        self._current: StreamRedactor[bytes] = StreamRedactor(self._values)
        self.generation = 0

    def add(self, values: list[object]) -> None:
        with self._lock:
            self._values.extend(values)
            del self._values[: max(0, len(self._values) - MAX_MASKED)]
            self._current = StreamRedactor(self._values)
            self.generation += 1

    def current(self) -> tuple[int, StreamRedactor[bytes]]:
        with self._lock:
            return self.generation, self._current


def _continued(old: StreamRedactor[bytes], grown: StreamRedactor[bytes]) -> StreamRedactor[bytes]:
    """``grown``'s values, carrying on ``old``'s stream: its held-back tail and half-read UTF-8."""
    # The tail is held because it may start a value; the grown set holds every old value,
    # so it is held (or masked) there just the same.
    return grown.continuing(old)


class StopForwarder(SignalForwarder):
    """The forwarder of ``run``, which also remembers that the user asked the child to stop.

    After SIGINT, SIGTERM or SIGHUP reached us, a child that exits is never restarted: the
    signal was meant for the command, not for one of its incarnations.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stop_signal: int | None = None

    def detach(self) -> None:
        """Between two children: a signal now is kept and given to the next (if one starts)."""
        self._proc = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
        super()._handle(signum, frame)


def launch(argv: list[str], env: dict[str, str], *, piped: bool) -> subprocess.Popen[bytes]:
    """Start the command; failures to start become the exit codes ``run`` documents (126, 127)."""
    pipe = subprocess.PIPE if piped else None
    try:
        return subprocess.Popen(argv, env=env, stdout=pipe, stderr=pipe)  # noqa: S603 - the user's command
    except FileNotFoundError:
        raise CliError(f"command not found: {shown_name(argv[0])}", EXIT_COMMAND_NOT_FOUND) from None
    except PermissionError:
        raise CliError(
            f"cannot execute {shown_name(argv[0])}: permission denied", EXIT_CANNOT_EXECUTE
        ) from None
    except OSError as exc:
        raise CliError(
            f"cannot execute {shown_name(argv[0])}: {exc.strerror or exc}", EXIT_CANNOT_EXECUTE
        ) from None
    except ValueError as exc:  # a NUL in an argument ("embedded null byte")
        raise CliError(f"cannot execute {shown_name(argv[0])}: {exc}", EXIT_CANNOT_EXECUTE) from None


class Child:
    """One run of the command, with the threads that pass its output on, masked."""

    def __init__(self, argv: list[str], env: dict[str, str], masks: Masks | None) -> None:
        self.started = time.monotonic()
        self.proc = launch(argv, env, piped=masks is not None)
        self._pumps: list[threading.Thread] = []
        if masks is not None:
            assert self.proc.stdout is not None and self.proc.stderr is not None
            self._pumps = [
                _start_pump(self.proc.stdout, sys.stdout, masks),
                _start_pump(self.proc.stderr, sys.stderr, masks),
            ]

    def poll(self) -> int | None:
        return self.proc.poll()

    def send(self, signum: int) -> None:
        try:
            self.proc.send_signal(signum)
        except (ProcessLookupError, OSError):
            pass  # it has exited already

    def stop(self, grace: float) -> None:
        """SIGTERM, up to ``grace`` seconds to exit, then SIGKILL; returns once it has exited."""
        if self.proc.poll() is None:
            self.send(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        # Its last words are passed on, but a grandchild holding the pipes cannot hold a restart.
        self.drain(timeout=1.0)

    def drain(self, timeout: float | None = None) -> None:
        for pump in self._pumps:
            pump.join(timeout)


def _start_pump(source: IO[bytes], target: IO[str] | None, masks: Masks) -> threading.Thread:
    thread = threading.Thread(target=_pump, args=(source, target, masks), name="secretkit-mask", daemon=True)
    thread.start()
    return thread


def _pump(source: IO[bytes], target: IO[str] | None, masks: Masks) -> None:
    out: IO[bytes] | None = getattr(target, "buffer", None)
    fd = source.fileno()
    generation, masker = masks.current()
    masker = masker.clone()
    try:
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            if masks.generation != generation:
                generation, grown = masks.current()
                masker = _continued(masker, grown)
            if not _emit(out, masker.feed(data)):
                # Our reader has gone: closing the pipe lets the child see EPIPE/SIGPIPE
                # as it would without us in between, instead of writing into a void forever.
                return
        _emit(out, masker.flush())
    finally:
        source.close()


def _emit(out: IO[bytes] | None, data: bytes) -> bool:
    if out is None or not data:
        return True
    try:
        out.write(data)
        out.flush()
    except (OSError, ValueError):
        return False
    return True
