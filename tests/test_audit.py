"""The audit trail: one structured record per backend access and per refusal, never a value."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

import secretkit
from secretkit import AccessDenied, AccessEvent, AuditTrail, BackendUnavailable, SecretStore
from secretkit._audit import AUDIT_FIELDS
from secretkit.backends import MemoryBackend
from secretkit.testing import FakeClock

VALUE = "pw-AUDIT-0xDEADBEEF-value"
ROTATED = "pw-AUDIT-0xFEEDFACE-rotated"


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Captures the ``secretkit.audit`` logger, whose level is restored afterwards."""
    logger = logging.getLogger("secretkit.audit")
    level = logger.level
    caplog.set_level(logging.INFO, logger="secretkit.audit")
    yield caplog
    logger.setLevel(level)


def audited(records: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in records.records if r.name == "secretkit.audit"]


def store_of(backend: MemoryBackend, clock: FakeClock, **options: object) -> SecretStore:
    return SecretStore([backend], clock=clock, jitter=0.0, **options)  # type: ignore[arg-type]


def test_a_backend_access_writes_one_record_with_every_field(
    records: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    """A cold read is audited with name, backend, version, outcome, caller, pid and time."""
    store = store_of(MemoryBackend({"DB_PASSWORD": VALUE}), clock)
    secretkit.audit(store)
    before = datetime.now(UTC)
    line = sys._getframe().f_lineno + 1
    store.get("DB_PASSWORD")
    [record] = audited(records)
    fields = {name: getattr(record, name) for name in AUDIT_FIELDS}
    assert fields["secret"] == "DB_PASSWORD"
    assert fields["backend"] == "memory"
    assert fields["version"] == "1"
    assert fields["outcome"] == "loaded"
    assert fields["error_type"] is None
    assert fields["hit"] is False
    assert fields["latency_s"] >= 0
    assert fields["caller_module"] == __name__
    assert fields["caller_line"] == line
    assert fields["pid"] == os.getpid()
    stamp = datetime.fromisoformat(fields["timestamp"])
    assert before - timedelta(seconds=1) <= stamp <= datetime.now(UTC) + timedelta(seconds=1)
    assert record.levelno == logging.INFO


def test_hits_are_not_audited_unless_asked(records: pytest.LogCaptureFixture, clock: FakeClock) -> None:
    """Cache hits write nothing by default, and every one of them with hits=1."""
    quiet = store_of(MemoryBackend({"K": VALUE}), clock)
    secretkit.audit(quiet)
    for _ in range(10):
        quiet.get("K")
    assert len(audited(records)) == 1
    records.clear()
    chatty = store_of(MemoryBackend({"K": VALUE}), clock)
    secretkit.audit(chatty, hits=1.0)
    for _ in range(10):
        chatty.get("K")
    assert [r.hit for r in audited(records)] == [False] + [True] * 9


def test_a_sampled_trail_audits_that_fraction_of_hits(
    records: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    """With hits=0.25, a hit is audited when the sampling draw falls under 0.25."""
    draws = iter([0.1, 0.9, 0.3, 0.2, 0.5] * 4)
    store = store_of(MemoryBackend({"K": VALUE}), clock)
    store.add_listener(AuditTrail(hits=0.25, rng=lambda: next(draws)))
    store.get("K")
    for _ in range(20):
        store.get("K")
    assert sum(r.hit for r in audited(records)) == 8


def test_a_refusal_through_a_reference_is_audited(
    records: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    """A name whose value points outside the allow-list is audited as denied."""
    backend = MemoryBackend({"app/DB": "memory://other/db", "other/db": VALUE})
    store = store_of(backend, clock, allow=["app/*"])
    secretkit.audit(store)
    with pytest.raises(AccessDenied):
        store.get("app/DB")
    [record] = audited(records)
    assert (record.secret, record.outcome, record.error_type) == ("app/DB", "denied", "AccessDenied")


def test_a_refusal_by_the_allow_list_is_audited(records: pytest.LogCaptureFixture, clock: FakeClock) -> None:
    """A name the allow-list refuses, before any backend is asked, is audited as denied."""
    backend = MemoryBackend({"billing/KEY": VALUE})
    store = store_of(backend, clock, allow=["app/*"])
    secretkit.audit(store)
    for _ in range(2):
        with pytest.raises(AccessDenied):
            store.get("billing/KEY")
    assert backend.calls == 0
    assert [(r.secret, r.outcome) for r in audited(records)] == [("billing/KEY", "denied")] * 2


def test_a_backends_refusal_answered_from_memory_is_audited_as_a_refusal_by_that_backend(
    records: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    """A remembered AccessDenied is denied by its backend on every read: audited, told to every listener."""
    backend = MemoryBackend({"K": VALUE})
    backend.fail(AccessDenied("the token's policy does not allow K"))
    store = store_of(backend, clock, negative_ttl=60)
    events: list[AccessEvent] = []
    store.add_listener(events.append, hits=False)
    secretkit.audit(store)
    for _ in range(3):
        with pytest.raises(AccessDenied):
            store.get("K")
    assert backend.calls == 1  # the second and third answers came from the store's memory
    rows = [(r.secret, r.backend, r.outcome, r.error_type, r.hit) for r in audited(records)]
    assert (
        rows
        == [("K", "memory", "denied", "AccessDenied", False)]
        + [("K", "memory", "denied", "AccessDenied", True)] * 2
    )
    assert [(e.backend, e.outcome, e.error) for e in events] == [("memory", "denied", "AccessDenied")] * 3


def test_a_refusal_of_a_held_secret_stays_a_refusal_when_answered_from_memory(
    records: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    """Past max_stale, a refused refresh is denied again from memory, not turned into an outage."""
    backend = MemoryBackend({"K": VALUE})
    store = store_of(backend, clock, ttl=10, max_stale=100)
    secretkit.audit(store)
    store.get("K")
    backend.fail(AccessDenied("the token was revoked"))
    clock.advance(111)  # past the value's life and its max_stale
    for _ in range(2):
        with pytest.raises(AccessDenied):
            store.get("K")
    assert backend.calls == 2  # the second refusal came from memory
    rows = [(r.backend, r.outcome, r.error_type, r.hit) for r in audited(records)][1:]
    assert rows == [("memory", "denied", "AccessDenied", False), ("memory", "denied", "AccessDenied", True)]


def test_a_failure_is_audited_by_type_never_by_message(
    records: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    """A backend error is audited with its type; no rendering of any record holds a value."""
    backend = MemoryBackend({"K": VALUE})
    store = store_of(backend, clock, ttl=10, max_stale=100)
    secretkit.audit(store, hits=1.0)
    store.get("K")
    backend.set("K", ROTATED)
    store.refresh("K")
    backend.fail(RuntimeError(f"the server echoed {VALUE} and {ROTATED}"))
    clock.advance(11)
    store.get("K")
    store.wait_idle()
    with pytest.raises(BackendUnavailable):
        store.get("OTHER")
    outcomes = [(r.secret, r.outcome, r.error_type) for r in audited(records)]
    assert ("OTHER", "error", "BackendUnavailable") in outcomes
    assert ("K", "rotated", None) not in outcomes
    formatter = logging.Formatter("%(asctime)s %(name)s %(message)s")
    for record in audited(records):
        for text in (formatter.format(record), json.dumps(record.__dict__, default=str)):
            for value in (VALUE, ROTATED, "0xDEADBEEF", "0xFEEDFACE"):
                assert value not in text


def test_a_background_refresh_is_audited_without_a_caller(
    records: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    """A refresh made by the store's own thread has no application caller to name."""
    store = store_of(MemoryBackend({"K": VALUE}), clock, ttl=10, refresh_ahead=0.5)
    secretkit.audit(store)
    store.get("K")
    clock.advance(6)  # past refresh-ahead: the read returns at once and a refresh starts
    store.get("K")
    assert store.wait_idle()
    refreshed = [r for r in audited(records) if r.outcome == "refreshed"]
    assert len(refreshed) == 1
    assert (refreshed[0].caller_module, refreshed[0].caller_line) == (None, None)


def test_records_are_ready_for_a_json_formatter(records: pytest.LogCaptureFixture, clock: FakeClock) -> None:
    """Every documented field of a record serialises to JSON as it is."""
    store = store_of(MemoryBackend({"K": VALUE}), clock)
    secretkit.audit(store)
    store.get("K")
    [record] = audited(records)
    document = json.loads(json.dumps({name: getattr(record, name) for name in AUDIT_FIELDS}))
    assert document["secret"] == "K"
    assert set(document) == set(AUDIT_FIELDS)


def test_the_function_audit_returns_stops_the_trail(
    records: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    """After the returned function is called, accesses write nothing and the store has no listener."""
    store = store_of(MemoryBackend({"A": VALUE, "B": VALUE}), clock)
    stop = secretkit.audit(store)
    store.get("A")
    stop()
    store.get("B")
    assert [r.secret for r in audited(records)] == ["A"]
    assert store.listeners() == ()


def test_nothing_is_audited_by_default(records: pytest.LogCaptureFixture, clock: FakeClock) -> None:
    """A store nobody enabled the audit on writes no audit record."""
    store = store_of(MemoryBackend({"K": VALUE}), clock)
    store.get("K")
    assert audited(records) == []


@pytest.mark.usefixtures("isolated_default")
def test_audit_without_a_store_covers_the_default_store(records: pytest.LogCaptureFixture) -> None:
    """secretkit.audit() audits the module-level functions' store."""
    secretkit.configure(backends=[MemoryBackend({"API_KEY": VALUE})])
    secretkit.audit()
    secretkit.get_secret("API_KEY")
    assert [(r.secret, r.caller_module) for r in audited(records)] == [("API_KEY", __name__)]


def test_the_hit_fraction_is_checked() -> None:
    """A sampling fraction outside 0..1 is refused."""
    with pytest.raises(ValueError, match="hits"):
        AuditTrail(hits=2)


def test_a_trail_says_whether_it_wants_hits() -> None:
    """A trail that audits no hits says so, so a store can spare it the hit events."""
    assert AuditTrail().wants_hits is False
    assert AuditTrail(hits=0.01).wants_hits is True
