"""Helpers the file-reading backends share."""

from __future__ import annotations

from pathlib import Path

from .._errors import AccessDenied


def read_secret_file(path: Path, *, scheme: str, name: str) -> str | bytes:
    """The file's content, one trailing newline stripped; ``bytes`` when it is not UTF-8.

    Raises FileNotFoundError when the file is absent, so callers decide what absence means.
    """
    try:
        data = path.read_bytes()
    except PermissionError as exc:
        err = AccessDenied(
            f"secret {name!r}: the {scheme} backend may not read {str(path)!r} "
            "(permission denied); check the file's owner and mode"
        )
        err.name, err.backend = name, scheme
        raise err from exc
    except IsADirectoryError:
        raise FileNotFoundError(str(path)) from None
    # Editors and `echo` add one newline; the secret does not include it.
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data
