"""How the AWS backends report failures: IAM refusals from a real moto server that checks IAM,
AWS error codes moto cannot produce, a missing boto3, and the lazy import of the SDK."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from botocore.exceptions import ClientError

from secretkit import (
    AccessDenied,
    BackendUnavailable,
    InvalidReference,
    MissingDependency,
    SecretNotFound,
    SecretRef,
    SecretStore,
)
from secretkit._throttled import Throttled
from secretkit.backends import _aws
from secretkit.backends.aws import AwsSecretsManagerBackend
from secretkit.backends.aws_ssm import AwsParameterStoreBackend
from servers.moto_server import MotoServer, WireLog

# -- IAM refusals, on the wire -------------------------------------------------------------------


def test_denied_secret_names_the_secret_backend_and_permission(
    iam_world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller without GetSecretValue gets AccessDenied naming the secret, the backend and the permission."""
    key_id, secret_key = iam_world.keys["nobody"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    store = SecretStore([], reference_backends=[AwsSecretsManagerBackend(endpoint_url=iam_world.server.url)])
    name = iam_world.secrets[0]
    with pytest.raises(AccessDenied) as info:
        store.get(f"aws-sm://{name}#password")
    message = str(info.value)
    assert name in message
    assert "aws-sm" in message
    assert "secretsmanager:GetSecretValue" in message
    assert isinstance(info.value.__cause__, ClientError)


def test_denied_parameter_names_the_parameter_and_permission(
    iam_world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller without GetParameter gets AccessDenied naming the parameter and the permission."""
    key_id, secret_key = iam_world.keys["nobody"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    store = SecretStore([], reference_backends=[AwsParameterStoreBackend(endpoint_url=iam_world.server.url)])
    name = iam_world.parameters[0]
    with pytest.raises(AccessDenied) as info:
        store.get(f"aws-ssm://{name}")
    assert name in str(info.value)
    assert "ssm:GetParameter" in str(info.value)


def test_unknown_access_key_is_access_denied(iam_world: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials AWS does not recognise are AccessDenied, with a hint to check them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-key")
    backend = AwsSecretsManagerBackend(endpoint_url=iam_world.server.url)
    with pytest.raises(AccessDenied, match="credentials"):
        backend.fetch(SecretRef("aws-sm", iam_world.secrets[0]))


def test_without_batch_permission_secrets_are_fetched_one_by_one(iam_world: Any) -> None:
    """A caller allowed GetSecretValue but not BatchGetSecretValue still prefetches everything, and
    stops trying the batch call after the first refusal."""
    wire = WireLog()
    backend = AwsSecretsManagerBackend(client=wire.attach(iam_world.client("secretsmanager", "reader")))
    store = SecretStore([], reference_backends=[backend])
    refs = [f"aws-sm://{name}#password" for name in iam_world.secrets]
    assert store.prefetch(refs) == {}
    assert [store.get(r).reveal() for r in refs] == ["pw-0", "pw-1", "pw-2"]
    assert wire.calls == {"BatchGetSecretValue": 1, "GetSecretValue": 3}
    store.invalidate()
    wire.reset()
    assert store.prefetch(refs) == {}
    assert wire.calls == {"GetSecretValue": 3}


def test_bad_credentials_do_not_switch_batching_off(iam_world: Any) -> None:
    """A batch refused for bad credentials (not for the batch permission) is tried again next time."""
    wire = WireLog()
    client = iam_world.server.client(
        "secretsmanager", aws_access_key_id="AKIAUNKNOWNKEY000000", aws_secret_access_key="nope"
    )
    backend = AwsSecretsManagerBackend(client=wire.attach(client))
    store = SecretStore([], reference_backends=[backend])
    refs = [f"aws-sm://{name}" for name in iam_world.secrets]
    for _ in range(2):
        failures = store.prefetch(refs)
        assert sorted(failures) == sorted(refs)
        assert all(isinstance(e, AccessDenied) for e in failures.values())
    assert wire.calls == {"BatchGetSecretValue": 2, "GetSecretValue": 6}


def test_with_batch_permission_secrets_are_fetched_in_one_call(iam_world: Any) -> None:
    """A caller allowed BatchGetSecretValue prefetches through IAM checks in one call."""
    wire = WireLog()
    backend = AwsSecretsManagerBackend(client=wire.attach(iam_world.client("secretsmanager", "batcher")))
    store = SecretStore([], reference_backends=[backend])
    refs = [f"aws-sm://{name}#password" for name in iam_world.secrets]
    assert store.prefetch(refs) == {}
    assert wire.calls == {"BatchGetSecretValue": 1}


def test_without_get_parameters_permission_parameters_are_fetched_one_by_one(iam_world: Any) -> None:
    """A caller allowed GetParameter but not GetParameters still prefetches every parameter."""
    wire = WireLog()
    backend = AwsParameterStoreBackend(client=wire.attach(iam_world.client("ssm", "reader")))
    store = SecretStore([], reference_backends=[backend])
    refs = [f"aws-ssm://{name}" for name in iam_world.parameters]
    assert store.prefetch(refs) == {}
    assert [store.get(r).reveal() for r in refs] == ["param-0", "param-1", "param-2"]
    assert wire.calls == {"GetParameters": 1, "GetParameter": 3}


def test_denied_batch_member_is_denied_in_prefetch(iam_world: Any) -> None:
    """A caller with no rights at all gets AccessDenied for each prefetched secret, by name."""
    backend = AwsSecretsManagerBackend(client=iam_world.client("secretsmanager", "nobody"))
    store = SecretStore([], reference_backends=[backend])
    refs = [f"aws-sm://{name}" for name in iam_world.secrets]
    failures = store.prefetch(refs)
    assert sorted(failures) == sorted(refs)
    assert all(isinstance(e, AccessDenied) for e in failures.values())


# -- AWS error codes moto does not produce -----------------------------------------------------------


def _client_error(
    code: str, message: str = "m", status: int = 400, operation: str = "GetSecretValue"
) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


CTX = _aws.ErrorContext("aws-sm", "AWS Secrets Manager", "prod/db", "secretsmanager:GetSecretValue")


@pytest.mark.parametrize(
    ("code", "status", "expected", "says"),
    [
        ("ResourceNotFoundException", 400, SecretNotFound, "prod/db"),
        ("ParameterNotFound", 400, SecretNotFound, "prod/db"),
        ("ParameterVersionNotFound", 400, SecretNotFound, "prod/db"),
        ("AccessDeniedException", 400, AccessDenied, "secretsmanager:GetSecretValue"),
        ("UnrecognizedClientException", 400, AccessDenied, "credentials"),
        ("ExpiredTokenException", 400, AccessDenied, "credentials"),
        ("DecryptionFailure", 400, AccessDenied, "kms:Decrypt"),
        ("KMSAccessDeniedException", 400, AccessDenied, "kms:Decrypt"),
        # Throttled: a BackendUnavailable the store's concurrency limiter reads.
        ("ThrottlingException", 400, Throttled, "throttled"),
        ("TooManyRequestsException", 429, Throttled, "throttled"),
        ("InternalServiceError", 500, BackendUnavailable, "failed"),
        ("ServiceUnavailable", 503, BackendUnavailable, "failed"),
        ("InvalidParameterException", 400, InvalidReference, "rejected"),
        ("SomethingNew", 403, AccessDenied, "refused"),
    ],
)
def test_aws_error_codes_map_to_our_errors(
    code: str, status: int, expected: type[Exception], says: str
) -> None:
    """Each AWS error code becomes the secretkit error a caller can act on, naming the secret."""
    err = _aws.map_error(_client_error(code, status=status), CTX)
    assert type(err) is expected
    assert says in str(err)
    assert err.backend == "aws-sm" or isinstance(err, SecretNotFound)


def test_marked_for_deletion_is_not_found() -> None:
    """InvalidRequestException for a secret scheduled for deletion is SecretNotFound."""
    err = _aws.map_error(
        _client_error(
            "InvalidRequestException",
            "You can't perform this operation on the secret because it was marked for deletion.",
        ),
        CTX,
    )
    assert isinstance(err, SecretNotFound)


def test_unparsable_response_is_unavailable_and_chains_nothing() -> None:
    """A response botocore cannot parse is BackendUnavailable with no cause: the parser's message quotes
    the raw body, which may hold the secret."""
    from botocore.parsers import ResponseParserError

    def broken(**_: Any) -> Any:
        raise ResponseParserError('Unable to parse response: b\'{"SecretString": "raw-body-value"\'')

    with pytest.raises(BackendUnavailable) as info:
        _aws.call(CTX, broken)
    assert info.value.__cause__ is None
    assert info.value.__context__ is None
    assert "raw-body-value" not in str(info.value)


# -- the SDK is optional and imported late ------------------------------------------------------------


def test_missing_boto3_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without boto3, building either backend raises MissingDependency saying pip install "secretkit[aws]"."""
    monkeypatch.setitem(sys.modules, "boto3", None)
    for cls in (AwsSecretsManagerBackend, AwsParameterStoreBackend):
        with pytest.raises(MissingDependency, match=r"secretkit\[aws\]") as info:
            cls()
        assert info.value.package == "boto3"


def test_importing_the_backend_modules_imports_no_sdk() -> None:
    """Importing secretkit, and even the AWS backend modules, imports neither boto3 nor botocore."""
    code = (
        "import sys, secretkit, secretkit.backends.aws, secretkit.backends.aws_ssm\n"
        "loaded = sorted(m for m in ('boto3', 'botocore') if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == ""


def test_no_region_anywhere_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, moto: MotoServer
) -> None:
    """With no region configured, a reference without ?region= says how to set one, and one with it works."""
    from secretkit import ConfigurationError

    monkeypatch.delenv("AWS_DEFAULT_REGION")
    backend = AwsSecretsManagerBackend(endpoint_url=moto.url)
    assert backend.region is None
    with pytest.raises(ConfigurationError, match="AWS_DEFAULT_REGION"):
        backend.fetch(SecretRef("aws-sm", "anything"))
    with pytest.raises(SecretNotFound):
        backend.fetch(SecretRef("aws-sm", "no-such-secret", options={"region": "us-east-1"}))


def test_aws_region_is_honoured_when_aws_default_region_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """AWS_REGION (set by Lambda, ECS and many CI systems) is the default region when boto3 finds none."""
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    assert AwsSecretsManagerBackend().region == "ap-southeast-2"
    assert AwsParameterStoreBackend(region="eu-central-1").region == "eu-central-1"


def test_unknown_profile_is_a_configuration_error() -> None:
    """A profile that is not in the AWS config files is a ConfigurationError naming it."""
    from secretkit import ConfigurationError

    with pytest.raises(ConfigurationError, match="no-such-profile"):
        AwsSecretsManagerBackend(profile="no-such-profile")
