"""The one reader of local files: every ``.env``, secret, SOPS, token, JWT and age key file goes through it.

A file's path may come from configuration, a reference or an environment variable, so
what is at that path is not trusted to be a file that ends: a FIFO would block the reading
thread until some writer appears, ``/dev/zero`` never ends, a 10 GB log takes the
process's memory. Only regular files (symlinks to them are fine, as Kubernetes mounts
secrets) of at most ``max_bytes`` are read, opened without blocking. Callers map the
refusals to their own errors; ``tests/security/test_local_files.py`` keeps every other
module from opening a local file itself.
"""

from __future__ import annotations

import errno
import os
import stat

__all__ = ["MAX_FILE_BYTES", "UnsafeFile", "read_local_bytes", "read_local_text", "sync_directory"]

#: The largest local file read, in bytes. Secrets, ``.env`` files, SOPS files, tokens and
#: keys are small; a larger file is a mistake or an attack.
MAX_FILE_BYTES = 1024 * 1024

# Names no file can have: reported as "not there", as os.getenv reports a name it lacks.
_NO_SUCH_NAME = (errno.ENAMETOOLONG, errno.ENOTDIR, errno.ELOOP, errno.EINVAL)
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_CHUNK = 65536


class UnsafeFile(OSError):
    """The path names something that is not a bounded regular file; ``why`` says what.

    An ``OSError``, so code that treats an unreadable file as absent or broken keeps doing so.
    """

    def __init__(self, path: str, why: str) -> None:
        super().__init__(errno.EINVAL, why, path)
        self.why = why

    def __str__(self) -> str:
        return f"{self.filename!r} {self.why}"


def read_local_bytes(path: str | os.PathLike[str], *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The content of the regular file at ``path``, if it holds at most ``max_bytes``.

    Raises ``FileNotFoundError`` when nothing is there, the path is a directory or no file
    can have that name (an embedded NUL, too long); ``PermissionError`` when it may not be
    read; ``UnsafeFile`` for a FIFO, socket or device, or a file over the limit.
    """
    name = os.fspath(path)
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat below refuses it.
        fd = os.open(name, _FLAGS)
    except (IsADirectoryError, ValueError):  # ValueError: an embedded NUL
        raise FileNotFoundError(errno.ENOENT, "no such file", name) from None
    except OSError as exc:
        if exc.errno in _NO_SUCH_NAME:
            raise FileNotFoundError(errno.ENOENT, "no such file", name) from None
        raise
    try:
        # fstat of what was opened, not stat of the name: the path cannot be swapped in between.
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FileNotFoundError(errno.ENOENT, "no such file", name)
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeFile(name, "is not a regular file (a FIFO, socket or device)")
        if info.st_size > max_bytes:
            raise UnsafeFile(name, f"is larger than the {max_bytes}-byte limit")
        chunks: list[bytes] = []
        size = 0
        # Read to the limit, not to st_size: a file can grow while read, and /proc files say 0.
        while chunk := os.read(fd, min(_CHUNK, max_bytes + 1 - size)):
            size += len(chunk)
            if size > max_bytes:
                raise UnsafeFile(name, f"is larger than the {max_bytes}-byte limit")
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def read_local_text(
    path: str | os.PathLike[str], *, encoding: str = "utf-8", max_bytes: int = MAX_FILE_BYTES
) -> str:
    """``read_local_bytes`` decoded; ``UnicodeDecodeError`` when the bytes are not ``encoding``.

    Newlines are kept as the file has them (``\\r\\n`` included), as binary reads keep them.
    """
    return read_local_bytes(path, max_bytes=max_bytes).decode(encoding)


def sync_directory(path: str | os.PathLike[str]) -> None:
    """Flush a directory's entries to disk, so a file renamed into it survives a crash.

    Here because it opens a path (the directory itself, never a file's content): ``inject``'s
    atomic write is the caller. Where directories cannot be opened (Windows) it does nothing.
    """
    try:
        fd = os.open(
            os.fspath(path), os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
        )
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems refuse fsync on a directory; the rename itself has happened
    finally:
        os.close(fd)
