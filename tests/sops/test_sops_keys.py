"""Where data keys come from (age identities, AWS KMS, Vault transit), and how often they are asked for."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

import secretkit
from secretkit import SecretRef, SecretStore
from secretkit._redact import redact
from secretkit.backends.sops import SopsBackend, decrypt_dotenv, describe, is_sops_file

PLAIN = "db:\n  password: key-test-password-1\n  user: app\ntoken: key-test-token-2\n"


def fetch(backend: SopsBackend, path: Path, field: str) -> str | bytes:
    return backend.fetch(SecretRef(f"sops://{path}#{field}")).value


# -- age identity sources ------------------------------------------------------------------


def test_age_identity_from_sops_age_key(sops, age_flags, age_key, tmp_path, monkeypatch) -> None:
    """SOPS_AGE_KEY holds the identity itself."""
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    monkeypatch.setenv("SOPS_AGE_KEY", f"# a comment line\n{age_key.identity}\n")
    assert fetch(SopsBackend(), path, "token") == "key-test-token-2"


def test_age_identity_from_the_default_key_file(sops, age_flags, age_key, tmp_path, monkeypatch) -> None:
    """$XDG_CONFIG_HOME/sops/age/keys.txt is read when no variable is set, as sops reads it."""
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    config = tmp_path / "xdg"
    (config / "sops" / "age").mkdir(parents=True)
    (config / "sops" / "age" / "keys.txt").write_text(age_key.identity + "\n")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    assert fetch(SopsBackend(), path, "token") == "key-test-token-2"


def test_age_identity_from_home_config_when_xdg_is_unset(
    sops, age_flags, age_key, tmp_path, monkeypatch
) -> None:
    """Without XDG_CONFIG_HOME, ~/.config/sops/age/keys.txt is read."""
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    home = Path(str(secretkit.getenv("HOME")))
    (home / ".config" / "sops" / "age").mkdir(parents=True)
    (home / ".config" / "sops" / "age" / "keys.txt").write_text(age_key.identity + "\n")
    assert fetch(SopsBackend(), path, "token") == "key-test-token-2"


def ssh_ed25519_key(passphrase: bytes | None = None) -> tuple[bytes, str]:
    """A new OpenSSH ed25519 private key (PEM) and its public key line."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    if passphrase:  # PKCS#8 needs no bcrypt, and is as unusable without its passphrase
        private = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase),
        )
    else:
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public.decode()


def test_age_ssh_identity_from_the_default_ssh_key(sops, tmp_path, monkeypatch) -> None:
    """A file for an ssh-ed25519 recipient opens with ~/.ssh/id_ed25519, as sops opens it."""
    private, public = ssh_ed25519_key()
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=["--age", public])
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    ssh_dir = Path(str(secretkit.getenv("HOME"))) / ".ssh"
    ssh_dir.mkdir()
    (ssh_dir / "id_ed25519").write_bytes(private)
    assert fetch(SopsBackend(), path, "token") == "key-test-token-2"


def test_age_ssh_identity_from_the_variable_beside_a_locked_default_key(sops, tmp_path, monkeypatch) -> None:
    """SOPS_AGE_SSH_PRIVATE_KEY_FILE opens the file; a passphrase-protected ~/.ssh key is skipped."""
    private, public = ssh_ed25519_key()
    locked, _ = ssh_ed25519_key(passphrase=b"a-passphrase")
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=["--age", public])
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    ssh_dir = Path(str(secretkit.getenv("HOME"))) / ".ssh"
    ssh_dir.mkdir()
    (ssh_dir / "id_ed25519").write_bytes(locked)
    (tmp_path / "deploy_key").write_bytes(private)
    monkeypatch.setenv("SOPS_AGE_SSH_PRIVATE_KEY_FILE", str(tmp_path / "deploy_key"))
    assert fetch(SopsBackend(), path, "token") == "key-test-token-2"


def test_age_key_command_gets_the_recipient(sops, age_flags, age_key, tmp_path, monkeypatch) -> None:
    """SOPS_AGE_KEY_CMD's output is an identity source; the command sees SOPS_AGE_RECIPIENT."""
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)
    script = tmp_path / "print-key.sh"
    script.write_text(
        f'#!/bin/sh\n[ "$SOPS_AGE_RECIPIENT" = "{age_key.recipient}" ] || exit 3\necho {age_key.identity}\n'
    )
    script.chmod(0o700)
    monkeypatch.delenv("SOPS_AGE_KEY_FILE")
    monkeypatch.setenv("SOPS_AGE_KEY_CMD", str(script))
    assert fetch(SopsBackend(), path, "token") == "key-test-token-2"


def test_any_recipient_of_the_group_opens_the_file(sops, age_key, other_age_key, tmp_path) -> None:
    """A file for two age recipients opens with the identity of either."""
    flags = ["--age", f"{other_age_key.recipient},{age_key.recipient}"]
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=flags)
    assert fetch(SopsBackend(), path, "db.password") == "key-test-password-1"


# -- AWS KMS and Vault transit ---------------------------------------------------------------


def test_kms_key_with_encryption_context(kms, sops, tmp_path) -> None:
    """A file sops encrypted with a moto KMS key and an encryption context opens through boto3."""
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    path = sops.encrypt(
        tmp_path / "kms.enc.yaml",
        PLAIN,
        fmt="yaml",
        keys=["--kms", arn],
        extra=["--encryption-context", "app:billing,env:test"],
    )
    assert "billing" in path.read_text()
    backend = SopsBackend()
    assert fetch(backend, path, "db.password") == "key-test-password-1"
    assert backend.key_service_calls == 1


def test_vault_transit_key(transit, sops, tmp_path, openbao) -> None:
    """A file sops encrypted with an OpenBao transit key opens through hvac with VAULT_TOKEN."""
    name = f"app-{tmp_path.name[-8:]}"
    transit.secrets.transit.create_key(name, mount_point="sops")
    path = sops.encrypt(
        tmp_path / "v.enc.env",
        "API_KEY=transit-api-key-3\n",
        fmt="dotenv",
        keys=["--hc-vault-transit", f"{openbao.url}/v1/sops/keys/{name}"],
    )
    assert fetch(SopsBackend(), path, "API_KEY") == "transit-api-key-3"


def test_an_unopenable_key_falls_through_to_one_that_opens(kms, sops, age_key, tmp_path, monkeypatch) -> None:
    """A group with a KMS key this environment cannot use and an age key it can opens with age."""
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    path = sops.encrypt(
        tmp_path / "both.enc.yaml", PLAIN, fmt="yaml", keys=["--kms", arn, "--age", age_key.recipient]
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "not-a-known-key")
    assert fetch(SopsBackend(), path, "token") == "key-test-token-2"


# -- one key-service call per data key ----------------------------------------------------


def test_the_data_key_is_recovered_once_for_many_reads(kms, sops, tmp_path) -> None:
    """Many fields read many times cost one KMS Decrypt."""
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    path = sops.encrypt(tmp_path / "kms.enc.yaml", PLAIN, fmt="yaml", keys=["--kms", arn])
    backend = SopsBackend()
    for _ in range(5):
        assert fetch(backend, path, "db.password") == "key-test-password-1"
        assert fetch(backend, path, "token") == "key-test-token-2"
    assert backend.key_service_calls == 1


def test_concurrent_cold_reads_of_many_fields_make_one_key_call(kms, sops, tmp_path) -> None:
    """Sixteen threads reading sixteen fields of a cold file through one store cost one KMS Decrypt."""
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    plain = "".join(f"field_{i:02d}: concurrent-value-{i:02d}\n" for i in range(16))
    path = sops.encrypt(tmp_path / "kms.enc.yaml", plain, fmt="yaml", keys=["--kms", arn])
    backend = SopsBackend()
    store = SecretStore([backend])
    barrier = threading.Barrier(16)
    results: dict[int, str] = {}

    def read(i: int) -> None:
        barrier.wait()
        results[i] = store.get(f"sops://{path}#field_{i:02d}").reveal()

    threads = [threading.Thread(target=read, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == {i: f"concurrent-value-{i:02d}" for i in range(16)}
    assert backend.key_service_calls == 1


def test_an_edited_file_is_read_again_without_a_new_key_call(sops, age_flags, tmp_path) -> None:
    """`sops set` changes a value: the next fetch sees it, with the data key already known."""
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)
    backend = SopsBackend()
    first = backend.fetch(SecretRef(f"sops://{path}#token"))
    sops.run("set", str(path), '["token"]', '"key-test-token-rotated"')
    second = backend.fetch(SecretRef(f"sops://{path}#token"))
    assert (first.value, second.value) == ("key-test-token-2", "key-test-token-rotated")
    assert first.version != second.version
    assert backend.key_service_calls == 1


def test_a_rotated_data_key_is_recovered_again(sops, age_flags, tmp_path) -> None:
    """`sops rotate` makes a new data key: the next fetch asks for it."""
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)
    backend = SopsBackend()
    fetch(backend, path, "token")
    sops.run("rotate", "-i", str(path))
    assert fetch(backend, path, "token") == "key-test-token-2"
    assert backend.key_service_calls == 2


def test_the_store_sees_a_changed_file_as_a_rotation(sops, age_flags, tmp_path, clock) -> None:
    """Through a store, a re-encrypted file is a new version after the TTL, and on_rotate fires."""
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)
    store = SecretStore([], ttl=60, jitter=0.0, clock=clock)
    ref = f"sops://{path}#token"
    assert store.get(ref).reveal() == "key-test-token-2"
    rotations: list[str] = []
    store.on_rotate(ref, lambda old, new: rotations.append(new.reveal()))
    sops.run("set", str(path), '["token"]', '"key-test-token-next"')
    clock.advance(61)
    assert store.get(ref).reveal() == "key-test-token-next"
    assert rotations == ["key-test-token-next"]


# -- redaction and the CLI helpers ---------------------------------------------------------


def test_every_value_of_the_file_is_registered_for_redaction(sops, age_flags, tmp_path) -> None:
    """Reading one field registers the file's other values too."""
    plain = "one: redact-me-field-one\ntwo: redact-me-field-two\n"
    path = sops.encrypt(tmp_path / "r.enc.yaml", plain, fmt="yaml", keys=age_flags)
    SecretStore([]).get(f"sops://{path}#one")
    assert "redact-me-field-two" not in redact("log: redact-me-field-two")


def test_decrypt_dotenv_returns_strings_and_registers_them(sops, age_flags, tmp_path) -> None:
    """decrypt_dotenv gives every key as text; each value is registered for redaction."""
    plain = "API_KEY=dotenv-helper-key-1\nMULTI=a\\nb\nPORT=8080\n"
    path = sops.encrypt(tmp_path / "secrets.enc.env", plain, fmt="dotenv", keys=age_flags)
    values = decrypt_dotenv(path)
    assert values == {"API_KEY": "dotenv-helper-key-1", "MULTI": "a\nb", "PORT": "8080"}
    assert "dotenv-helper-key-1" not in redact("value=dotenv-helper-key-1")


def test_decrypt_dotenv_refuses_other_formats(sops, age_flags, tmp_path) -> None:
    """A SOPS YAML file is not a dotenv file."""
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)
    with pytest.raises(secretkit.ConfigurationError, match="not a dotenv file"):
        decrypt_dotenv(path)


def test_is_sops_file(sops, age_flags, tmp_path) -> None:
    """True for each format sops writes; False for plain, missing and binary files."""
    for fmt, plain in [
        ("yaml", PLAIN),
        ("json", json.dumps({"a": "b"})),
        ("dotenv", "A=b\n"),
        ("ini", "[s]\na = b\n"),
        ("binary", b"\x00\x01"),
    ]:
        assert is_sops_file(sops.encrypt(tmp_path / f"f.{fmt}.enc", plain, fmt=fmt, keys=age_flags)), fmt
    (tmp_path / "plain.yaml").write_text(PLAIN)
    (tmp_path / "junk.bin").write_bytes(b"\xff\xfe\x00")
    assert not is_sops_file(tmp_path / "plain.yaml")
    assert not is_sops_file(tmp_path / "junk.bin")
    assert not is_sops_file(tmp_path / "absent.yaml")


def test_describe_names_keys_and_which_could_open(sops, age_key, other_age_key, tmp_path) -> None:
    """describe() lists format, recipients and which this environment can use; no values."""
    flags = ["--age", f"{age_key.recipient},{other_age_key.recipient}"]
    path = sops.encrypt(tmp_path / "d.enc.yaml", PLAIN, fmt="yaml", keys=flags)
    text = "\n".join(describe(path))
    assert "SOPS yaml file" in text
    assert f"age {age_key.recipient}: can open" in text
    assert f"age {other_age_key.recipient}: not here" in text
    assert "key-test-password-1" not in text and age_key.identity not in text
