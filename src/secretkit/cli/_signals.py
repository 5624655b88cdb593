"""Signals sent to ``secretkit run`` passed on to its child, so it works as an entrypoint."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from types import FrameType
from typing import Any


class SignalForwarder:
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
