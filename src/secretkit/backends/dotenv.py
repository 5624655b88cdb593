"""``.env`` files, parsed with python-dotenv and never exported into ``os.environ``."""

from __future__ import annotations

import io
import os
import re
from collections import ChainMap
from pathlib import Path
from typing import cast

from .._backend import Fetched
from .._errors import ConfigurationError, SecretNotFound, shown
from .._localfile import UnsafeFile, read_local_text
from .._refs import SecretRef

__all__ = ["DotenvBackend"]

#: The most lines (entries, comments, blank runs) read from one file: python-dotenv's parser
#: takes ~20 µs a line, and a file is re-read whenever it changes.
MAX_LINES = 10_000
#: The most characters ``${VAR}`` expansion may produce over a whole file.
MAX_EXPANDED = 4 * 1024 * 1024
#: The most characters python-dotenv's ``${...}`` pattern may have to read over a whole file.
MAX_SCAN = 4 * 1024 * 1024
_SPACES = re.compile(r"[^\S\n]{2,}")
_SPACE_BUDGET = 32_000_000  # regex steps: ~0.2 s at ~5 ns a step


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
        from dotenv.parser import parse_stream

        try:
            raw = read_local_text(file, encoding=self.encoding)
        except FileNotFoundError:
            return {}
        except UnsafeFile as exc:
            raise ConfigurationError(
                f"{str(file)!r} {exc.why}; point DotenvBackend at a regular .env file"
            ) from None
        except UnicodeDecodeError:
            raise ConfigurationError(
                f"{str(file)!r} is not valid {self.encoding}; save it as {self.encoding} "
                "or pass DotenvBackend(encoding=...)"
            ) from None
        # Universal newlines, as a file opened in text mode reads (a quoted value keeps "\n").
        text = raw.replace("\r\n", "\n").replace("\r", "\n")
        # python-dotenv strips an inline comment with r"\s+#.*", which rescans a run of spaces
        # from each of its characters: 200,000 spaces would take hours. Short runs cost nothing.
        if sum(len(run) ** 2 for run in _SPACES.findall(text)) > _SPACE_BUDGET:
            raise ConfigurationError(
                f"{str(file)!r} holds runs of spaces too long for a .env file; shorten them "
                "(nothing in it was used)"
            )
        entries: list[tuple[str, str | None]] = []
        for count, binding in enumerate(parse_stream(io.StringIO(text))):
            if count >= MAX_LINES:
                raise ConfigurationError(
                    f"{str(file)!r} has more than {MAX_LINES} lines; a .env file that large is not "
                    "configuration (nothing in it was used)"
                )
            if binding.error:
                line = binding.original.line
                raise ConfigurationError(
                    f"{str(file)!r} line {line} cannot be parsed as KEY=VALUE; "
                    "fix or quote that line (nothing else in the file was used)"
                )
            if binding.key is not None:
                entries.append((binding.key, binding.value))
        if not self.interpolate:
            return dict(entries)
        return _interpolated(file, entries)

    def close(self) -> None:
        pass


def _interpolated(file: Path, entries: list[tuple[str, str | None]]) -> dict[str, str | None]:
    """python-dotenv's ``${VAR}`` / ``${VAR:-default}`` expansion, bounded.

    The file's earlier entries win over the environment, as ``dotenv_values`` does. Its
    resolver copies the environment and every entry so far for each line, and its pattern
    rescans to the next ``}`` from every ``${``: both quadratic in the file. Here the
    lookups are a view and the rescans are counted before the pattern runs, and the
    expanded text is capped, so ``B=${A}${A}...`` repeated cannot grow without end.
    """
    from dotenv.variables import parse_variables

    values: dict[str, str | None] = {}
    env = ChainMap(values, cast("dict[str, str | None]", os.environ))
    scanned = expanded = 0
    for key, value in entries:
        if value is None or "${" not in value:
            values[key] = value
            expanded += len(value or "")
            continue
        scanned += _scan_cost(value, MAX_SCAN - scanned)
        if scanned > MAX_SCAN:
            raise _too_large(file, key, "holds too many ${ without a closing }")
        parts: list[str] = []
        size = 0
        for atom in parse_variables(value):
            part = atom.resolve(env)
            size += len(part)
            if size > MAX_EXPANDED or expanded + size > MAX_EXPANDED:
                raise _too_large(file, key, f"expands past {MAX_EXPANDED} characters")
            parts.append(part)
        expanded += size
        values[key] = "".join(parts)
    return values


def _scan_cost(value: str, budget: int) -> int:
    """An upper bound on the characters python-dotenv's ``${...}`` pattern reads in ``value``.

    From each ``${`` it reads at most to the next ``}`` (or the end): summed in one pass,
    which stops once past ``budget``.
    """
    cost = 0
    start = value.find("${")
    close = -1
    while start >= 0:
        if close < start:
            close = value.find("}", start + 2)
            if close < 0:
                close = len(value)
        cost += close - start
        if cost > budget:
            break
        start = value.find("${", start + 1)
    return cost


def _too_large(file: Path, key: str, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"{str(file)!r}: the entry {shown(key)} {why}; fix the file, or build "
        "DotenvBackend(interpolate=False) (nothing in it was used)"
    )


def _is_file_path(path: str) -> bool:
    return "/" in path or "\\" in path or path.startswith(".") or path.endswith(".env")
