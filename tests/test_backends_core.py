"""The core backends (memory, env, dotenv, file) pass the shared contract."""

from __future__ import annotations

from pathlib import Path

import pytest

from secretkit import SecretRef
from secretkit.backends import DotenvBackend, EnvBackend, FileBackend, MemoryBackend
from secretkit.testing import BackendContract


class TestMemoryBackend(BackendContract):
    @pytest.fixture
    def backend(self) -> MemoryBackend:
        return MemoryBackend()

    def put(self, backend: MemoryBackend, name: str, value: str | bytes) -> None:  # type: ignore[override]
        backend.set(name, value)


class TestEnvBackend(BackendContract):
    supports_versions = False
    supports_binary = False

    @pytest.fixture
    def backend(self) -> EnvBackend:
        self.environ: dict[str, str] = {}
        return EnvBackend(self.environ)

    def put(self, backend: EnvBackend, name: str, value: str | bytes) -> None:  # type: ignore[override]
        assert isinstance(value, str)
        self.environ[name] = value


class TestDotenvBackend(BackendContract):
    supports_versions = False
    supports_binary = False

    @pytest.fixture
    def backend(self, tmp_path: Path) -> DotenvBackend:
        self.file = tmp_path / ".env"
        self.file.write_text("")
        return DotenvBackend(self.file)

    def put(self, backend: DotenvBackend, name: str, value: str | bytes) -> None:  # type: ignore[override]
        assert isinstance(value, str)
        from dotenv import set_key

        set_key(str(self.file), name, value, quote_mode="always")


class TestFileBackend(BackendContract):
    supports_versions = False

    @pytest.fixture
    def backend(self, tmp_path: Path) -> FileBackend:
        self.root = tmp_path
        return FileBackend(tmp_path)

    def put(self, backend: FileBackend, name: str, value: str | bytes) -> None:  # type: ignore[override]
        data = value.encode() if isinstance(value, str) else value
        (self.root / name).write_bytes(data + b"\n")

    def ref(self, backend: FileBackend, name: str, **options: str) -> SecretRef:  # type: ignore[override]
        return SecretRef("file", str(self.root / name), options=options)
