"""Resolution: the chain for plain names, references, one level of indirection, lazy
backends from the scheme table and entry points, and the allow-list."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from secretkit import (
    AccessDenied,
    ConfigurationError,
    Fetched,
    InvalidReference,
    MissingDependency,
    SecretNotFound,
    SecretRef,
    SecretStore,
    _registry,
)
from secretkit.backends import EnvBackend, MemoryBackend
from secretkit.testing import FakeClock, assert_no_value_in_error


def test_the_first_backend_that_has_a_name_wins() -> None:
    """A plain name is tried against each backend in order."""
    first = MemoryBackend({"A": "from-first"}, scheme="first")
    second = MemoryBackend({"A": "from-second", "B": "only-second"}, scheme="second")
    store = SecretStore([first, second])
    assert store.get("A").reveal() == "from-first"
    assert store.get("A").source == "first"
    b = store.get("B")
    assert (b.reveal(), b.source) == ("only-second", "second")


def test_a_reference_skips_the_chain() -> None:
    """scheme://path goes straight to the backend of that scheme."""
    first = MemoryBackend({"A": "from-first"}, scheme="first")
    second = MemoryBackend({"A": "from-second"}, scheme="second")
    store = SecretStore([first, second])
    assert store.get("second://A").reveal() == "from-second"
    assert first.calls == 0


def test_a_name_whose_value_is_a_reference_resolves_the_reference() -> None:
    """DB_PASSWORD=memory://db#password gives the password, not the reference."""
    env = {"DB_PASSWORD": "memory://db#password"}
    memory = MemoryBackend({"db": '{"user": "app", "password": "pw-resolved"}'})
    store = SecretStore([EnvBackend(env)], reference_backends=[memory])
    secret = store.get("DB_PASSWORD")
    assert secret.reveal() == "pw-resolved"
    assert secret.name == "DB_PASSWORD" and secret.source == "memory" and secret.version == "1"


def test_unknown_schemes_in_values_stay_plain_values() -> None:
    """A DSN such as postgres://... in the environment is a value, not a reference."""
    env = {"DATABASE_URL": "postgres://user:pw@localhost/db", "SITE": "https://example.com"}
    store = SecretStore([EnvBackend(env)])
    assert store.get("DATABASE_URL").reveal() == "postgres://user:pw@localhost/db"
    assert store.get("SITE").reveal() == "https://example.com"


def test_a_reference_to_a_reference_is_an_error_not_a_loop() -> None:
    """Indirection is followed one level; a second level is refused with a clear error."""
    env = {"A": "memory://b"}
    memory = MemoryBackend({"b": "memory://c", "c": "final"})
    store = SecretStore([EnvBackend(env)], reference_backends=[memory])
    with pytest.raises(InvalidReference, match="one level"):
        store.get("A")


def test_a_malformed_reference_in_a_value_is_reported_with_the_name() -> None:
    """A bad reference found through the chain names the variable that holds it."""
    store = SecretStore([EnvBackend({"A": "memory://x#"})], reference_backends=[MemoryBackend()])
    with pytest.raises(InvalidReference, match="'A'"):
        store.get("A")


def test_an_unknown_scheme_in_a_reference_lists_the_known_ones() -> None:
    """get('nope://x') says no backend serves 'nope' and lists the schemes that exist."""
    store = SecretStore([])
    with pytest.raises(InvalidReference, match=r"'nope'.*aws-sm.*vault"):
        store.get("nope://x")


def test_json_fields_of_a_reference() -> None:
    """#field picks a dotted key; a missing key is not-found; a non-JSON secret is a clear error."""
    memory = MemoryBackend({"db": '{"a": {"b": "deep-value"}}', "plain": "not-json-value"})
    store = SecretStore([memory], negative_ttl=0)
    assert store.get("memory://db#a.b").reveal() == "deep-value"
    with pytest.raises(SecretNotFound, match="no key 'c'"):
        store.get("memory://db#a.c")
    with pytest.raises(ConfigurationError, match="not JSON") as info:
        store.get("memory://plain#x")
    assert_no_value_in_error(info.value, "not-json-value")


def test_pinned_versions_are_separate_cache_entries() -> None:
    """?version=1 and the latest version are cached apart."""
    memory = MemoryBackend({"k": "one"})
    memory.set("k", "two")
    store = SecretStore([memory])
    assert store.get("memory://k?version=1").reveal() == "one"
    assert store.get("memory://k").reveal() == "two"


def test_scheme_backends_are_built_lazily_from_the_table(monkeypatch: pytest.MonkeyPatch) -> None:
    """A store with no memory backend builds one on first use of memory://."""
    store = SecretStore([])
    with pytest.raises(SecretNotFound, match="memory"):
        store.get("memory://x")
    assert isinstance(store.backend_for("memory"), MemoryBackend)
    assert store.backend_for("memory") is store.backend_for("memory")


def test_a_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a backend whose SDK is absent raises MissingDependency naming the pip extra."""

    class NeedsSdk:
        scheme = "needs-sdk"

        def __init__(self) -> None:
            try:
                import secretkit_no_such_sdk  # type: ignore[import-not-found]  # noqa: F401
            except ImportError as exc:
                raise MissingDependency("needs-sdk", "no-such-sdk", "nosdk") from exc

    mod = type(sys)("fake_sdk_backend_mod")
    mod.NeedsSdk = NeedsSdk  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "fake_sdk_backend_mod", mod)
    monkeypatch.setitem(
        _registry.KNOWN_BACKENDS,
        "needs-sdk",
        _registry.BackendSpec("fake_sdk_backend_mod:NeedsSdk", "nosdk", "x"),
    )
    with pytest.raises(MissingDependency, match=r'pip install "secretkit\[nosdk\]"') as info:
        SecretStore([]).get("needs-sdk://x")
    assert isinstance(info.value, ImportError)


def test_third_party_backends_register_through_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheme registered under the secretkit.backends entry-point group is used for references."""

    class Acme:
        scheme = "acme"

        def fetch(self, ref: SecretRef) -> Fetched:
            if ref.path == "known":
                return Fetched("acme-value", version="v9")
            raise SecretNotFound(ref.path)

        def close(self) -> None:
            pass

    mod = type(sys)("acme_backend_mod")
    mod.Acme = Acme  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "acme_backend_mod", mod)
    ep = EntryPoint(name="acme", value="acme_backend_mod:Acme", group=_registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(_registry, "_entry_points", {"acme": ep})
    store = SecretStore([EnvBackend({"TOKEN": "acme://known"})])
    assert store.get("acme://known").version == "v9"
    assert store.get("TOKEN").reveal() == "acme-value"  # values using the scheme resolve too
    assert "acme" in _registry.known_schemes()


def test_the_scheme_table_is_sorted() -> None:
    """KNOWN_BACKENDS is kept in sorted order."""
    assert list(_registry.KNOWN_BACKENDS) == sorted(_registry.KNOWN_BACKENDS)


def test_a_non_backend_is_refused_at_construction() -> None:
    """Passing something that is not a backend fails early with a TypeError."""
    with pytest.raises(TypeError, match="not a backend"):
        SecretStore([object()])  # type: ignore[list-item]


# -- allow-list -------------------------------------------------------------------------


class Recording(MemoryBackend):
    pass


def test_names_outside_the_allow_list_are_refused_before_any_backend_call() -> None:
    """allow=[...] refuses other names locally with AccessDenied; the backend is never asked."""
    backend = Recording({"prod/app/db": "ok", "prod/other/db": "no"})
    store = SecretStore([backend], allow=["prod/app/*"])
    assert store.get("memory://prod/app/db").reveal() == "ok"
    with pytest.raises(AccessDenied, match="allow-list"):
        store.get("memory://prod/other/db")
    with pytest.raises(AccessDenied):
        store.get("prod/other/db")
    assert [r.path for r in backend.fetched] == ["prod/app/db"]


def test_the_allow_list_applies_to_references_found_in_values() -> None:
    """A permitted name whose value points outside the allow-list is refused."""
    env = {"APP_DB": "memory://prod/other/db"}
    backend = Recording({"prod/other/db": "no"})
    store = SecretStore([EnvBackend(env)], reference_backends=[backend], allow=["APP_*", "prod/app/*"])
    with pytest.raises(AccessDenied, match="points to"):
        store.get("APP_DB")
    assert backend.calls == 0


def test_prefetch_loads_many_and_reports_failures(clock: FakeClock) -> None:
    """prefetch loads every name it can and returns the failures by name."""
    backend = MemoryBackend({"A": "a", "B": "b"})
    store = SecretStore([backend], clock=clock)
    failures = store.prefetch(["A", "B", "C"])
    assert set(failures) == {"C"} and isinstance(failures["C"], SecretNotFound)
    calls = backend.calls
    assert store.get("A").reveal() == "a" and store.get("B").reveal() == "b"
    assert backend.calls == calls


class Batching(MemoryBackend):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.batches: list[list[str]] = []

    def fetch_many(self, refs: list[SecretRef]) -> dict[SecretRef, Fetched | Exception]:
        self.batches.append([r.path for r in refs])
        out: dict[SecretRef, Fetched | Exception] = {}
        for ref in refs:
            try:
                out[ref] = MemoryBackend.fetch(self, ref)
            except SecretNotFound as exc:
                out[ref] = exc
        return out


def test_prefetch_batches_references_per_backend(clock: FakeClock) -> None:
    """References to a backend with fetch_many are fetched in one batch call."""
    backend = Batching({f"s{i}": f'{{"v": "{i}"}}' for i in range(5)})
    store = SecretStore([backend], clock=clock)
    names = [f"memory://s{i}#v" for i in range(5)] + ["memory://missing"]
    failures = store.prefetch(names)
    assert list(failures) == ["memory://missing"]
    assert len(backend.batches) == 1 and sorted(backend.batches[0]) == sorted(
        [f"s{i}" for i in range(5)] + ["missing"]
    )
    assert [store.get(f"memory://s{i}#v").reveal() for i in range(5)] == ["0", "1", "2", "3", "4"]


def test_due_secrets_of_a_batching_backend_refresh_together(clock: FakeClock) -> None:
    """When one secret is due, the others loaded with it ride along in one batch call."""
    backend = Batching({f"s{i}": "v" for i in range(20)})
    store = SecretStore([backend], ttl=300, jitter=0.1, clock=clock)
    names = [f"memory://s{i}" for i in range(20)]
    store.prefetch(names)
    backend.batches.clear()
    clock.advance(300 * 0.8 + 1)  # past refresh-ahead for every one of them
    for name in names:
        store.get(name)
    assert store.wait_idle(5)
    assert sum(len(b) for b in backend.batches) == 20
    assert len(backend.batches) <= 2  # normally 1; a read racing the worker may start a second


def test_secrets_with_jittered_deadlines_ride_along_when_the_first_is_due(clock: FakeClock) -> None:
    """Jitter spreads deadlines; the first due secret still takes its near-due neighbours along."""
    values = iter([i / 20 for i in range(20)])
    backend = Batching({f"s{i}": "v" for i in range(20)})
    store = SecretStore([backend], ttl=300, jitter=0.1, clock=clock, rng=lambda: next(values))
    names = [f"memory://s{i}" for i in range(20)]
    store.prefetch(names)
    backend.batches.clear()
    first_due = min(store._entries[n].refresh_at for n in names)
    clock.advance(first_due - clock.now + 0.01)  # only the earliest is due
    for name in names:
        store.get(name)
    assert store.wait_idle(5)
    assert [len(b) for b in backend.batches] == [20]


def test_a_backend_that_fails_to_build_is_a_configuration_error_and_hangs_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backend constructor raising a plain exception gives ConfigurationError; later reads do not hang."""

    class Broken:
        scheme = "broken"

        def __init__(self) -> None:
            raise ValueError("cannot start")

    mod = type(sys)("broken_backend_mod")
    mod.Broken = Broken  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "broken_backend_mod", mod)
    monkeypatch.setitem(
        _registry.KNOWN_BACKENDS, "broken", _registry.BackendSpec("broken_backend_mod:Broken", None, None)
    )
    store = SecretStore([], negative_ttl=0)
    failures = store.prefetch(["broken://x"])
    assert isinstance(failures["broken://x"], ConfigurationError)
    assert isinstance(failures["broken://x"].__cause__, ValueError)
    with pytest.raises(ConfigurationError, match="could not be built"):
        store.get("broken://x")  # would wait forever on a flight prefetch left behind
