"""AWS without keys: web identity (EKS IRSA) through boto3's chain, and cross-account roles.

Against moto with IAM enforced: every read is allowed only by the assumed role's policy.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from identity.conftest import AwsWorld, OidcIssuer, StsFront, web_identity
from secretkit import AccessDenied, SecretkitError, SecretNotFound, SecretStore
from secretkit.backends.aws import AwsSecretsManagerBackend
from secretkit.testing import assert_no_value_in_error

THREADS = 8
SECONDS = 20.0


@pytest.fixture(autouse=True)
def secrets_manager_at_moto(aws_world: AwsWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", aws_world.server.url)


@pytest.mark.slow
def test_web_identity_credentials_that_expire_under_load_are_refreshed_without_a_failed_read(
    aws_world: AwsWorld, oidc: OidcIssuer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A pod with only a projected token and a role ARN reads Secrets Manager from eight threads for 20 s
    while its role credentials come due every 3 s and kubelet rotates the token: 0 failed reads."""
    token = tmp_path / "token"
    token.write_text(oidc.token(subject="pod-1"))
    with StsFront(aws_world, oidc, lifetime=3.0) as front:
        web_identity(monkeypatch, token, aws_world.app_role, front.url)
        store = SecretStore([AwsSecretsManagerBackend()], ttl=0.5, max_stale=60)
        names = [f"aws-sm://{name}#password" for name in aws_world.secrets]
        reads, failures = [0] * THREADS, [0] * THREADS
        errors: list[BaseException] = []
        stop = time.monotonic() + SECONDS

        def reader(slot: int) -> None:
            turn = 0
            while time.monotonic() < stop:
                turn += 1
                index = (slot + turn) % len(names)
                try:
                    assert store.get(names[index]).reveal() == f"pw-{index}"
                    reads[slot] += 1
                except BaseException as exc:  # counted, never raised in the thread
                    failures[slot] += 1
                    errors.append(exc)
                time.sleep(0.02)

        threads = [threading.Thread(target=reader, args=(i,)) for i in range(THREADS)]
        for thread in threads:
            thread.start()
        time.sleep(SECONDS / 2)
        token.write_text(oidc.token(subject="pod-1-rotated"))  # kubelet rewrites the projected token
        for thread in threads:
            thread.join(SECONDS + 30)
        store.close()
        assumed = front.actions("AssumeRoleWithWebIdentity")

    assert sum(failures) == 0, f"{sum(failures)} failed reads of {sum(reads)}: {errors[:3]!r}"
    assert sum(reads) > THREADS * 100
    # Refreshed all along (about every 3 s), not once per read or per thread.
    assert 4 <= len(assumed) <= SECONDS
    tokens = [call["WebIdentityToken"][0] for call in assumed]
    # boto3 reads the token file at each refresh: the calls after kubelet's rewrite send the new token.
    assert tokens[0] != tokens[-1]
    assert tokens[-1] == token.read_text()
    print(f"\n{sum(reads)} reads, 0 failed; {len(assumed)} AssumeRoleWithWebIdentity calls")


def test_a_forged_web_identity_token_reads_nothing(
    aws_world: AwsWorld, sts_front: StsFront, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A token the OIDC issuer did not sign gets no role credentials, so no secret."""
    token = tmp_path / "token"
    token.write_text(OidcIssuer().token())
    web_identity(monkeypatch, token, aws_world.app_role, sts_front.url)
    with SecretStore([AwsSecretsManagerBackend()]) as store, pytest.raises(SecretkitError) as info:
        store.get(f"aws-sm://{aws_world.secrets[0]}#password")
    assert not isinstance(info.value, SecretNotFound)
    assert_no_value_in_error(info.value, "pw-0", token.read_text())


def use_source_user(world: AwsWorld, monkeypatch: pytest.MonkeyPatch, front: StsFront) -> None:
    key_id, secret = world.keys["source"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", front.url)


def test_role_arn_reads_another_accounts_secrets_as_that_role(
    aws_world: AwsWorld, sts_front: StsFront, monkeypatch: pytest.MonkeyPatch
) -> None:
    """role_arn= assumes the role (with the external id) and reads with its credentials; the caller's own
    identity, allowed nothing but sts:AssumeRole, could not."""
    use_source_user(aws_world, monkeypatch, sts_front)
    name = f"aws-sm://{aws_world.secrets[1]}#password"
    with SecretStore([AwsSecretsManagerBackend()]) as store, pytest.raises(AccessDenied):
        store.get(name)
    backend = AwsSecretsManagerBackend(role_arn=aws_world.cross_role, external_id="ext-7f3a")
    with SecretStore([backend]) as store:
        assert store.get(name).reveal() == "pw-1"
    calls = sts_front.actions("AssumeRole")
    assert [(c["RoleArn"], c["ExternalId"]) for c in calls] == [([aws_world.cross_role], ["ext-7f3a"])]
    assert calls[0]["RoleSessionName"] == ["secretkit"]


def test_role_arn_is_assumed_lazily_and_refreshed_not_per_read(
    aws_world: AwsWorld, sts_front: StsFront, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Building the backend sends nothing; many reads share one AssumeRole while the credentials last."""
    use_source_user(aws_world, monkeypatch, sts_front)
    backend = AwsSecretsManagerBackend(role_arn=aws_world.cross_role)
    assert sts_front.actions("AssumeRole") == []
    with SecretStore([backend], ttl=0) as store:
        for _ in range(20):
            assert store.get(f"aws-sm://{aws_world.secrets[2]}#password").reveal() == "pw-2"
    assert len(sts_front.actions("AssumeRole")) == 1
