"""Secret files as Docker and Kubernetes mount them (``/run/secrets/<name>``)."""

from __future__ import annotations

import os
from pathlib import Path

from .._backend import Fetched
from .._errors import SecretNotFound
from .._refs import SecretRef
from ._text import read_secret_file

__all__ = ["FileBackend"]


class FileBackend:
    """``file:///abs/path`` reads that file; a plain name reads ``<root>/<name>``.

    For plain names the lower-case file name is tried too (``DB_PASSWORD`` finds
    ``/run/secrets/db_password``, the Docker convention). One trailing newline is
    stripped; content that is not UTF-8 is returned as ``bytes``.
    """

    scheme = "file"

    def __init__(self, root: str | os.PathLike[str] = "/run/secrets") -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FileBackend({str(self.root)!r})"

    def fetch(self, ref: SecretRef) -> Fetched:
        path = ref.path
        if path.startswith("/") or (os.sep != "/" and Path(path).is_absolute()):
            candidates = [Path(path)]
        else:
            # A plain name must not walk out of the secrets directory.
            if "/" in path or "\\" in path or path in ("", ".", ".."):
                raise SecretNotFound(path)
            candidates = [self.root / path]
            if path.lower() != path:
                candidates.append(self.root / path.lower())
        for candidate in candidates:
            try:
                return Fetched(read_secret_file(candidate, scheme=self.scheme, name=path))
            except FileNotFoundError:
                continue
        raise SecretNotFound(path)

    def close(self) -> None:
        pass
