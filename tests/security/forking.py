"""A child forked while another thread holds a lock: what the fork-safety tests share."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import pytest

__all__ = ["fork_while_held"]


def fork_while_held(lock: AbstractContextManager[Any], in_child: Callable[[], bool], hung: str) -> None:
    """Fork while another thread holds ``lock``; ``in_child()`` must return True in the child.

    The thread never runs in the child, so the child's copy of the lock stays held unless
    the code under test re-creates it after a fork. A child that hangs is killed after 10
    seconds and the test fails with ``hung``.
    """
    acquired, release = threading.Event(), threading.Event()

    def hold_lock() -> None:
        with lock:
            acquired.set()
            release.wait(5)

    thread = threading.Thread(target=hold_lock)
    thread.start()
    acquired.wait(5)
    pid = os.fork()
    if pid == 0:  # the child: the thread that "holds" the lock never runs here
        code = 1
        try:
            code = 0 if in_child() else 2
        finally:
            os._exit(code)
    release.set()
    thread.join()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.01)
    os.kill(pid, 9)
    pytest.fail(hung)
