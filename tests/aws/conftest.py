"""Real moto servers for the AWS backend tests: one shared, one enforcing IAM, one per outage test."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from servers.aws_env import use_test_aws_env
from servers.moto_server import MotoServer, WireLog


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """A moto server shared by the session; tests use unique names, so they never collide."""
    with MotoServer() as server:
        yield server


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """boto3 sees test credentials and a region, and no real AWS configuration of the machine."""
    use_test_aws_env(monkeypatch, tmp_path)


@pytest.fixture(scope="session")
def sm_admin(moto: MotoServer) -> Any:
    """A boto3 Secrets Manager client to write test data with."""
    return moto.client("secretsmanager")


@pytest.fixture(scope="session")
def ssm_admin(moto: MotoServer) -> Any:
    """A boto3 SSM client to write test data with."""
    return moto.client("ssm")


@pytest.fixture
def own_moto() -> Iterator[MotoServer]:
    """A moto server of this test's own, which the test may stop and restart."""
    with MotoServer() as server:
        yield server


@dataclass
class IamWorld:
    """A moto server that checks IAM, with secrets, parameters and users already made."""

    server: MotoServer
    keys: dict[str, tuple[str, str]] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    parameters: list[str] = field(default_factory=list)

    def client(self, service: str, user: str) -> Any:
        key_id, secret = self.keys[user]
        return self.server.client(service, aws_access_key_id=key_id, aws_secret_access_key=secret)


_POLICIES: dict[str, list[str]] = {
    "nobody": [],
    # Single reads only: no BatchGetSecretValue, no GetParameters.
    "reader": ["secretsmanager:GetSecretValue", "ssm:GetParameter"],
    "batcher": [
        "secretsmanager:GetSecretValue",
        "secretsmanager:BatchGetSecretValue",
        "ssm:GetParameter",
        "ssm:GetParameters",
    ],
}


@pytest.fixture(scope="session")
def iam_world() -> Iterator[IamWorld]:
    """Users ``nobody``, ``reader`` (single reads) and ``batcher`` (batch reads too), then IAM on."""
    with MotoServer() as server:
        world = IamWorld(server)
        sm, ssm, iam = server.client("secretsmanager"), server.client("ssm"), server.client("iam")
        for i in range(3):
            name = f"iam/secret-{i}"
            sm.create_secret(Name=name, SecretString=json.dumps({"password": f"pw-{i}"}))
            world.secrets.append(name)
            parameter = f"/iam/parameter-{i}"
            ssm.put_parameter(Name=parameter, Value=f"param-{i}", Type="SecureString")
            world.parameters.append(parameter)
        for user, actions in _POLICIES.items():
            iam.create_user(UserName=user)
            if actions:
                document = {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
                }
                iam.put_user_policy(UserName=user, PolicyName="reads", PolicyDocument=json.dumps(document))
            key = iam.create_access_key(UserName=user)["AccessKey"]
            world.keys[user] = (key["AccessKeyId"], key["SecretAccessKey"])
        server.enforce_iam()
        yield world


@pytest.fixture
def wire() -> WireLog:
    """Counts the requests a client sends, by operation (attach it with ``wire.attach(client)``)."""
    return WireLog()
