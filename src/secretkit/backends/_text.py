"""Helpers the file-reading backends share: safe reads of secret files."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .._errors import AccessDenied, ConfigurationError, shown

#: The largest secret file read, in bytes. Secrets are small; a larger file is a mistake or
#: an attack (``/dev/zero``), and reading it would take the process's memory.
MAX_FILE_BYTES = 1024 * 1024

# Names no file can have: reported as "not there", as os.getenv reports a name it lacks.
_NO_SUCH_NAME = (errno.ENAMETOOLONG, errno.ENOTDIR, errno.ELOOP, errno.EINVAL)


def read_secret_file(path: Path, *, scheme: str, name: str, max_bytes: int = MAX_FILE_BYTES) -> str | bytes:
    """The file's content, one trailing newline stripped; ``bytes`` when it is not UTF-8.

    Only regular files (through symlinks, as Kubernetes mounts them) of at most
    ``max_bytes`` are read: a FIFO would block every reader of the key, a device would
    never end. Raises FileNotFoundError when the file is absent or the name cannot be a
    file, so callers decide what absence means.
    """
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat below refuses it.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except PermissionError as exc:
        err = AccessDenied(
            f"secret {shown(name)}: the {scheme} backend may not read {shown(str(path))} "
            "(permission denied); check the file's owner and mode"
        )
        err.name, err.backend = name, scheme
        raise err from exc
    except IsADirectoryError:
        raise FileNotFoundError(str(path)) from None
    except ValueError:  # an embedded NUL
        raise FileNotFoundError(str(path)) from None
    except OSError as exc:
        if exc.errno in _NO_SUCH_NAME:
            raise FileNotFoundError(str(path)) from None
        raise
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise FileNotFoundError(str(path))
        if not stat.S_ISREG(info.st_mode):
            raise _refused(name, scheme, path, "is not a regular file (a FIFO, socket or device)")
        if info.st_size > max_bytes:
            raise _refused(name, scheme, path, f"is larger than the {max_bytes}-byte limit")
        chunks = []
        size = 0
        while chunk := os.read(fd, 65536):
            size += len(chunk)
            if size > max_bytes:  # grew while being read
                raise _refused(name, scheme, path, f"is larger than the {max_bytes}-byte limit")
            chunks.append(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    # Editors and `echo` add one newline; the secret does not include it.
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data


def _refused(name: str, scheme: str, path: Path, why: str) -> ConfigurationError:
    err = ConfigurationError(
        f"secret {shown(name)}: {shown(str(path))} {why}; point the {scheme} backend at a "
        "regular secret file (or raise max_bytes)"
    )
    err.name, err.backend = name, scheme
    return err
