"""Files that were tampered with, or that this environment cannot open, are refused whole.

Every refusal names the file and the reason, and no message carries a value of the file.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretkit import AccessDenied, BackendUnavailable, ConfigurationError, SecretkitError, SecretStore
from secretkit.testing import assert_no_value_in_error
from servers.moto_server import MotoServer, free_port

VALUES = ("tamper-password-1", "tamper-token-2", "visible-host-3")
PLAIN = f"password: {VALUES[0]}\ntoken: {VALUES[1]}\nhost_unencrypted: {VALUES[2]}\n"


@pytest.fixture
def secret_file(sops, age_flags, tmp_path) -> Path:
    return sops.encrypt(tmp_path / "secrets.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)


def refused(path: Path, field: str = "password", expected: type[SecretkitError] = AccessDenied) -> str:
    """Read ``field`` through a fresh store; assert the refusal is clean and return its message."""
    store = SecretStore([], negative_ttl=0)
    with pytest.raises(expected) as info:
        store.get(f"sops://{path}#{field}")
    assert_no_value_in_error(info.value, *VALUES)
    message = str(info.value)
    assert str(path) in message
    return message


def test_untampered_file_reads(secret_file) -> None:
    """The control: the same file, untouched, reads."""
    assert SecretStore([]).get(f"sops://{secret_file}#token").reveal() == VALUES[1]


def test_a_flipped_ciphertext_byte_is_refused(secret_file) -> None:
    """One flipped bit in a value's ciphertext fails its authentication tag."""
    text = secret_file.read_text()
    match = re.search(r"password: ENC\[AES256_GCM,data:([^,]+),", text)
    assert match is not None
    data = bytearray(base64.b64decode(match.group(1)))
    data[0] ^= 0x01
    secret_file.write_text(text.replace(match.group(1), base64.b64encode(bytes(data)).decode()))
    message = refused(secret_file)
    assert "'password' does not decrypt" in message


@pytest.mark.parametrize("field", ["password", "token", "host_unencrypted"])
def test_a_changed_plaintext_value_fails_the_mac_for_every_field(secret_file, field) -> None:
    """A changed `_unencrypted` value fails the MAC: no field is served, not even an untouched one."""
    secret_file.write_text(secret_file.read_text().replace(VALUES[2], "evil.example"))
    assert "MAC does not match" in refused(secret_file, field)


def test_a_removed_key_fails_the_mac(secret_file) -> None:
    """Deleting an encrypted entry is detected."""
    lines = [line for line in secret_file.read_text().splitlines() if not line.startswith("token:")]
    secret_file.write_text("\n".join(lines) + "\n")
    assert "MAC does not match" in refused(secret_file)


def test_a_value_moved_to_another_key_is_refused(secret_file) -> None:
    """Swapping two ciphertexts fails: a value's path is part of its authenticated data."""
    text = secret_file.read_text()
    password = re.search(r"^password: (ENC\[.*\])$", text, re.M)
    token = re.search(r"^token: (ENC\[.*\])$", text, re.M)
    assert password and token
    swapped = text.replace(password.group(1), "@@P@@").replace(token.group(1), password.group(1))
    secret_file.write_text(swapped.replace("@@P@@", token.group(1)))
    assert "does not decrypt" in refused(secret_file, "token")


def test_a_value_replaced_by_plaintext_is_refused(secret_file) -> None:
    """An encrypted entry replaced by a plain string is refused, not served."""
    text = re.sub(r"^token: ENC\[.*\]$", "token: injected-plaintext", secret_file.read_text(), flags=re.M)
    secret_file.write_text(text)
    assert "not in sops's ENC" in refused(secret_file, "token")


def test_a_changed_lastmodified_is_refused(secret_file) -> None:
    """lastmodified authenticates the MAC: changing it is detected."""
    text = re.sub(r'lastmodified: "[^"]+"', 'lastmodified: "2001-01-01T00:00:00Z"', secret_file.read_text())
    secret_file.write_text(text)
    assert "MAC cannot be decrypted" in refused(secret_file)


def test_a_wrong_age_identity_is_refused(secret_file, monkeypatch, tmp_path, other_age_key, age_key) -> None:
    """With only another identity, the error names the recipient and where identities were looked for."""
    wrong = tmp_path / "wrong-keys.txt"
    wrong.write_text(other_age_key.identity + "\n")
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(wrong))
    message = refused(secret_file)
    assert age_key.recipient in message
    assert "SOPS_AGE_KEY_FILE" in message
    assert other_age_key.identity not in message


def test_no_age_identity_says_where_to_put_one(secret_file, monkeypatch) -> None:
    """With no identity anywhere, the error says which variables and file sops reads."""
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    message = refused(secret_file)
    assert "no age identity found" in message and "SOPS_AGE_KEY" in message


def test_multiple_key_groups_are_a_clear_configuration_error(sops, age_key, other_age_key, tmp_path) -> None:
    """Shamir key groups are not supported, and the error says so and what to do."""
    (sops.workdir / ".sops.yaml").write_text(
        "creation_rules:\n"
        "  - shamir_threshold: 2\n"
        "    key_groups:\n"
        f"      - age: [{age_key.recipient}]\n"
        f"      - age: [{other_age_key.recipient}]\n"
    )
    path = sops.encrypt(tmp_path / "shamir.enc.yaml", PLAIN, fmt="yaml", keys=[])
    message = refused(path, expected=ConfigurationError)
    assert "2 key groups" in message and "Shamir" in message


def test_a_pgp_only_file_is_a_clear_configuration_error(sops, age_flags, tmp_path) -> None:
    """A file only PGP can open names PGP as unsupported."""
    path = sops.encrypt(
        tmp_path / "pgp.enc.json", json.dumps({"password": VALUES[0]}), fmt="json", keys=age_flags
    )
    document = json.loads(path.read_text())
    document["sops"].pop("age")
    document["sops"]["pgp"] = [
        {
            "fp": "85D77543B3D624B63CEA9E6DBC17301B491B3F21",
            "enc": "-----BEGIN PGP...",
            "created_at": "2026-01-01T00:00:00Z",
        }
    ]
    path.write_text(json.dumps(document))
    message = refused(path, expected=ConfigurationError)
    assert "PGP" in message and "not support" in message


# -- key services that refuse ------------------------------------------------------------


@pytest.fixture
def iam_moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def test_kms_access_denied_is_refused(iam_moto, sops, tmp_path, monkeypatch) -> None:
    """An IAM user without kms:Decrypt gets AccessDenied naming the key and KMS's refusal."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", iam_moto.url)
    sops.env["AWS_ENDPOINT_URL"] = iam_moto.url
    arn = iam_moto.client("kms").create_key()["KeyMetadata"]["Arn"]
    path = sops.encrypt(tmp_path / "kms.enc.yaml", PLAIN, fmt="yaml", keys=["--kms", arn])
    iam = iam_moto.client("iam")
    iam.create_user(UserName="no-kms")
    key = iam.create_access_key(UserName="no-kms")["AccessKey"]
    iam_moto.enforce_iam()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    message = refused(path)
    assert arn in message and "KMS refused Decrypt" in message and "HTTP 403" in message


def test_a_missing_transit_key_is_refused(transit, sops, tmp_path, openbao) -> None:
    """A file whose transit key was deleted is refused, naming the key."""
    name = f"deleted-{tmp_path.name[-8:]}"
    transit.secrets.transit.create_key(name, mount_point="sops")
    path = sops.encrypt(
        tmp_path / "v.enc.yaml",
        PLAIN,
        fmt="yaml",
        keys=["--hc-vault-transit", f"{openbao.url}/v1/sops/keys/{name}"],
    )
    transit.secrets.transit.update_key_configuration(name, deletion_allowed=True, mount_point="sops")
    transit.secrets.transit.delete_key(name, mount_point="sops")
    message = refused(path)
    assert f"sops/keys/{name}" in message and "Vault refused transit decrypt" in message


def test_a_transit_token_without_decrypt_is_refused(transit, sops, tmp_path, openbao, monkeypatch) -> None:
    """A token whose policy does not grant decrypt on the key gets AccessDenied."""
    name = f"guarded-{tmp_path.name[-8:]}"
    transit.secrets.transit.create_key(name, mount_point="sops")
    path = sops.encrypt(
        tmp_path / "v.enc.yaml",
        PLAIN,
        fmt="yaml",
        keys=["--hc-vault-transit", f"{openbao.url}/v1/sops/keys/{name}"],
    )
    transit.sys.create_or_update_policy("no-decrypt", 'path "sops/encrypt/*" { capabilities = ["update"] }')
    token = transit.auth.token.create(policies=["no-decrypt"])["auth"]["client_token"]
    monkeypatch.setenv("VAULT_TOKEN", token)
    assert "permission denied" in refused(path)


def test_an_unreachable_key_service_is_unavailable_not_denied(kms, sops, tmp_path, monkeypatch) -> None:
    """KMS that does not answer is BackendUnavailable (so the store may serve stale), naming the file."""
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    path = sops.encrypt(tmp_path / "kms.enc.yaml", PLAIN, fmt="yaml", keys=["--kms", arn])
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    store = SecretStore([], negative_ttl=0)
    with pytest.raises(BackendUnavailable) as info:
        store.get(f"sops://{path}#password")
    assert_no_value_in_error(info.value, *VALUES)
    assert str(path) in str(info.value) and "could not be reached" in str(info.value)


def test_a_dotenv_line_without_equals_is_refused_by_line_number(sops, age_flags, tmp_path) -> None:
    """A line pasted into a SOPS dotenv file is reported by its number, never its text."""
    path = sops.encrypt(tmp_path / "s.enc.env", "API_KEY=dotenv-line-key-1\n", fmt="dotenv", keys=age_flags)
    path.write_text("pasted-secret-line-9\n" + path.read_text())
    with pytest.raises(ConfigurationError) as info:
        SecretStore([], negative_ttl=0).get(f"sops://{path}#API_KEY")
    assert_no_value_in_error(info.value, "pasted-secret-line-9", "dotenv-line-key-1")
    assert "line 1 has no '='" in str(info.value) and str(path) in str(info.value)
