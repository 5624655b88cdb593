"""``.env`` files, parsed with python-dotenv and never exported into ``os.environ``."""

from __future__ import annotations

import io
import os
from pathlib import Path

from .._backend import Fetched
from .._errors import ConfigurationError, SecretNotFound
from .._refs import SecretRef

__all__ = ["DotenvBackend"]


class DotenvBackend:
    """Reads keys of a ``.env`` file.

    ``dotenv://API_KEY`` reads the backend's file (``./.env`` of the working directory
    when the backend was built); ``dotenv://path/to/.env#API_KEY`` reads another file,
    relative to that same directory. A malformed line is an error that names the file
    and the line, not a key that silently goes missing.
    """

    scheme = "dotenv"
    #: Query options this backend accepts: none.
    options: frozenset[str] = frozenset()
    #: Read on this machine: the store re-reads it about once a second (a parse is
    #: reused while the file's size, mtime and inode are unchanged).
    local = True
    #: Like the environment: configuration unless the key's name marks a secret.
    configuration = True

    @staticmethod
    def consumes_field(ref: SecretRef) -> bool:
        """``path/to/.env#KEY`` names a key of a file; ``KEY#a.b`` is a field of a JSON value."""
        return ref.field is not None and _is_file_path(ref.path)

    def __init__(
        self,
        path: str | os.PathLike[str] = ".env",
        *,
        encoding: str = "utf-8",
        interpolate: bool = True,
    ) -> None:
        self.path = Path(path).absolute()
        self.encoding = encoding
        self.interpolate = interpolate
        self._parsed: dict[Path, tuple[tuple[int, int, int, int], dict[str, str | None]]] = {}

    def __repr__(self) -> str:
        return f"DotenvBackend({str(self.path)!r})"

    def fetch(self, ref: SecretRef) -> Fetched:
        if self.consumes_field(ref):
            assert ref.field is not None
            file, key = self.path.parent / ref.path, ref.field
        else:
            file, key = self.path, ref.path
        values = self._parse(file)
        value = values.get(key)
        if value is None:
            raise SecretNotFound(key if file == self.path else f"{ref.path}#{key}")
        return Fetched(value)

    def _parse(self, file: Path) -> dict[str, str | None]:
        try:
            info = file.stat()
        except PermissionError:
            raise
        except (OSError, ValueError):  # absent, or a path no file can have (NUL, too long)
            self._parsed.pop(file, None)
            return {}
        signature = (info.st_mtime_ns, info.st_size, info.st_ino, info.st_ctime_ns)
        cached = self._parsed.get(file)
        if cached is not None and cached[0] == signature:
            return cached[1]
        values = self._read(file)
        if len(self._parsed) >= 64:  # paths come from references: keep the memo small
            self._parsed.clear()
        self._parsed[file] = (signature, values)
        return values

    def values(self) -> dict[str, str]:
        """Every key of the backend's file that has a value (for listing, not for reading secrets).

        Raises ``ConfigurationError`` for a malformed file, as ``fetch`` does.
        """
        return {key: value for key, value in self._parse(self.path).items() if value is not None}

    def _read(self, file: Path) -> dict[str, str | None]:
        from dotenv import dotenv_values
        from dotenv.parser import parse_stream

        try:
            text = file.read_text(encoding=self.encoding)
        except FileNotFoundError:
            return {}
        except UnicodeDecodeError:
            raise ConfigurationError(
                f"{str(file)!r} is not valid {self.encoding}; save it as {self.encoding} "
                "or pass DotenvBackend(encoding=...)"
            ) from None
        for binding in parse_stream(io.StringIO(text)):
            if binding.error:
                line = binding.original.line
                raise ConfigurationError(
                    f"{str(file)!r} line {line} cannot be parsed as KEY=VALUE; "
                    "fix or quote that line (nothing else in the file was used)"
                )
        return dotenv_values(stream=io.StringIO(text), interpolate=self.interpolate)

    def close(self) -> None:
        pass


def _is_file_path(path: str) -> bool:
    return "/" in path or "\\" in path or path.startswith(".") or path.endswith(".env")
