"""Secret files as Docker and Kubernetes mount them (``/run/secrets/<name>``)."""

from __future__ import annotations

import os
from pathlib import Path

from .._backend import Fetched
from .._errors import SecretNotFound
from .._refs import SecretRef
from ._text import MAX_FILE_BYTES, read_secret_file

__all__ = ["FileBackend"]


class FileBackend:
    """``file:///abs/path`` reads that file; a plain name reads ``<root>/<name>``.

    For plain names the lower-case file name is tried too (``DB_PASSWORD`` finds
    ``/run/secrets/db_password``, the Docker convention). One trailing newline is
    stripped; content that is not UTF-8 is returned as ``bytes``. Only regular files of
    at most ``max_bytes`` (1 MiB by default) are read.
    """

    scheme = "file"
    #: Query options this backend accepts: none.
    options: frozenset[str] = frozenset()
    #: Read on this machine: the store re-reads it about once a second, so a secret
    #: rewritten in place (Kubernetes' mounted-volume rotation) is seen without a restart.
    local = True

    def __init__(
        self, root: str | os.PathLike[str] = "/run/secrets", *, max_bytes: int = MAX_FILE_BYTES
    ) -> None:
        self.root = Path(root)
        self.max_bytes = max_bytes

    def __repr__(self) -> str:
        return f"FileBackend({str(self.root)!r})"

    def fetch(self, ref: SecretRef) -> Fetched:
        path = ref.path
        if path.startswith("/") or (os.sep != "/" and Path(path).is_absolute()):
            candidates = [Path(path)]
        else:
            # A plain name must not walk out of the secrets directory.
            if "/" in path or "\\" in path or "\0" in path or path in ("", ".", ".."):
                raise SecretNotFound(path)
            candidates = [self.root / path]
            if path.lower() != path:
                candidates.append(self.root / path.lower())
        for candidate in candidates:
            try:
                value = read_secret_file(candidate, scheme=self.scheme, name=path, max_bytes=self.max_bytes)
                return Fetched(value, metadata={"file": str(candidate)})
            except FileNotFoundError:
                continue
        raise SecretNotFound(path)

    def close(self) -> None:
        pass
