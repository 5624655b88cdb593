"""AWS SSM Parameter Store (``aws-ssm://``) against a real moto server, through boto3."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from secretkit import InvalidReference, SecretNotFound, SecretRef, SecretStore
from secretkit.backends.aws_ssm import AwsParameterStoreBackend
from secretkit.testing import BackendContract, FakeClock
from servers.moto_server import MotoServer, WireLog


def unique(prefix: str = "app") -> str:
    return f"/{prefix}/{uuid.uuid4().hex[:10]}"


def put(admin: Any, name: str, value: str, kind: str = "SecureString") -> int:
    """Write a new version of parameter ``name``; returns its version number."""
    return int(admin.put_parameter(Name=name, Value=value, Type=kind, Overwrite=True)["Version"])


@pytest.fixture
def backend(moto: MotoServer) -> Iterator[AwsParameterStoreBackend]:
    b = AwsParameterStoreBackend(endpoint_url=moto.url)
    yield b
    b.close()


@pytest.fixture
def counted(moto: MotoServer, wire: WireLog) -> AwsParameterStoreBackend:
    """A backend whose every request on the wire is counted by ``wire``."""
    return AwsParameterStoreBackend(client=wire.attach(moto.client("ssm")))


class TestAwsParameterStoreContract(BackendContract):
    supports_binary = False

    @pytest.fixture
    def backend(self, moto: MotoServer, ssm_admin: Any) -> Iterator[AwsParameterStoreBackend]:
        self.admin = ssm_admin
        b = AwsParameterStoreBackend(endpoint_url=moto.url)
        yield b
        b.close()

    def put(self, backend: Any, name: str, value: str | bytes) -> None:
        assert isinstance(value, str)
        put(self.admin, name, value)


def test_zero_config_through_aws_endpoint_url(
    moto: MotoServer, ssm_admin: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With only AWS_* variables set, a store with no backend configured resolves aws-ssm:///path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    name = unique()
    put(ssm_admin, name, "zero-config-key")
    with SecretStore() as store:
        assert store.get(f"aws-ssm://{name}").reveal() == "zero-config-key"
        assert isinstance(store.backend_for("aws-ssm"), AwsParameterStoreBackend)


def test_secure_string_is_decrypted(backend: AwsParameterStoreBackend, ssm_admin: Any) -> None:
    """A SecureString comes back decrypted, with its version number as the version."""
    name = unique()
    version = put(ssm_admin, name, "decrypted-value")
    fetched = backend.fetch(SecretRef("aws-ssm", name))
    assert (fetched.value, fetched.version) == ("decrypted-value", str(version))
    assert fetched.metadata["type"] == "SecureString"


def test_plain_and_list_parameters_are_text(backend: AwsParameterStoreBackend, ssm_admin: Any) -> None:
    """String and StringList parameters come back as their text."""
    plain, listed = unique(), unique()
    put(ssm_admin, plain, "just text", kind="String")
    put(ssm_admin, listed, "a,b,c", kind="StringList")
    assert backend.fetch(SecretRef("aws-ssm", plain)).value == "just text"
    assert backend.fetch(SecretRef("aws-ssm", listed)).value == "a,b,c"


def test_hierarchical_name_without_leading_slash(backend: AwsParameterStoreBackend, ssm_admin: Any) -> None:
    """aws-ssm://prod/app/key and aws-ssm:///prod/app/key name the same parameter."""
    name = unique()
    put(ssm_admin, name, "same-parameter")
    store = SecretStore([], reference_backends=[backend])
    assert store.get(f"aws-ssm://{name}").reveal() == "same-parameter"
    assert store.get(f"aws-ssm://{name.lstrip('/')}").reveal() == "same-parameter"


def test_json_field(backend: AwsParameterStoreBackend, ssm_admin: Any) -> None:
    """#field picks a key out of a JSON parameter."""
    name = unique()
    put(ssm_admin, name, '{"user": "app", "password": "ssm-pw"}')
    store = SecretStore([], reference_backends=[backend])
    assert store.get(f"aws-ssm://{name}#password").reveal() == "ssm-pw"


def test_version_and_label_options(backend: AwsParameterStoreBackend, ssm_admin: Any) -> None:
    """?version=N reads version N and ?label=L the version carrying that label."""
    name = unique()
    first = put(ssm_admin, name, "one")
    put(ssm_admin, name, "two")
    ssm_admin.label_parameter_version(Name=name, ParameterVersion=first, Labels=["stable"])
    store = SecretStore([], reference_backends=[backend])
    assert store.get(f"aws-ssm://{name}?version={first}").reveal() == "one"
    assert store.get(f"aws-ssm://{name}?label=stable").reveal() == "one"
    assert store.get(f"aws-ssm://{name}").reveal() == "two"


def test_bad_options_are_invalid_references(backend: AwsParameterStoreBackend) -> None:
    """A non-numeric version, a version with a label, or an unknown option is an InvalidReference."""
    for options in ({"version": "latest"}, {"version": "1", "label": "x"}, {"stage": "AWSCURRENT"}):
        with pytest.raises(InvalidReference):
            backend.fetch(SecretRef("aws-ssm", "/x", options=options))


def test_missing_parameter_and_version_are_not_found(
    backend: AwsParameterStoreBackend, ssm_admin: Any
) -> None:
    """A parameter that does not exist, or a version it does not have, is SecretNotFound."""
    name = unique()
    put(ssm_admin, name, "only-value-2f6e")
    with pytest.raises(SecretNotFound):
        backend.fetch(SecretRef("aws-ssm", unique()))
    with pytest.raises(SecretNotFound):
        backend.fetch(SecretRef("aws-ssm", name, options={"version": "9"}))


def test_prefetch_of_25_parameters_makes_3_get_parameters_calls(
    counted: AwsParameterStoreBackend, wire: WireLog, ssm_admin: Any
) -> None:
    """Prefetching 25 parameters sends 3 GetParameters requests (10 + 10 + 5) and nothing else."""
    names = [unique("batch") for _ in range(25)]
    for i, name in enumerate(names):
        put(ssm_admin, name, f"value-{i}")
    store = SecretStore([], reference_backends=[counted])
    refs = [f"aws-ssm://{name}" for name in names]
    assert store.prefetch(refs) == {}
    assert wire.calls == {"GetParameters": 3}
    assert [store.get(ref).reveal() for ref in refs] == [f"value-{i}" for i in range(25)]
    assert wire.total == 3


def test_batch_tells_latest_from_pinned_and_reports_missing(
    counted: AwsParameterStoreBackend, wire: WireLog, ssm_admin: Any
) -> None:
    """One GetParameters call serves the latest and a pinned version of one parameter, and reports a
    missing parameter and a missing version as not found."""
    name, missing = unique(), unique()
    first = put(ssm_admin, name, "old")
    put(ssm_admin, name, "new")
    store = SecretStore([], reference_backends=[counted], negative_ttl=0)
    wanted = [
        f"aws-ssm://{name}",
        f"aws-ssm://{name}?version={first}",
        f"aws-ssm://{missing}",
        f"aws-ssm://{name}?version=7",
    ]
    failures = store.prefetch(wanted)
    assert sorted(failures) == sorted(wanted[2:])
    assert all(isinstance(e, SecretNotFound) for e in failures.values())
    assert wire.calls == {"GetParameters": 1}
    assert [store.get(k).reveal() for k in wanted[:2]] == ["new", "old"]


def test_refreshing_due_parameters_is_one_batch_call(
    counted: AwsParameterStoreBackend, wire: WireLog, ssm_admin: Any
) -> None:
    """When 10 cached parameters come due together, one read refreshes them all in one GetParameters call."""
    names = [unique("due") for _ in range(10)]
    for name in names:
        put(ssm_admin, name, "v1")
    clock = FakeClock()
    store = SecretStore([], reference_backends=[counted], ttl=300, jitter=0.0, clock=clock)
    refs = [f"aws-ssm://{name}" for name in names]
    assert store.prefetch(refs) == {}
    for name in names:
        put(ssm_admin, name, "v2")
    wire.reset()
    clock.advance(250)
    assert store.get(refs[0]).reveal() == "v1"
    assert store.wait_idle(10)
    assert wire.calls == {"GetParameters": 1}
    assert [store.get(ref).reveal() for ref in refs] == ["v2"] * 10
