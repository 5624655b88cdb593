"""The SOPS backend passes the contract every backend passes, on files the real sops binary wrote."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretkit.backends.sops import SopsBackend
from secretkit.testing import BackendContract


class TestSopsContract(BackendContract):
    """Each secret is a binary SOPS file (its content is the value), encrypted for the test's age key."""

    supports_versions = False  # a file has one version: the current one

    @pytest.fixture
    def backend(self, sops, age_flags, tmp_path: Path) -> Iterator[SopsBackend]:
        self.sops, self.flags, self.root = sops, age_flags, tmp_path / "secrets"
        backend = SopsBackend()
        yield backend
        backend.close()

    def new_name(self) -> str:
        return str(self.root / f"contract-{uuid.uuid4().hex[:12]}.enc")

    def put(self, backend: SopsBackend, name: str, value: str | bytes) -> None:
        self.sops.encrypt(Path(name), value, fmt="binary", keys=self.flags)
