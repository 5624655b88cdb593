"""Every channel a name leaves the process by shapes it one way: a password pasted as a name stays home.

Issue 22, item 8. A connection string pasted where a name goes (``get_secret("postgres://
app:pw@db/x")``) reaches errors, audit records, spans, access events, log lines and the CLI.
Each test drives every channel at once with such names and reads back what each exported:
a channel added later that forgets ``public_name`` shows up here as the password in the blob.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import secretkit
from _batching import BatchMemoryBackend
from secretkit import AccessEvent, SecretkitError, SecretStore
from secretkit.backends import MemoryBackend
from secretkit.testing import FakeClock
from test_cli import clean_env, run_cli

PASSWORD = "hunter2-pass-8e1f0c"

#: Names as a careless operator pastes them: each carries PASSWORD somewhere a parser can find it.
HOSTILE_NAMES = [
    f"app:{PASSWORD}@db",  # user-info without a scheme: a plain name, tried against the chain
    f"memory://app:{PASSWORD}@db/x",  # a reference that reaches a backend
    f"memory://app:{PASSWORD[:6]}/{PASSWORD[6:]}@db/x",  # a password holding a '/'
    f"postgres://app:{PASSWORD}@db/x",  # a connection string: a scheme no backend serves
    f"redis://:{PASSWORD}@cache:6379/0",
    f"https://{PASSWORD}@api.example/v1",  # a token as user-info
    f"Server=db;User Id=app;Password={PASSWORD};",  # an ADO.NET connection string
    f"DB_PASSWORD={PASSWORD}",  # a .env line
    f"memory://db/x?password={PASSWORD}",  # an option value
    f"memory://db/x?version={PASSWORD}",
]

#: A hostile name that a backend holds, so the success paths (Secret, hits, rotation) run too.
FOUND = f"svc:{PASSWORD}@cache"


@dataclass
class Channels:
    """Every way a name leaves: audit and all other log records, spans, metrics, events, errors."""

    records: list[logging.LogRecord] = field(default_factory=list)
    spans: InMemorySpanExporter = field(default_factory=InMemorySpanExporter)
    reader: InMemoryMetricReader = field(default_factory=InMemoryMetricReader)
    events: list[AccessEvent] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    def exported(self) -> str:
        """All that left, as text: what a log shipper, a trace backend or an error tracker receives."""
        parts: list[str] = []
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        for record in self.records:
            parts.append(formatter.format(record))
            parts.append(repr(sorted(vars(record).items(), key=lambda kv: kv[0])))
        for span in self.spans.get_finished_spans():
            parts.append(span.to_json())
        metrics = self.reader.get_metrics_data()
        if metrics is not None:
            parts.append(metrics.to_json())
        parts.extend(repr(event) for event in self.events)
        for err in self.errors:
            parts.extend((str(err), repr(err), repr(err.args)))
            parts.extend(traceback.format_exception(err))
        return "\n".join(parts)


class _Keep(logging.Handler):
    def __init__(self, into: list[logging.LogRecord]) -> None:
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record)


@pytest.fixture
def channels(monkeypatch: pytest.MonkeyPatch) -> Iterator[Channels]:
    found = Channels()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(found.spans))
    instrumentation = secretkit.instrument(
        meter_provider=MeterProvider(metric_readers=[found.reader]), tracer_provider=tracer_provider
    )
    root = logging.getLogger()
    handler = _Keep(found.records)
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.DEBUG)
    audit_logger = logging.getLogger("secretkit.audit")
    audit_level = audit_logger.level
    try:
        yield found
    finally:
        instrumentation.uninstrument()
        root.removeHandler(handler)
        root.setLevel(level)
        audit_logger.setLevel(audit_level)


def _collect(errors: list[BaseException], call: Callable[[], object]) -> None:
    try:
        call()
    except SecretkitError as exc:
        errors.append(exc)


def _drive(store: SecretStore, found: Channels) -> None:
    """Every way the library takes a name: get, aget, live, prefetch (batched), refresh."""
    secretkit.audit(store, hits=1.0)
    store.add_listener(found.events.append)
    for name in HOSTILE_NAMES:
        _collect(found.errors, lambda name=name: store.get(name))
        _collect(found.errors, lambda name=name: asyncio.run(store.aget(name)))
        _collect(found.errors, lambda name=name: store.live(name).reveal())
    found.errors.extend(store.prefetch(HOSTILE_NAMES).values())


def test_a_password_pasted_as_a_name_reaches_no_output_channel(channels: Channels, clock: FakeClock) -> None:
    """Audit records, every other log record, spans, metrics, access events and errors hold no password."""
    backend = BatchMemoryBackend({FOUND: "a-value-never-shown"})
    store = SecretStore([backend], reference_backends=[backend], clock=clock, jitter=0.0)
    _drive(store, channels)
    # The success paths: a Secret logged as the design shows it, a hit, a refresh.
    secret = store.get(FOUND)
    logging.getLogger("app").info("using %r", secret)
    store.get(FOUND)
    store.refresh(FOUND)
    store.close()

    blob = channels.exported()
    assert PASSWORD not in blob
    # Each channel was driven, so the absence above is not for want of output.
    audited = [r for r in channels.records if r.name == "secretkit.audit"]
    assert len(audited) >= len(HOSTILE_NAMES)
    assert {getattr(r, "secret", None) for r in audited} >= {"***@db", "postgres://***@db/x"}
    attributes = [dict(span.attributes or {}) for span in channels.spans.get_finished_spans()]
    assert any(a.get("secretkit.secret.name") == "***@db" for a in attributes)
    assert any("secretkit.secret.names" in a for a in attributes)  # the batched prefetch
    assert len(channels.events) >= 3 * len(HOSTILE_NAMES)
    assert len(channels.errors) >= 3 * len(HOSTILE_NAMES)
    assert "Secret('***@cache'" in blob


def test_an_allow_list_refusal_of_a_pasted_password_is_audited_without_it(
    channels: Channels, clock: FakeClock
) -> None:
    """A refused name is always audited and always an error: both show the shape, never the password."""
    backend = MemoryBackend({FOUND: "a-value-never-shown"})
    store = SecretStore([backend], reference_backends=[backend], clock=clock, allow=["allowed/*"])
    _drive(store, channels)
    store.close()
    assert PASSWORD not in channels.exported()
    denied = [r for r in channels.records if getattr(r, "outcome", None) == "denied"]
    assert denied, "the allow-list refused nothing: the test no longer drives the refusal path"


def test_a_hashed_span_name_cannot_be_used_to_guess_the_password(clock: FakeClock) -> None:
    """name_attribute="hash" exports the hash of the shaped name: a guessed password never matches it."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    with secretkit.instrument(tracer_provider=provider, name_attribute="hash"):
        store = SecretStore([MemoryBackend({})], clock=clock)
        name = f"app:{PASSWORD}@db"
        with pytest.raises(SecretkitError):
            store.get(name)
        store.close()
    [span] = [s for s in spans.get_finished_spans() if s.name.startswith("secretkit ")]
    exported = dict(span.attributes or {})["secretkit.secret.name"]
    # The attacker's check of a guess: hash the name with the guessed password in it.
    guess = "sha256:" + hashlib.sha256(f"app:{PASSWORD}@db".encode()).hexdigest()[:16]
    assert exported != guess
    assert exported == "sha256:" + hashlib.sha256(b"***@db").hexdigest()[:16]


def test_the_cli_shows_no_password_pasted_as_a_name(tmp_path: Path) -> None:
    """get, check and doctor, as text and as JSON, print the shape of a pasted name, never its password."""
    work = tmp_path / "work"
    work.mkdir()
    env = clean_env(tmp_path / "home")
    names = [n for n in HOSTILE_NAMES if not n.startswith("memory://")]
    runs = [
        run_cli("check", *names, env=env, cwd=work, secrets=[PASSWORD]),
        run_cli("check", "--json", *names, env=env, cwd=work, secrets=[PASSWORD]),
        run_cli("doctor", "--timeout", "1", *names, env=env, cwd=work, secrets=[PASSWORD]),
        run_cli("doctor", "--json", "--timeout", "1", *names, env=env, cwd=work, secrets=[PASSWORD]),
    ]
    runs += [run_cli("get", name, env=env, cwd=work, secrets=[PASSWORD]) for name in names[:3]]
    runs.append(run_cli("get", "--json", names[3], env=env, cwd=work, secrets=[PASSWORD]))
    for result in runs:
        assert result.code != 0, result.describe()  # nothing resolves: every name took an error path
        result.assert_no_secret()
    check_json = json.loads(runs[1].out)
    shown: list[Any] = [row["name"] for row in check_json["secrets"]]
    assert "postgres://***@db/x" in shown and "Server=db;User Id=app;Password=***;" in shown
