"""Vault AWS IAM auth: the login secretkit signs proves the workload's IAM identity to STS.

STS is moto's, with request signatures checked.

See ``identity/vault_iam.py`` for why the payload is replayed by the test rather than by a
Vault server: no server with an ``aws`` auth method can be installed here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from identity.conftest import ACCOUNT, AwsWorld, OidcIssuer, StsFront, web_identity
from identity.vault_iam import replay
from secretkit import ConfigurationError
from secretkit.backends.vault import AwsIamAuth


def sts(world: AwsWorld) -> str:
    return world.server.url + "/"


def use_user(monkeypatch: pytest.MonkeyPatch, world: AwsWorld, user: str) -> None:
    key_id, secret = world.keys[user]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)


def test_the_signed_login_proves_the_iam_user_to_sts(
    aws_world: AwsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signed with environment credentials, the payload makes STS answer with that user's ARN."""
    use_user(monkeypatch, aws_world, "vault-client")
    auth = AwsIamAuth("app", sts_endpoint=sts(aws_world), header_value="vault.example")
    payload = auth.login_data()
    assert payload["role"] == "app"
    assert payload["iam_http_request_method"] == "POST"
    verdict = replay(payload, sts_endpoint=sts(aws_world), server_id="vault.example")
    assert (verdict.status, verdict.arn) == (200, f"arn:aws:iam::{ACCOUNT}:user/vault-client")


def test_credentials_from_a_profile_sign_the_login(
    aws_world: AwsWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A named profile in the shared credentials file is one of boto3's sources, and signs the login."""
    key_id, secret = aws_world.keys["vault-client"]
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[app]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}\n")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    payload = AwsIamAuth("app", sts_endpoint=sts(aws_world), profile="app").login_data()
    assert replay(payload, sts_endpoint=sts(aws_world)).arn == f"arn:aws:iam::{ACCOUNT}:user/vault-client"


def test_web_identity_credentials_sign_the_login(
    aws_world: AwsWorld,
    sts_front: StsFront,
    oidc: OidcIssuer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """On EKS (IRSA) boto3 assumes the pod's role with its projected token; that role is who logs in."""
    token = tmp_path / "token"
    token.write_text(oidc.token())
    web_identity(monkeypatch, token, aws_world.app_role, sts_front.url)
    payload = AwsIamAuth("app", sts_endpoint=sts(aws_world)).login_data()
    verdict = replay(payload, sts_endpoint=sts(aws_world))
    assert verdict.status == 200
    assert verdict.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/app/pod-app"


def test_the_default_target_is_the_global_sts_endpoint_vault_expects(
    aws_world: AwsWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no endpoint or region the request is signed for https://sts.amazonaws.com/ (us-east-1),
    Vault's default; region= signs for that region's endpoint."""
    import base64

    use_user(monkeypatch, aws_world, "vault-client")
    default = AwsIamAuth("app").login_data()
    assert base64.b64decode(default["iam_request_url"]) == b"https://sts.amazonaws.com/"
    assert b"/us-east-1/sts/aws4_request" in base64.b64decode(default["iam_request_headers"])
    regional = AwsIamAuth("app", region="eu-west-1").login_data()
    assert base64.b64decode(regional["iam_request_url"]) == b"https://sts.eu-west-1.amazonaws.com/"
    assert b"/eu-west-1/sts/aws4_request" in base64.b64decode(regional["iam_request_headers"])


def test_no_aws_credentials_says_what_to_give_the_workload(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where boto3's chain finds nothing, the error says to give the workload a role, not to paste keys."""
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(ConfigurationError, match="IAM role"):
        AwsIamAuth("app").login_data()
