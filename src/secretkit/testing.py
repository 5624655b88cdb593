"""Testing helpers: a fake clock, a pytest fixture, and the contract every backend passes.

The pytest plugin (registered through the ``pytest11`` entry point) provides the
``secretkit_memory`` fixture: the default store is swapped for an in-memory one that
serves every name and reference for one test, and settings classes read nothing real,
so an application's tests set secrets without touching ``os.environ``. The plugin also
masks secret values in the report of a failing test.

Backends, ours and third parties', subclass :class:`BackendContract`::

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def backend(self): return MyBackend(...)
        def put(self, backend, name, value): my_sdk.write(name, value)
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Generator, Iterator, Mapping, MutableMapping
from typing import Any

import pytest

from . import _api, _registry
from ._backend import Backend, Fetched
from ._errors import InvalidReference, SecretkitError, SecretNotFound, shown
from ._redact import holds_value, redact
from ._refs import SecretRef, closest_scheme, parse_reference
from ._secret import Secret
from ._settings import isolation
from ._store import SecretStore
from .backends.env import EnvBackend
from .backends.memory import MemoryBackend

__all__ = [
    "BackendContract",
    "CountingBackend",
    "FakeClock",
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
    """What the ``secretkit_memory`` fixture gives: secrets by name or reference, and a stand-in environment.

    ``set("API_KEY", ...)`` serves a plain name; ``set("aws-sm://prod/app/db", {...})`` serves
    a reference, by its scheme (every scheme has an in-memory backend here), and
    ``set("aws-sm://prod/app/db#password", ...)`` sets one key of that JSON secret.
    ``environ`` is the environment of the test (empty at first): settings classes and
    ``secretkit.getenv`` read it instead of ``os.environ`` (``secretkit_memory.environ =
    os.environ`` gives them the real one).
    """

    def __init__(
        self,
        store: SecretStore,
        backend: MemoryBackend,
        by_scheme: Mapping[str, MemoryBackend] | None = None,
    ) -> None:
        self.store = store
        #: The backend of plain names (and of ``memory://`` references).
        self.backend = backend
        #: The backend of each scheme's references.
        self.backends: dict[str, MemoryBackend] = {**(by_scheme or {}), backend.scheme: backend}
        #: The environment settings classes and the store read during the test, not ``os.environ``.
        self.environ: MutableMapping[str, str] = {}

    def set(self, name: str, value: str | bytes | Mapping[str, Any] | list[Any]) -> None:
        """Set (or rotate) a name or a reference; the next read sees it.

        A mapping or a list is stored as JSON. A reference with ``#field`` sets that key of
        the JSON secret (dots for nesting), keeping its other keys.
        """
        backend, path, field = self._where(name)
        text: str | bytes = value if isinstance(value, str | bytes) else json.dumps(value)
        if field is not None:
            document = self._document(backend, path)
            parts = field.split(".")
            node = document
            for part in parts[:-1]:
                child = node.get(part)
                node[part] = child = child if isinstance(child, dict) else {}
                node = child
            node[parts[-1]] = value if not isinstance(value, bytes) else value.decode()
            text = json.dumps(document)
        backend.set(path, text)
        # Every key that may read this secret (a field of it, a variable naming it) reads anew.
        self.store.invalidate()

    def delete(self, name: str) -> None:
        """Remove a name or a reference (every version); later reads do not find it."""
        backend, path, field = self._where(name)
        if field is not None:
            raise ValueError(f"delete() removes a whole secret: drop #{field} from {shown(name)}")
        backend.delete(path)
        self.store.invalidate()

    def __setitem__(self, name: str, value: str | bytes | Mapping[str, Any] | list[Any]) -> None:
        self.set(name, value)

    def _where(self, name: str) -> tuple[MemoryBackend, str, str | None]:
        if "://" not in name:
            return self.backend, name, None
        ref = parse_reference(name)
        if ref.options:
            raise ValueError(
                f"set {shown(str(ref.base))} without ?options: every read of it, with any option, sees it"
            )
        backend = self.backends.get(ref.scheme)
        if backend is None:
            meant = closest_scheme(ref.scheme, self.backends)
            hint = f"; did you mean {meant!r}?" if meant else ""
            raise InvalidReference(f"no backend serves the scheme {ref.scheme!r}{hint}")
        return backend, ref.path, ref.field

    @staticmethod
    def _document(backend: MemoryBackend, path: str) -> dict[str, Any]:
        try:
            current = backend.fetch(SecretRef(backend.scheme, path)).value
        except SecretNotFound:
            return {}
        try:
            document = json.loads(current)
        except ValueError:
            return {}
        return document if isinstance(document, dict) else {}


@pytest.fixture
def secretkit_memory() -> Iterator[MemorySecrets]:
    """An in-memory default store for this test, and settings classes that read nothing real.

    Every name and every reference (by scheme) is served from memory; ``SecretkitSettings``
    classes read the fixture's store (even one whose class names a store of its own), its
    ``environ`` instead of ``os.environ``, and no ``.env`` file or ``secrets_dir`` unless the
    test passes ``_env_file=`` / ``_secrets_dir=`` or a store to ``from_store()``.
    """
    backend = MemoryBackend()
    schemes = sorted(_registry.known_schemes() - {backend.scheme})
    by_scheme = {scheme: MemoryBackend(scheme=scheme) for scheme in schemes}
    # The store's environment is the fixture's stand-in, so a name set there reads as a
    # variable does (live, before the in-memory secrets), for getenv() and settings alike.
    stand_in = _StandIn()
    store = SecretStore(
        [EnvBackend(stand_in), backend], reference_backends=list(by_scheme.values()), negative_ttl=0
    )
    secrets = stand_in.owner = MemorySecrets(store, backend, by_scheme)
    previous = _api._swap(store)
    previous_isolation = isolation.isolate(secrets)
    try:
        yield secrets
    finally:
        isolation.isolate(previous_isolation)
        _api._swap(previous)
        store.close()


class _StandIn(Mapping[str, str]):
    """The ``environ`` of a ``MemorySecrets``, read through at each access (a test may replace it)."""

    owner: MemorySecrets | None = None

    def _current(self) -> Mapping[str, str]:
        return self.owner.environ if self.owner is not None else {}

    def __getitem__(self, name: str) -> str:
        return self._current()[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._current())

    def __len__(self) -> int:
        return len(self._current())


# -- a failing test never prints a secret -----------------------------------------------------------

_SHOWN = 240  # characters of each side of a comparison, as pytest shows them


@pytest.hookimpl(tryfirst=True)
def pytest_assertrepr_compare(
    config: pytest.Config, op: str, left: object, right: object
) -> list[str] | None:
    """A failing comparison with a secret on either side shows it masked, and no diff.

    pytest's own explanation prints both sides and a diff; a diff of two long strings shows
    the part after their common prefix, which masking the whole value would not catch.
    """
    texts = [_repr(left), _repr(right)]
    if not any(holds_value(text) for text in texts):
        return None
    shown_left, shown_right = (_cut(redact(text)) for text in texts)
    return [
        f"{shown_left} {op} {shown_right}",
        "secretkit: a secret value takes part in this comparison, so it is masked and no diff is shown",
    ]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    """Mask every secret value in a failing test's report: traceback, locals, captured output."""
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.failed:
        return
    text = str(report.longrepr) if report.longrepr is not None else ""
    if holds_value(text):
        report.longrepr = redact(text)
    report.sections = [(title, redact(content)) for title, content in report.sections]


def _repr(value: object) -> str:
    try:
        return repr(value)
    except Exception:  # a broken __repr__ is pytest's to report, not ours
        return ""


def _cut(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN // 2] + "..." + text[-_SHOWN // 2 :]


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
