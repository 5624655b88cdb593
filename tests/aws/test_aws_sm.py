"""AWS Secrets Manager (``aws-sm://``) against a real moto server, through boto3."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

import secretkit
from secretkit import (
    BackendUnavailable,
    InvalidReference,
    SecretNotFound,
    SecretRef,
    SecretStore,
    _api,
)
from secretkit.backends import EnvBackend
from secretkit.backends.aws import AwsSecretsManagerBackend
from secretkit.testing import BackendContract, FakeClock, assert_no_value_in_error
from servers.moto_server import MotoServer, WireLog, free_port


def unique(prefix: str = "sm") -> str:
    return f"{prefix}/{uuid.uuid4().hex[:10]}"


def put(admin: Any, name: str, value: str | bytes) -> str:
    """Write a new version of ``name`` (creating it if needed); returns its VersionId."""
    key = "SecretBinary" if isinstance(value, bytes) else "SecretString"
    try:
        response = admin.put_secret_value(SecretId=name, **{key: value})
    except admin.exceptions.ResourceNotFoundException:
        response = admin.create_secret(Name=name, **{key: value})
    return str(response["VersionId"])


@pytest.fixture
def backend(moto: MotoServer) -> Iterator[AwsSecretsManagerBackend]:
    b = AwsSecretsManagerBackend(endpoint_url=moto.url)
    yield b
    b.close()


@pytest.fixture
def counted(moto: MotoServer, wire: WireLog) -> AwsSecretsManagerBackend:
    """A backend whose every request on the wire is counted by ``wire``."""
    return AwsSecretsManagerBackend(client=wire.attach(moto.client("secretsmanager")))


class TestAwsSecretsManagerContract(BackendContract):
    @pytest.fixture
    def backend(self, moto: MotoServer, sm_admin: Any) -> Iterator[AwsSecretsManagerBackend]:
        self.admin = sm_admin
        b = AwsSecretsManagerBackend(endpoint_url=moto.url)
        yield b
        b.close()

    def put(self, backend: Any, name: str, value: str | bytes) -> None:
        put(self.admin, name, value)


# -- references and values -----------------------------------------------------------------


def test_zero_config_through_aws_endpoint_url(
    moto: MotoServer, sm_admin: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With only AWS_* variables set, a store with no AWS backend configured resolves aws-sm://name#field."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    name = unique()
    put(sm_admin, name, json.dumps({"username": "app", "password": "zero-config-pw"}))
    with SecretStore() as store:
        assert store.get(f"aws-sm://{name}#password").reveal() == "zero-config-pw"
        assert isinstance(store.backend_for("aws-sm"), AwsSecretsManagerBackend)


def test_json_field_with_dots(backend: AwsSecretsManagerBackend, sm_admin: Any) -> None:
    """#a.b picks a nested key out of a JSON secret."""
    name = unique()
    put(sm_admin, name, json.dumps({"db": {"primary": {"password": "nested-pw"}}}))
    store = SecretStore([], reference_backends=[backend])
    assert store.get(f"aws-sm://{name}#db.primary.password").reveal() == "nested-pw"


def test_plaintext_is_returned_as_is(backend: AwsSecretsManagerBackend, sm_admin: Any) -> None:
    """A plaintext secret read without a field is the exact text, even when it looks like JSON."""
    store = SecretStore([], reference_backends=[backend])
    for text in ("12345", "true", "plain text", '"quoted"', "{not json"):
        name = unique()
        put(sm_admin, name, text)
        value = store.get(f"aws-sm://{name}").reveal()
        assert isinstance(value, str)
        assert value == text


def test_binary_secret_is_bytes_through_a_store(backend: AwsSecretsManagerBackend, sm_admin: Any) -> None:
    """SecretBinary comes back as bytes, and SecretString as str."""
    binary, text = unique(), unique()
    put(sm_admin, binary, b"\x00\x01binary\xff")
    put(sm_admin, text, "text-value")
    store = SecretStore([], reference_backends=[backend])
    assert store.get(f"aws-sm://{binary}").reveal() == b"\x00\x01binary\xff"
    assert isinstance(store.get(f"aws-sm://{text}").reveal(), str)


def test_full_and_partial_arn(backend: AwsSecretsManagerBackend, sm_admin: Any) -> None:
    """A secret is found by its full ARN and by its ARN without the random suffix, fields included."""
    name = unique()
    arn = sm_admin.create_secret(Name=name, SecretString=json.dumps({"password": "by-arn"}))["ARN"]
    store = SecretStore([], reference_backends=[backend])
    assert store.get(f"aws-sm://{arn}#password").reveal() == "by-arn"
    assert store.get(f"aws-sm://{arn[:-7]}#password").reveal() == "by-arn"


def test_a_full_arn_parses_into_path_field_and_options() -> None:
    """Colons in an ARN stay in the path; '#' and '?' still split off the field and options."""
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/db-AbCdEf"
    ref = SecretRef.parse(f"aws-sm://{arn}#password?stage=AWSPREVIOUS")
    assert (ref.scheme, ref.path, ref.field) == ("aws-sm", arn, "password")
    assert dict(ref.options) == {"stage": "AWSPREVIOUS"}


def test_version_is_the_version_id(backend: AwsSecretsManagerBackend, sm_admin: Any) -> None:
    """Secret.version is the VersionId Secrets Manager gave the version."""
    name = unique()
    version_id = put(sm_admin, name, "v")
    store = SecretStore([], reference_backends=[backend])
    assert store.get(f"aws-sm://{name}").version == version_id


def test_previous_stage_after_a_rotation(backend: AwsSecretsManagerBackend, sm_admin: Any) -> None:
    """After a new version is put, ?stage=AWSPREVIOUS reads the old value and the default reads the new."""
    name = unique()
    first = put(sm_admin, name, "sm-previous-9f3c1e")
    second = put(sm_admin, name, "sm-current-4b7d2a")
    store = SecretStore([], reference_backends=[backend])
    previous = store.get(f"aws-sm://{name}?stage=AWSPREVIOUS")
    assert (previous.reveal(), previous.version) == ("sm-previous-9f3c1e", first)
    current = store.get(f"aws-sm://{name}")
    assert (current.reveal(), current.version) == ("sm-current-4b7d2a", second)
    assert store.get(f"aws-sm://{name}?stage=AWSCURRENT").reveal() == "sm-current-4b7d2a"


def test_version_id_option_reads_that_version(backend: AwsSecretsManagerBackend, sm_admin: Any) -> None:
    """?version=<VersionId> reads that version after newer ones were put."""
    name = unique()
    first = put(sm_admin, name, "one")
    put(sm_admin, name, "two")
    store = SecretStore([], reference_backends=[backend])
    assert store.get(f"aws-sm://{name}?version={first}").reveal() == "one"


def test_current_stage_moved_back_is_followed(backend: AwsSecretsManagerBackend, sm_admin: Any) -> None:
    """When AWSCURRENT is moved back to an older version (a rollback), a plain reference reads it."""
    name = unique()
    first = put(sm_admin, name, "rollback-good-5e21")
    second = put(sm_admin, name, "bad")
    sm_admin.update_secret_version_stage(
        SecretId=name, VersionStage="AWSCURRENT", MoveToVersionId=first, RemoveFromVersionId=second
    )
    fetched = backend.fetch(SecretRef("aws-sm", name))
    assert (fetched.value, fetched.version) == ("rollback-good-5e21", first)


def test_rotation_after_ttl_fires_on_rotate_once_with_version_ids(
    backend: AwsSecretsManagerBackend, sm_admin: Any
) -> None:
    """A cached field read sees a rotation after the TTL; on_rotate fires once with both VersionIds."""
    name = unique()
    first = put(sm_admin, name, json.dumps({"password": "old-pw"}))
    clock = FakeClock()
    store = SecretStore([], reference_backends=[backend], ttl=60, jitter=0.0, clock=clock)
    key = f"aws-sm://{name}#password"
    assert store.get(key).reveal() == "old-pw"
    seen: list[tuple[str | None, str | None]] = []
    store.on_rotate(key, lambda old, new: seen.append((old.version, new.version)))
    second = put(sm_admin, name, json.dumps({"password": "new-pw"}))
    clock.advance(30)
    assert store.get(key).reveal() == "old-pw"
    clock.advance(31)
    assert store.get(key).reveal() == "new-pw"
    assert store.get(key).reveal() == "new-pw"
    assert seen == [(first, second)]


def test_region_option_and_arn_region(moto: MotoServer, backend: AwsSecretsManagerBackend) -> None:
    """?region= reads another region; an ARN's own region is used without it; a contradiction is refused."""
    west = moto.client("secretsmanager", region_name="eu-west-1")
    name = unique()
    arn = west.create_secret(Name=name, SecretString="in-ireland")["ARN"]
    store = SecretStore([], reference_backends=[backend], negative_ttl=0)
    assert backend.region == "us-east-1"
    assert store.get(f"aws-sm://{name}?region=eu-west-1").reveal() == "in-ireland"
    assert store.get(f"aws-sm://{arn}").reveal() == "in-ireland"
    with pytest.raises(SecretNotFound):
        store.get(f"aws-sm://{name}")
    with pytest.raises(InvalidReference, match="eu-west-1"):
        store.get(f"aws-sm://{arn}?region=us-west-2")


def test_unknown_option_is_refused(backend: AwsSecretsManagerBackend) -> None:
    """An option the backend does not know is an InvalidReference naming the options it does."""
    store = SecretStore([], reference_backends=[backend])
    with pytest.raises(InvalidReference, match=r"\bstage\b"):
        store.get("aws-sm://anything?versoin=1")


def test_secret_scheduled_for_deletion_is_not_found(backend: AwsSecretsManagerBackend, sm_admin: Any) -> None:
    """A secret scheduled for deletion is reported as not found, with why."""
    name = unique()
    put(sm_admin, name, "doomed-value-77a1")
    sm_admin.delete_secret(SecretId=name, RecoveryWindowInDays=7)
    with pytest.raises(SecretNotFound, match="deletion"):
        backend.fetch(SecretRef("aws-sm", name))


def test_missing_version_is_not_found(backend: AwsSecretsManagerBackend, sm_admin: Any) -> None:
    """A stage or VersionId that the secret does not have is SecretNotFound."""
    name = unique()
    put(sm_admin, name, "only-one")
    with pytest.raises(SecretNotFound):
        backend.fetch(SecretRef("aws-sm", name, options={"stage": "AWSPENDING"}))
    with pytest.raises(SecretNotFound):
        backend.fetch(SecretRef("aws-sm", name, options={"version": uuid.uuid4().hex}))


def test_malformed_version_id_is_an_invalid_reference(backend: AwsSecretsManagerBackend) -> None:
    """A VersionId that is not one is an InvalidReference raised before botocore is asked, value unshown."""
    with pytest.raises(InvalidReference, match="VersionId") as info:
        backend.fetch(SecretRef("aws-sm", "x", options={"version": "v1-not-an-id"}))
    assert info.value.__cause__ is None
    assert "v1-not-an-id" not in str(info.value)


# -- batching --------------------------------------------------------------------------------


def test_prefetch_of_25_secrets_makes_2_batch_calls(
    counted: AwsSecretsManagerBackend, wire: WireLog, sm_admin: Any
) -> None:
    """Prefetching 25 secrets sends 2 BatchGetSecretValue requests (20 + 5) and nothing else."""
    names = [unique("batch") for _ in range(25)]
    for i, name in enumerate(names):
        put(sm_admin, name, json.dumps({"password": f"pw-{i}"}))
    store = SecretStore([], reference_backends=[counted])
    refs = [f"aws-sm://{name}#password" for name in names]
    assert store.prefetch(refs) == {}
    assert wire.calls == {"BatchGetSecretValue": 2}
    assert [store.get(ref).reveal() for ref in refs] == [f"pw-{i}" for i in range(25)]
    assert wire.total == 2


def test_refreshing_20_due_secrets_is_one_batch_call(
    counted: AwsSecretsManagerBackend, wire: WireLog, sm_admin: Any
) -> None:
    """When 20 cached secrets come due together, one read refreshes all of them in one batch call."""
    names = [unique("due") for _ in range(20)]
    for name in names:
        put(sm_admin, name, "v1")
    clock = FakeClock()
    store = SecretStore([], reference_backends=[counted], ttl=300, jitter=0.0, clock=clock)
    refs = [f"aws-sm://{name}" for name in names]
    assert store.prefetch(refs) == {}
    for name in names:
        put(sm_admin, name, "v2")
    wire.reset()
    clock.advance(250)  # past refresh-ahead (80 % of 300 s), before expiry
    assert store.get(refs[0]).reveal() == "v1"  # served at once; the refresh runs behind
    assert store.wait_idle(10)
    assert wire.calls == {"BatchGetSecretValue": 1}
    assert [store.get(ref).reveal() for ref in refs] == ["v2"] * 20
    assert wire.total == 1


def test_secrets_loaded_together_refresh_together_despite_jitter(
    counted: AwsSecretsManagerBackend, wire: WireLog, sm_admin: Any
) -> None:
    """Secrets prefetched together are refreshed in one batch call when the first comes due, though
    jitter spread their deadlines over several seconds."""
    names = [unique("jitter") for _ in range(20)]
    for name in names:
        put(sm_admin, name, "v1")
    clock = FakeClock()
    store = SecretStore([], reference_backends=[counted], ttl=300, jitter=0.1, clock=clock)
    refs = [f"aws-sm://{name}" for name in names]
    assert store.prefetch(refs) == {}
    for name in names:
        put(sm_admin, name, "v2")
    wire.reset()
    for _ in range(300):  # an application reading every secret every second
        clock.advance(1)
        for ref in refs:
            store.get(ref)
        assert store.wait_idle(10)
        if wire.total:
            break
    assert wire.calls == {"BatchGetSecretValue": 1}
    assert [store.get(ref).reveal() for ref in refs] == ["v2"] * 20


def test_prefetch_fetches_pinned_refs_singly_and_reports_missing(
    counted: AwsSecretsManagerBackend, wire: WireLog, sm_admin: Any
) -> None:
    """Prefetch batches current versions (one request per secret, however many fields), reads a
    pinned stage with its own request, and reports a missing secret by name."""
    name, other, missing = unique(), unique(), unique()
    put(sm_admin, name, json.dumps({"a": "1", "b": "2"}))
    put(sm_admin, name, json.dumps({"a": "3", "b": "4"}))
    put(sm_admin, other, "other-value-c3d9")
    store = SecretStore([], reference_backends=[counted], negative_ttl=0)
    wanted = [
        f"aws-sm://{name}#a",
        f"aws-sm://{name}#b",
        f"aws-sm://{other}",
        f"aws-sm://{name}#a?stage=AWSPREVIOUS",
        f"aws-sm://{missing}",
    ]
    failures = store.prefetch(wanted)
    assert list(failures) == [f"aws-sm://{missing}"]
    assert isinstance(failures[f"aws-sm://{missing}"], SecretNotFound)
    assert wire.calls == {"BatchGetSecretValue": 1, "GetSecretValue": 1}
    assert [store.get(k).reveal() for k in wanted[:4]] == ["3", "4", "other-value-c3d9", "1"]


def test_batch_maps_names_full_and_partial_arns_back(
    counted: AwsSecretsManagerBackend, wire: WireLog, sm_admin: Any
) -> None:
    """One batch call serves a secret named by name, by full ARN and by partial ARN, each to its reference."""
    first, second = unique(), unique()
    arn = sm_admin.create_secret(Name=first, SecretString="first-value")["ARN"]
    second_arn = sm_admin.create_secret(Name=second, SecretString="second-value")["ARN"]
    store = SecretStore([], reference_backends=[counted])
    wanted = [f"aws-sm://{first}", f"aws-sm://{arn}", f"aws-sm://{arn[:-7]}", f"aws-sm://{second_arn[:-7]}"]
    assert store.prefetch(wanted) == {}
    assert wire.calls == {"BatchGetSecretValue": 1}
    assert [store.get(k).reveal() for k in wanted] == ["first-value"] * 3 + ["second-value"]
    assert wire.total == 1


def test_32_cold_readers_make_one_get_secret_value(
    counted: AwsSecretsManagerBackend, wire: WireLog, sm_admin: Any
) -> None:
    """32 threads reading a cold secret put exactly one GetSecretValue on the wire, and no DescribeSecret."""
    name = unique()
    put(sm_admin, name, "shared-value-8b40")
    store = SecretStore([], reference_backends=[counted])
    barrier = threading.Barrier(32)
    results: list[str] = []

    def read() -> None:
        barrier.wait()
        results.append(store.get(f"aws-sm://{name}").reveal())

    threads = [threading.Thread(target=read) for _ in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == ["shared-value-8b40"] * 32
    assert wire.calls == {"GetSecretValue": 1}


# -- outages ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_server_stopped_serves_cached_then_recovers_when_restarted(own_moto: MotoServer) -> None:
    """With the server down, cached values keep being served past their TTL; restarted, the store
    picks up the current values by itself."""
    names = [unique("outage") for _ in range(3)]
    admin = own_moto.client("secretsmanager")
    for name in names:
        admin.create_secret(Name=name, SecretString=json.dumps({"password": f"{name}-v1"}))
    # One attempt per fetch keeps the test short; the default (3 attempts) only adds retries.
    backend = AwsSecretsManagerBackend(
        endpoint_url=own_moto.url, config=Config(retries={"total_max_attempts": 1})
    )
    clock = FakeClock()
    store = SecretStore(
        [],
        reference_backends=[backend],
        ttl=60,
        max_stale=600,
        jitter=0.0,
        backoff_base=1,
        backoff_max=2,
        clock=clock,
    )
    refs = [f"aws-sm://{name}#password" for name in names]
    assert store.prefetch(refs) == {}

    own_moto.stop()
    clock.advance(61)  # every value has expired
    assert [store.get(ref).reveal() for ref in refs] == [f"{name}-v1" for name in names]
    assert store.stats()["stale_served"] >= 3
    assert store.wait_idle(10)
    assert [store.get(ref).reveal() for ref in refs] == [f"{name}-v1" for name in names]

    own_moto.start()  # the same port; moto starts empty, so the secrets are written again
    admin = own_moto.client("secretsmanager")
    for name in names:
        admin.create_secret(Name=name, SecretString=json.dumps({"password": f"{name}-v2"}))
    clock.advance(3)  # past the backoff
    for ref in refs:
        store.get(ref)  # still the stale value; schedules the retry
    assert store.wait_idle(10)
    assert [store.get(ref).reveal() for ref in refs] == [f"{name}-v2" for name in names]


def test_cold_read_with_the_server_down_is_backend_unavailable() -> None:
    """A secret never fetched, with the endpoint down, raises BackendUnavailable naming the secret."""
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    backend = AwsSecretsManagerBackend(endpoint_url=url)  # the default timeouts and retries
    store = SecretStore([], reference_backends=[backend])
    with pytest.raises(BackendUnavailable, match="down/secret") as info:
        store.get("aws-sm://down/secret")
    assert type(info.value.__cause__).__name__ == "EndpointConnectionError"


def test_batch_with_the_server_down_fails_each_secret_in_one_request() -> None:
    """A prefetch with the endpoint down reports BackendUnavailable for each secret by its own name,
    after one batch request, not one request per secret."""
    wire = WireLog()
    client = boto3.session.Session().client(
        "secretsmanager",
        endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(retries={"total_max_attempts": 1}),
    )
    store = SecretStore([], reference_backends=[AwsSecretsManagerBackend(client=wire.attach(client))])
    refs = [f"aws-sm://down/{i}" for i in range(5)]
    failures = store.prefetch(refs)
    assert sorted(failures) == refs
    for ref, err in failures.items():
        assert isinstance(err, BackendUnavailable)
        assert ref.removeprefix("aws-sm://") in str(err)
        assert type(err.__cause__).__name__ == "EndpointConnectionError"
    assert wire.calls == {"BatchGetSecretValue": 1}


# -- environment references --------------------------------------------------------------------


def test_env_value_that_is_a_reference_resolves(
    backend: AwsSecretsManagerBackend, sm_admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An environment variable holding aws-sm://name#field resolves to the secret's field."""
    name = unique()
    put(sm_admin, name, json.dumps({"password": "from-aws"}))
    monkeypatch.setenv("DB_PASSWORD", f"aws-sm://{name}#password")
    store = SecretStore([EnvBackend()], reference_backends=[backend])
    secret = store.get("DB_PASSWORD")
    assert secret.reveal() == "from-aws"
    assert secret.source == "aws-sm"


def test_secretkit_environ_resolves_an_aws_reference(
    moto: MotoServer, sm_admin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """secretkit.environ[NAME] gives the resolved value when the variable holds an aws-sm:// reference."""
    name = unique()
    put(sm_admin, name, json.dumps({"token": "environ-token"}))
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    monkeypatch.setenv("API_TOKEN", f"aws-sm://{name}#token")
    store = SecretStore([EnvBackend()])
    previous = _api._swap(store)
    try:
        assert secretkit.environ["API_TOKEN"] == "environ-token"
        assert secretkit.getenv("API_TOKEN") == "environ-token"
    finally:
        _api._swap(previous)
        store.close()


# -- what never leaks ------------------------------------------------------------------------


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def debug_records(*names: str) -> Iterator[list[logging.LogRecord]]:
    """Every record of these loggers at DEBUG, kept out of pytest's report (a failure must not print them)."""
    handler = _Collect()
    loggers = [logging.getLogger(n) for n in names]
    saved = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.DEBUG)
        lg.propagate = False
        lg.addHandler(handler)
    try:
        yield handler.records
    finally:
        for lg, (level, propagate) in zip(loggers, saved, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)
            lg.propagate = propagate


def test_debug_logging_never_shows_a_value(backend: AwsSecretsManagerBackend, sm_admin: Any) -> None:
    """With DEBUG logging on (botocore, urllib3, secretkit), fetching singly or in a batch logs no value."""
    name = unique()
    value = f"debug-{uuid.uuid4().hex}"
    put(sm_admin, name, value)
    with debug_records("botocore", "urllib3", "secretkit") as records:
        backend.fetch(SecretRef("aws-sm", name))
        backend.fetch_many([SecretRef("aws-sm", name)])
    assert any(r.name.startswith("botocore") for r in records)  # DEBUG really was on
    leaked = sorted({r.name for r in records if value in r.getMessage()})
    assert leaked == [], f"a secret value shows in log records from {leaked}"


def test_not_found_through_a_store_carries_no_value(backend: AwsSecretsManagerBackend, sm_admin: Any) -> None:
    """A missing field of an existing JSON secret is reported without any of the secret's values."""
    name = unique()
    put(sm_admin, name, json.dumps({"password": "never-shown-pw"}))
    store = SecretStore([], reference_backends=[backend])
    with pytest.raises(SecretNotFound) as info:
        store.get(f"aws-sm://{name}#nope")
    assert_no_value_in_error(info.value, "never-shown-pw")
