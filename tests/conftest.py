"""Fixtures shared by the core tests: a fake clock and an isolated default store."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import secretkit
from secretkit import _api
from secretkit.testing import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def isolated_default() -> Iterator[None]:
    """Whatever a test does to the default store is undone after it."""
    previous = _api._swap(None)
    try:
        yield
    finally:
        current = _api._swap(previous)
        if current is not None and current is not previous:
            current.close()


@pytest.fixture
def no_secretkit_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """Run in an empty directory, so no stray .env is read."""
    monkeypatch.chdir(str(tmp_path))


__all__ = ["secretkit"]
