"""A rendered file replaced whole: temporary file in the same directory, fsync, rename, directory fsync.

A reader (PgBouncer re-reading its ``auth_file`` on SIGHUP, nginx on reload) sees the old
file or the new one, never half of one. The temporary file is created 0600 (``mkstemp``),
takes the destination's owner and the requested mode before it is renamed, and is removed
on every error, interruption included: no plaintext copy is left beside the destination.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .._localfile import sync_directory
from ._exits import EXIT_CONFIG, CliError
from ._output import shown_name

__all__ = ["TEMP_SUFFIX", "remove_leftovers", "write_atomic"]

#: How a temporary file of ours ends (it starts with ``.DEST-NAME.``), so a run after a
#: crash (SIGKILL, power loss mid-write) can find and remove what the crashed one left.
TEMP_SUFFIX = ".secretkit-tmp"


def write_atomic(dest: Path, data: bytes, mode: int) -> None:
    """Replace ``dest`` with ``data``, mode ``mode``, keeping the owner and group it had."""
    directory = dest.parent
    try:
        before = os.lstat(dest)
    except FileNotFoundError:
        before = None
    except OSError as exc:
        raise CliError(f"cannot write {shown_name(str(dest))}: {exc.strerror or exc}", EXIT_CONFIG) from None
    if before is not None and stat.S_ISDIR(before.st_mode):
        raise CliError(f"cannot write {shown_name(str(dest))}: it is a directory", EXIT_CONFIG)
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=TEMP_SUFFIX, dir=directory)
    except OSError as exc:
        raise CliError(
            f"cannot write in {shown_name(str(directory))}: {exc.strerror or exc}", EXIT_CONFIG
        ) from None
    try:
        try:
            if before is not None and (before.st_uid, before.st_gid) != (os.geteuid(), os.getegid()):
                _keep_owner(fd, before, dest)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        # A symlink at dest is replaced, not followed: the link cannot send the secret elsewhere.
        os.replace(temp, dest)
    except BaseException as exc:
        try:
            os.unlink(temp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise CliError(
                f"cannot write {shown_name(str(dest))}: {exc.strerror or exc}", EXIT_CONFIG
            ) from None
        raise
    sync_directory(directory)


def _keep_owner(fd: int, before: os.stat_result, dest: Path) -> None:
    try:
        os.fchown(fd, before.st_uid, before.st_gid)
    except PermissionError:
        # Writing it under our own owner could leave its reader unable to read it: say so instead.
        raise CliError(
            f"cannot keep the owner of {shown_name(str(dest))} (uid {before.st_uid}, gid {before.st_gid}): "
            "run inject as that user, or as root",
            EXIT_CONFIG,
        ) from None


def remove_leftovers(dest: Path) -> int:
    """Remove temporary files a crashed run left beside ``dest``; returns how many."""
    prefix = f".{dest.name}."
    removed = 0
    try:
        names = os.listdir(dest.parent)
    except OSError:
        return 0
    for name in names:
        if name.startswith(prefix) and name.endswith(TEMP_SUFFIX):
            path = dest.parent / name
            try:
                info = os.lstat(path)
                if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid():
                    os.unlink(path)
                    removed += 1
            except OSError:
                continue
    return removed
