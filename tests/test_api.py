"""The module-level API over the default store: get_secret, getenv, environ, configure,
aget_secret, live, on_rotate and refresh_on_auth_error."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import secretkit
from secretkit import SecretNotFound, SecretStore
from secretkit.backends import DotenvBackend, EnvBackend, FileBackend, MemoryBackend
from secretkit.testing import FakeClock, MemorySecrets

pytestmark = pytest.mark.usefixtures("isolated_default")


def test_default_chain_is_env_then_dotenv_then_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """configure() builds env -> ./.env -> /run/secrets, reading .env of the working directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("FROM_DOTENV=dotenv-value\nBOTH=dotenv-loses\n")
    monkeypatch.setenv("BOTH", "env-wins")
    store = secretkit.configure()
    assert [type(b) for b in store.backends] == [EnvBackend, DotenvBackend, FileBackend]
    assert secretkit.get_secret("FROM_DOTENV").reveal() == "dotenv-value"
    assert secretkit.get_secret("BOTH").reveal() == "env-wins"
    assert "FROM_DOTENV" not in os.environ  # parsed, never exported


def test_getenv_is_a_drop_in_for_os_getenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """getenv returns str or the default, like os.getenv."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SK_TEST_PRESENT", "value")
    secretkit.configure()
    assert secretkit.getenv("SK_TEST_PRESENT") == os.getenv("SK_TEST_PRESENT") == "value"
    assert secretkit.getenv("SK_TEST_ABSENT") is None
    assert secretkit.getenv("SK_TEST_ABSENT", "fallback") == "fallback"


def test_environ_is_a_read_only_mapping_with_key_errors(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """environ[...] returns str, raises KeyError when missing, lists env and .env keys, refuses writes."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SK_DOTENV_ONLY=x\n")
    monkeypatch.setenv("SK_TEST_PRESENT", "value")
    secretkit.configure()
    env = secretkit.environ
    assert env["SK_TEST_PRESENT"] == "value"
    with pytest.raises(KeyError):
        env["SK_TEST_ABSENT"]
    assert env.get("SK_TEST_ABSENT", "d") == "d"
    assert "SK_TEST_PRESENT" in env and "SK_TEST_ABSENT" not in env
    assert "SK_DOTENV_ONLY" in set(env) and "SK_TEST_PRESENT" in set(env)
    with pytest.raises(TypeError):
        env["X"] = "y"  # type: ignore[index]


def test_environ_resolves_a_reference_held_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """environ['DB_PASSWORD'] gives the secret a reference points to, not the reference."""
    monkeypatch.setenv("SK_DB_PASSWORD", "memory://db#password")
    memory = MemoryBackend({"db": '{"password": "resolved-pw"}'})
    secretkit.configure(backends=[EnvBackend()], reference_backends=[memory])
    assert secretkit.environ["SK_DB_PASSWORD"] == "resolved-pw"
    assert secretkit.getenv("SK_DB_PASSWORD") == "resolved-pw"


def test_configure_replaces_and_closes_the_previous_store() -> None:
    """configure(store) installs a store; the previous default is closed."""
    first_backend = MemoryBackend({"K": "first"})
    first = secretkit.configure(backends=[first_backend])
    assert secretkit.get_secret("K").reveal() == "first"
    second = SecretStore([MemoryBackend({"K": "second"})])
    assert secretkit.configure(second) is second
    assert secretkit.get_secret("K").reveal() == "second"
    assert first_backend.closed and first is not second
    with pytest.raises(TypeError):
        secretkit.configure(second, ttl=3)


async def test_aget_secret_shares_the_cache_and_does_not_block_the_loop() -> None:
    """aget_secret resolves in a worker thread; the loop keeps running while a fetch is slow."""
    backend = MemoryBackend({"K": "async-value"}, delay=0.2)
    secretkit.configure(backends=[backend])
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    results = await asyncio.gather(*(secretkit.aget_secret("K") for _ in range(10)))
    task.cancel()
    assert [r.reveal() for r in results] == ["async-value"] * 10
    assert backend.calls == 1  # the same single flight as sync readers
    assert ticks >= 5  # the loop ran during the 200 ms fetch
    assert secretkit.get_secret("K") is results[0]


def test_live_and_on_rotate_act_on_the_default_store() -> None:
    """secretkit.live and secretkit.on_rotate use the default store."""
    clock = FakeClock()
    backend = MemoryBackend({"K": "v1"})
    secretkit.configure(backends=[backend], ttl=10, jitter=0, refresh_ahead=1.0, clock=clock)
    handle = secretkit.live("K")
    seen: list[str] = []
    secretkit.on_rotate("K", lambda old, new: seen.append(new.reveal()))
    assert handle.reveal() == "v1"
    backend.set("K", "v2")
    clock.advance(11)
    assert handle.reveal() == "v2"
    assert seen == ["v2"]


class AuthError(Exception):
    pass


class FakeApi:
    """An API that accepts only the current key of a backend."""

    def __init__(self, backend: MemoryBackend) -> None:
        self.backend = backend
        self.calls = 0

    def call(self, key: str) -> str:
        self.calls += 1
        if key != self.backend.fetch(secretkit.SecretRef("memory", "API_KEY")).value:
            raise AuthError("401")
        return "ok"


def test_refresh_on_auth_error_retries_once_with_the_rotated_secret() -> None:
    """On the auth error the secret is refetched; the call is retried once because it changed."""
    backend = MemoryBackend({"API_KEY": "old-key"})
    secretkit.configure(backends=[backend])
    api = FakeApi(backend)
    rotations: list[str] = []
    secretkit.on_rotate("API_KEY", lambda old, new: rotations.append(new.version or ""))

    @secretkit.refresh_on_auth_error("API_KEY", exceptions=AuthError)
    def charge() -> str:
        return api.call(secretkit.get_secret("API_KEY").reveal())

    assert charge() == "ok"
    backend.set("API_KEY", "new-key")  # rotated at the source; the cache still has old-key
    assert charge() == "ok"
    assert api.calls == 3 and rotations == ["2"]


def test_refresh_on_auth_error_reraises_when_the_secret_did_not_change() -> None:
    """If the refetched secret is the same, the original error propagates (no retry loop)."""
    backend = MemoryBackend({"API_KEY": "key"})
    secretkit.configure(backends=[backend])
    calls = 0

    @secretkit.refresh_on_auth_error("API_KEY", exceptions=AuthError)
    def always_fails() -> None:
        nonlocal calls
        calls += 1
        raise AuthError("revoked")

    with pytest.raises(AuthError):
        always_fails()
    assert calls == 1


async def test_refresh_on_auth_error_wraps_coroutines() -> None:
    """The decorator works on async functions too."""
    backend = MemoryBackend({"API_KEY": "old-key"})
    secretkit.configure(backends=[backend])
    api = FakeApi(backend)

    @secretkit.refresh_on_auth_error("API_KEY", exceptions=AuthError)
    async def call() -> str:
        return api.call((await secretkit.aget_secret("API_KEY")).reveal())

    await call()
    backend.set("API_KEY", "new-key")
    assert await call() == "ok"


def test_refresh_on_auth_error_as_a_retry_loop_and_a_with_block() -> None:
    """Iterating gives attempts that retry a block once; a plain with-block refreshes and re-raises."""
    backend = MemoryBackend({"API_KEY": "old-key"})
    secretkit.configure(backends=[backend])
    api = FakeApi(backend)
    secretkit.get_secret("API_KEY")
    backend.set("API_KEY", "new-key")
    results = []
    for attempt in secretkit.refresh_on_auth_error("API_KEY", exceptions=AuthError):
        with attempt:
            results.append(api.call(secretkit.get_secret("API_KEY").reveal()))
    assert results == ["ok"] and api.calls == 2

    backend.set("API_KEY", "newer-key")
    with pytest.raises(AuthError), secretkit.refresh_on_auth_error("API_KEY", exceptions=AuthError):
        api.call(secretkit.get_secret("API_KEY").reveal())
    assert secretkit.get_secret("API_KEY").reveal() == "newer-key"


def test_the_pytest_fixture_swaps_the_default_store(secretkit_memory: MemorySecrets) -> None:
    """secretkit_memory gives a store of its own for one test; set() is seen at once."""
    secretkit_memory.set("PAYMENT_KEY", "test-key-1")
    assert secretkit.get_secret("PAYMENT_KEY").reveal() == "test-key-1"
    secretkit_memory["PAYMENT_KEY"] = "test-key-2"
    assert secretkit.getenv("PAYMENT_KEY") == "test-key-2"
    with pytest.raises(SecretNotFound):
        secretkit.get_secret("HOME")  # the environment is not consulted


def test_the_default_store_is_built_once_under_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads racing on the first get_secret share one default store."""
    monkeypatch.setenv("SK_RACE", "v")
    stores: list[Any] = []
    barrier = threading.Barrier(8)

    def first_use() -> None:
        barrier.wait()
        secretkit.get_secret("SK_RACE")
        stores.append(secretkit.default_store())

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len({id(s) for s in stores}) == 1
