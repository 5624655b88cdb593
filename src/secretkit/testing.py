"""Testing helpers: a fake clock, a pytest fixture, and the contract every backend passes.

The pytest plugin (registered through the ``pytest11`` entry point) provides the
``secretkit_memory`` fixture: the default store is swapped for an in-memory one for
one test and restored after, so an application's tests set secrets without touching
``os.environ``.

Backends, ours and third parties', subclass :class:`BackendContract`::

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def backend(self): return MyBackend(...)
        def put(self, backend, name, value): my_sdk.write(name, value)
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from . import _api
from ._backend import Backend, Fetched
from ._errors import SecretkitError, SecretNotFound
from ._refs import SecretRef
from ._secret import Secret
from ._store import SecretStore
from .backends.memory import MemoryBackend

__all__ = [
    "BackendContract",
    "CountingBackend",
    "FakeClock",
    "MemoryBackend",
    "MemorySecrets",
    "assert_no_value_in_error",
    "secretkit_memory",
]


class FakeClock:
    """A monotonic clock that moves only when told: pass it as ``SecretStore(clock=...)``."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


class CountingBackend:
    """Wraps a backend and counts calls to ``fetch`` (and ``fetch_many`` when it has one)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.scheme = inner.scheme
        self.fetch_calls = 0
        self.batch_calls = 0
        self._lock = threading.Lock()
        if hasattr(inner, "consumes_field"):
            self.consumes_field: Any = inner.consumes_field
        if callable(getattr(inner, "fetch_many", None)):
            self.fetch_many = self._fetch_many

    def fetch(self, ref: SecretRef) -> Fetched:
        with self._lock:
            self.fetch_calls += 1
        return self.inner.fetch(ref)

    def _fetch_many(self, refs: Any) -> Any:
        with self._lock:
            self.batch_calls += 1
        return self.inner.fetch_many(refs)  # type: ignore[attr-defined]

    def close(self) -> None:
        self.inner.close()


def assert_no_value_in_error(exc: BaseException, *values: str | bytes) -> None:
    """Fail if any of ``values`` shows in the error's text, repr, args or cause chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts = [str(current), repr(current), *(repr(a) for a in current.args)]
        for value in values:
            needle = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
            for text in texts:
                if needle and needle in text:
                    # Never print the value itself in the failure.
                    raise AssertionError(
                        f"a secret value ({len(needle)} chars) shows in {type(current).__name__}'s text"
                    )
        current = current.__cause__ or current.__context__


class MemorySecrets:
    """What the ``secretkit_memory`` fixture gives: set secrets, read the store's stats."""

    def __init__(self, store: SecretStore, backend: MemoryBackend) -> None:
        self.store = store
        self.backend = backend

    def set(self, name: str, value: str | bytes) -> None:
        """Set (or rotate) ``name``; the next read sees it."""
        self.backend.set(name, value)
        self.store.invalidate(name)

    def delete(self, name: str) -> None:
        self.backend.delete(name)
        self.store.invalidate(name)

    def __setitem__(self, name: str, value: str | bytes) -> None:
        self.set(name, value)


@pytest.fixture
def secretkit_memory() -> Iterator[MemorySecrets]:
    """Swap the default store for an in-memory one for this test, and restore it after."""
    backend = MemoryBackend()
    store = SecretStore([backend], negative_ttl=0)
    previous = _api._swap(store)
    try:
        yield MemorySecrets(store, backend)
    finally:
        _api._swap(previous)
        store.close()


class BackendContract:
    """The behaviour every backend must have. Subclass it in a test module.

    Provide a ``backend`` fixture and ``put(backend, name, value)`` that writes a new
    version of a secret into the real store behind the backend. Set
    ``supports_versions`` / ``supports_binary`` to ``False`` where the store has none.
    """

    supports_versions = True
    supports_binary = True

    # -- what subclasses provide ---------------------------------------------------------

    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError("a BackendContract subclass must define a `backend` fixture")

    def put(self, backend: Backend, name: str, value: str | bytes) -> None:
        raise NotImplementedError("a BackendContract subclass must implement put()")

    def new_name(self) -> str:
        """A name no other test uses (servers are shared across tests)."""
        return f"contract-{uuid.uuid4().hex[:12]}"

    def ref(self, backend: Backend, name: str, **options: str) -> SecretRef:
        """The reference that reads ``name`` from this backend."""
        return SecretRef(backend.scheme, name, options=options)

    def pinned(self, backend: Backend, name: str, version: str) -> SecretRef:
        """The reference that reads one version of ``name``."""
        return self.ref(backend, name, version=version)

    # -- the contract --------------------------------------------------------------------

    def test_fetch_returns_the_stored_value(self, backend: Backend) -> None:
        """A stored secret comes back as the same text."""
        name = self.new_name()
        self.put(backend, name, "s3cr3t-value-1")
        fetched = backend.fetch(self.ref(backend, name))
        assert isinstance(fetched, Fetched)
        assert fetched.value == "s3cr3t-value-1"

    def test_unicode_survives(self, backend: Backend) -> None:
        """Non-ASCII text comes back unchanged."""
        name = self.new_name()
        self.put(backend, name, "pässwörd-✓-密码")
        assert backend.fetch(self.ref(backend, name)).value == "pässwörd-✓-密码"

    def test_missing_secret_raises_secret_not_found(self, backend: Backend) -> None:
        """An absent secret raises SecretNotFound, not a vendor error."""
        with pytest.raises(SecretNotFound):
            backend.fetch(self.ref(backend, self.new_name()))

    def test_missing_secret_through_a_store_names_the_backend(self, backend: Backend) -> None:
        """Through a store, the not-found error names the backend that was asked."""
        store = SecretStore([backend], negative_ttl=0)
        name = self.new_name()
        with pytest.raises(SecretNotFound) as info:
            store.get(str(self.ref(backend, name)))
        assert backend.scheme in str(info.value)

    def test_binary_value_comes_back_as_bytes(self, backend: Backend) -> None:
        """A binary secret comes back as the same bytes."""
        if not self.supports_binary:
            pytest.skip("this backend stores text only")
        name = self.new_name()
        payload = b"\x00\xffbinary\x80\x81"
        self.put(backend, name, payload)
        assert backend.fetch(self.ref(backend, name)).value == payload

    def test_a_new_version_has_a_new_version_id(self, backend: Backend) -> None:
        """Writing a secret again gives a different version id, and the new value."""
        if not self.supports_versions:
            pytest.skip("this backend has no versions")
        name = self.new_name()
        self.put(backend, name, "first-value")
        first = backend.fetch(self.ref(backend, name))
        self.put(backend, name, "second-value")
        second = backend.fetch(self.ref(backend, name))
        assert first.version is not None and second.version is not None
        assert first.version != second.version
        assert second.value == "second-value"

    def test_a_pinned_version_reads_that_version(self, backend: Backend) -> None:
        """A reference pinned to an old version keeps reading the old value."""
        if not self.supports_versions:
            pytest.skip("this backend has no versions")
        name = self.new_name()
        self.put(backend, name, "old-value")
        old = backend.fetch(self.ref(backend, name))
        self.put(backend, name, "new-value")
        assert old.version is not None
        assert backend.fetch(self.pinned(backend, name, old.version)).value == "old-value"

    def test_rotation_is_seen_after_the_ttl(self, backend: Backend) -> None:
        """A store reading this backend sees a rotated value after its TTL, and fires on_rotate once."""
        clock = FakeClock()
        store = SecretStore([backend], ttl=60, jitter=0.0, clock=clock)
        name = self.new_name()
        key = str(self.ref(backend, name))
        self.put(backend, name, "before-rotation")
        assert store.get(key).reveal() == "before-rotation"
        rotations: list[tuple[Secret[Any], Secret[Any]]] = []
        store.on_rotate(key, lambda old, new: rotations.append((old, new)))
        self.put(backend, name, "after-rotation")
        assert store.get(key).reveal() == "before-rotation"  # still fresh: cached
        clock.advance(61)
        assert store.get(key).reveal() == "after-rotation"
        assert len(rotations) == 1
        assert rotations[0][0].reveal() == "before-rotation"
        assert rotations[0][1].reveal() == "after-rotation"

    def test_json_field_is_picked_by_the_store(self, backend: Backend) -> None:
        """``ref#field`` gives one key of a JSON secret."""
        name = self.new_name()
        self.put(backend, name, '{"username": "app", "password": "pw-123456", "nested": {"k": "v-9"}}')
        store = SecretStore([backend])
        base = str(self.ref(backend, name))
        assert store.get(base + "#password").reveal() == "pw-123456"
        assert store.get(base + "#nested.k").reveal() == "v-9"

    def test_concurrent_cold_readers_make_one_fetch(self, backend: Backend) -> None:
        """Sixteen threads reading a cold secret cause exactly one backend fetch."""
        name = self.new_name()
        self.put(backend, name, "shared-value")
        counting = CountingBackend(backend)
        store = SecretStore([counting])
        key = str(self.ref(backend, name))
        barrier = threading.Barrier(16)
        results: list[str] = []

        def read() -> None:
            barrier.wait()
            results.append(store.get(key).reveal())

        threads = [threading.Thread(target=read) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results == ["shared-value"] * 16
        assert counting.fetch_calls == 1

    def test_errors_carry_no_value(self, backend: Backend) -> None:
        """Not-found and bad-field errors through a store never contain a stored value."""
        name = self.new_name()
        value = "do-not-leak-this-value-42"
        self.put(backend, name, value)
        store = SecretStore([backend], negative_ttl=0)
        key = str(self.ref(backend, name))
        with pytest.raises(SecretkitError) as info:
            store.get(key + "#no.such.field")
        assert_no_value_in_error(info.value, value)
        with pytest.raises(SecretNotFound) as missing:
            store.get(str(self.ref(backend, self.new_name())))
        assert_no_value_in_error(missing.value, value)

    def test_close_is_idempotent(self, backend: Backend) -> None:
        """close() may be called twice."""
        backend.close()
        backend.close()
