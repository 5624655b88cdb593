"""What the ``file`` backend and the ``NAME_FILE`` convention make of a secret file: one value, its errors."""

from __future__ import annotations

from pathlib import Path

from .._errors import AccessDenied, ConfigurationError, shown
from .._localfile import MAX_FILE_BYTES, UnsafeFile, read_local_bytes

__all__ = ["MAX_FILE_BYTES", "read_secret_file"]


def read_secret_file(path: Path, *, scheme: str, name: str, max_bytes: int = MAX_FILE_BYTES) -> str | bytes:
    """The file's content, one trailing newline stripped; ``bytes`` when it is not UTF-8.

    Read through the bounded local reader (regular files only, at most ``max_bytes``).
    Raises FileNotFoundError when the file is absent or the name cannot be a file, so
    callers decide what absence means; ``AccessDenied`` or ``ConfigurationError`` naming the
    secret otherwise.
    """
    try:
        data = read_local_bytes(path, max_bytes=max_bytes)
    except PermissionError as exc:
        err = AccessDenied(
            f"secret {shown(name)}: the {scheme} backend may not read {shown(str(path))} "
            "(permission denied); check the file's owner and mode"
        )
        err.name, err.backend = name, scheme
        raise err from exc
    except UnsafeFile as exc:
        refused = ConfigurationError(
            f"secret {shown(name)}: {shown(str(path))} {exc.why}; point the {scheme} backend at a "
            "regular secret file (or raise max_bytes)"
        )
        refused.name, refused.backend = name, scheme
        raise refused from None
    # Editors and `echo` add one newline; the secret does not include it.
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data
