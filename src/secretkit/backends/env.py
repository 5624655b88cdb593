"""The process environment, with the ``NAME_FILE`` convention of Docker images."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._backend import Fetched
from .._errors import ConfigurationError, SecretNotFound, shown
from .._refs import SecretRef
from ._text import MAX_FILE_BYTES, read_secret_file

__all__ = ["EnvBackend"]


class EnvBackend:
    """Reads ``NAME`` from the environment, or the file that ``NAME_FILE`` points to.

    The store reads the environment live: a variable set, changed or deleted is seen on
    the next read, as ``os.getenv`` sees it. A ``NAME_FILE`` secret file is re-read when
    it changes on disk.
    """

    scheme = "env"
    #: Query options this backend accepts: none.
    options: frozenset[str] = frozenset()
    #: Read in this process: never cached past a change (see :meth:`probe`).
    local = True
    #: Values are configuration unless they come from a file or through a reference: log
    #: redaction masks them only when the variable's name marks a secret.
    configuration = True

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        file_suffix: str = "_FILE",
        max_bytes: int = MAX_FILE_BYTES,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        self.file_suffix = file_suffix
        self.max_bytes = max_bytes
        # os.environ keeps its values in a dict of encoded bytes; reading that dict with a
        # pre-encoded key costs a sixth of os.environ[name], which makes a live read
        # cheaper than the cached one it replaces. Any other mapping is read as it is.
        data = getattr(self._environ, "_data", None)
        encode = getattr(self._environ, "encodekey", None)
        self._raw: dict[Any, Any] | None = data if type(data) is dict and callable(encode) else None
        self._encodekey = encode

    def __repr__(self) -> str:
        return "EnvBackend()"

    def probe(self, name: str) -> tuple[Any, Any, Any]:
        """``(d, key, raw)``: ``d.get(key) is raw`` for as long as the variable is unchanged.

        The store keeps these with a cached value and compares on every read, so the
        environment is read live at the cost of one dict lookup.
        """
        if self._raw is not None:
            try:
                key = self._encodekey(name)  # type: ignore[misc]
            except (UnicodeError, ValueError, TypeError):
                return self._environ, name, None
            return self._raw, key, self._raw.get(key)
        return self._environ, name, self._environ.get(name)

    def fetch(self, ref: SecretRef) -> Fetched:
        name = ref.path
        try:
            value = self._environ.get(name)
        except (UnicodeError, ValueError):  # a name os.environ cannot hold is one it lacks
            value = None
        if value is not None:
            return Fetched(value)
        if self.file_suffix:
            file_var = name + self.file_suffix
            try:
                file_path = self._environ.get(file_var)
            except (UnicodeError, ValueError):
                file_path = None
            if file_path:
                try:
                    content = read_secret_file(
                        Path(file_path), scheme=self.scheme, name=name, max_bytes=self.max_bytes
                    )
                except FileNotFoundError:
                    raise ConfigurationError(
                        f"secret {shown(name)}: {file_var} points to {shown(file_path)}, which does not "
                        f"exist; fix the path or unset {file_var}"
                    ) from None
                return Fetched(content, metadata={"file": file_path})
        raise SecretNotFound(name)

    def close(self) -> None:
        pass
