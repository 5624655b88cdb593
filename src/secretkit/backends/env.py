"""The process environment, with the ``NAME_FILE`` convention of Docker images."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from .._backend import Fetched
from .._errors import ConfigurationError, SecretNotFound
from .._refs import SecretRef
from ._text import read_secret_file

__all__ = ["EnvBackend"]


class EnvBackend:
    """Reads ``NAME`` from the environment, or the file that ``NAME_FILE`` points to.

    The environment is read on every fetch (the store caches), so a changed variable is
    seen after the store's TTL.
    """

    scheme = "env"

    def __init__(self, environ: Mapping[str, str] | None = None, *, file_suffix: str = "_FILE") -> None:
        self._environ = os.environ if environ is None else environ
        self.file_suffix = file_suffix

    def __repr__(self) -> str:
        return "EnvBackend()"

    def fetch(self, ref: SecretRef) -> Fetched:
        name = ref.path
        value = self._environ.get(name)
        if value is not None:
            return Fetched(value)
        if self.file_suffix:
            file_var = name + self.file_suffix
            file_path = self._environ.get(file_var)
            if file_path:
                try:
                    return Fetched(read_secret_file(Path(file_path), scheme=self.scheme, name=name))
                except FileNotFoundError:
                    raise ConfigurationError(
                        f"secret {name!r}: {file_var} points to {file_path!r}, which does not exist; "
                        f"fix the path or unset {file_var}"
                    ) from None
        raise SecretNotFound(name)

    def close(self) -> None:
        pass
