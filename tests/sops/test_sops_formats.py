"""Files the real ``sops`` wrote, in every format, read back through ``get_secret("sops://...")``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from secretkit import ConfigurationError, SecretNotFound, SecretRef, SecretStore
from secretkit.backends.sops import SopsBackend

YAML = """\
# comments are encrypted by sops and are not part of the MAC
db:
  password: hunter2-pässwörd-密码
  port: 5432
  ratio: 0.25
  enabled: true
  disabled: false
  hosts:
    - primary.db.example
    - replica.db.example
  certificate: |
    -----BEGIN CERT-----
    line-two-of-the-cert
    -----END CERT-----
  nested:
    deeper:
      token: deep-token-0042
api_key: top-level-api-key-77
empty: ""
nothing: null
"""


def read(store: SecretStore, path: Path, field: str | None = None) -> object:
    ref = f"sops://{path}" + (f"#{field}" if field else "")
    return store.get(ref).reveal()


@pytest.fixture
def store() -> SecretStore:
    return SecretStore([], negative_ttl=0)


def test_yaml_nested_values_and_types(sops, age_flags, tmp_path, store) -> None:
    """Nested maps, lists, non-ASCII, multi-line text, numbers and booleans come back as sops wrote them."""
    path = sops.encrypt(tmp_path / "secrets.enc.yaml", YAML, fmt="yaml", keys=age_flags)
    assert read(store, path, "db.password") == "hunter2-pässwörd-密码"
    assert read(store, path, "db.port") == "5432"
    assert read(store, path, "db.ratio") == "0.25"
    assert read(store, path, "db.enabled") == "true"
    assert read(store, path, "db.disabled") == "false"
    assert read(store, path, "db.hosts.1") == "replica.db.example"
    assert read(store, path, "db.certificate") == (
        "-----BEGIN CERT-----\nline-two-of-the-cert\n-----END CERT-----\n"
    )
    assert read(store, path, "db.nested.deeper.token") == "deep-token-0042"
    assert read(store, path, "api_key") == "top-level-api-key-77"


def test_empty_and_null_values_are_not_served(sops, age_flags, tmp_path, store) -> None:
    """sops neither encrypts nor MACs an empty value or a null: neither is served; the error says why."""
    path = sops.encrypt(tmp_path / "secrets.enc.yaml", YAML, fmt="yaml", keys=age_flags)
    for field, why in (("empty", "it is empty"), ("nothing", "it is null")):
        with pytest.raises(SecretNotFound) as info:
            read(store, path, field)
        assert why in str(info.value) and "not served as a secret" in str(info.value)


def test_yaml_whole_document_is_json(sops, age_flags, tmp_path, store) -> None:
    """Without #field the whole document comes back as JSON, typed as in the file."""
    path = sops.encrypt(tmp_path / "secrets.enc.yaml", YAML, fmt="yaml", keys=age_flags)
    document = json.loads(str(read(store, path)))
    assert document["db"]["port"] == 5432
    assert document["db"]["enabled"] is True
    assert document["db"]["hosts"] == ["primary.db.example", "replica.db.example"]
    assert "sops" not in document
    assert "nothing" not in document and "empty" not in document  # not authenticated


def test_a_map_field_is_json_and_the_store_can_pick_inside_it(sops, age_flags, tmp_path, store) -> None:
    """``#db.nested`` is a JSON object; ``Secret.field`` picks inside it."""
    path = sops.encrypt(tmp_path / "secrets.enc.yaml", YAML, fmt="yaml", keys=age_flags)
    secret = store.get(f"sops://{path}#db.nested")
    assert json.loads(secret.reveal()) == {"deeper": {"token": "deep-token-0042"}}
    assert secret.field("deeper.token").reveal() == "deep-token-0042"


def test_json_file(sops, age_flags, tmp_path, store) -> None:
    """A JSON file: nested fields, list items and numbers."""
    plain = json.dumps({"app": {"secret": "json-secret-1", "ids": [7, 8]}, "pi": 3.5}, ensure_ascii=False)
    path = sops.encrypt(tmp_path / "secrets.enc.json", plain, fmt="json", keys=age_flags)
    assert read(store, path, "app.secret") == "json-secret-1"
    assert read(store, path, "app.ids.1") == "8"
    assert read(store, path, "pi") == "3.5"


def test_dotenv_file_keys_and_escaped_newlines(sops, age_flags, tmp_path, store) -> None:
    """A dotenv file: ``#API_KEY`` reads a key; ``\\n`` in a value is a newline, as sops reads it."""
    plain = "API_KEY=dotenv-api-key-1\nMULTI=first\\nsecond\nUNICODE=ünïcødé-✓\nEMPTY=\n"
    path = sops.encrypt(tmp_path / ".env.enc", plain, fmt="dotenv", keys=age_flags)
    assert read(store, path, "API_KEY") == "dotenv-api-key-1"
    assert read(store, path, "MULTI") == "first\nsecond"
    assert read(store, path, "UNICODE") == "ünïcødé-✓"
    with pytest.raises(SecretNotFound, match="it is empty"):
        read(store, path, "EMPTY")
    assert json.loads(str(read(store, path))) == {
        "API_KEY": "dotenv-api-key-1",
        "MULTI": "first\nsecond",
        "UNICODE": "ünïcødé-✓",
    }


def test_ini_file_sections(sops, age_flags, tmp_path, store) -> None:
    """An INI file: ``#section.key``, keys keep their case."""
    plain = "[database]\nPassword = ini-password-9\nport = 5432\n\n[cache]\nurl = redis://cache:6379/0\n"
    path = sops.encrypt(tmp_path / "app.enc.ini", plain, fmt="ini", keys=age_flags)
    assert read(store, path, "database.Password") == "ini-password-9"
    assert read(store, path, "database.port") == "5432"
    assert read(store, path, "cache.url") == "redis://cache:6379/0"


def test_binary_file_bytes_and_text(sops, age_flags, tmp_path, store) -> None:
    """A binary file is its content: bytes when it is not UTF-8, text when it is."""
    raw = sops.encrypt(tmp_path / "key.bin.enc", b"\x00\xff\x10binary-key\x80", fmt="binary", keys=age_flags)
    text = sops.encrypt(tmp_path / "cert.pem.enc", "-----BEGIN-----\nčert\n", fmt="binary", keys=age_flags)
    assert read(store, raw) == b"\x00\xff\x10binary-key\x80"
    assert read(store, text) == "-----BEGIN-----\nčert\n"


def test_binary_json_content_has_fields(sops, age_flags, tmp_path, store) -> None:
    """A binary file holding a JSON object answers ``#field`` like a JSON secret."""
    path = sops.encrypt(
        tmp_path / "creds.enc", '{"user": "u1", "password": "bin-json-pw"}', fmt="binary", keys=age_flags
    )
    assert read(store, path, "password") == "bin-json-pw"


def test_unencrypted_suffix_values_are_macced_but_not_served(sops, age_flags, tmp_path, store) -> None:
    """``_unencrypted`` values enter the MAC as sops wrote them (YAML 1.2), but are never served."""
    plain = "host_unencrypted: db.internal\nport_unencrypted: 5432\n"
    plain += "flag_unencrypted: yes\npassword: suffix-pw-1\n"
    path = sops.encrypt(tmp_path / "s.enc.yaml", plain, fmt="yaml", keys=age_flags)
    assert "db.internal" in path.read_text()
    # The MAC checks out only if each plaintext value is hashed as sops hashed it (`yes` as text).
    assert read(store, path, "password") == "suffix-pw-1"
    for field in ("host_unencrypted", "port_unencrypted", "flag_unencrypted"):
        with pytest.raises(SecretNotFound, match="stored unencrypted"):
            read(store, path, field)
    assert json.loads(str(read(store, path))) == {"password": "suffix-pw-1"}


@pytest.mark.parametrize(
    ("flag", "pattern", "encrypted_key", "plain_key"),
    [
        ("--encrypted-regex", "^(password|token)$", "password", "username"),
        ("--unencrypted-regex", "^public", "password", "public_name"),
        ("--encrypted-suffix", "_secret", "password_secret", "username"),
    ],
)
def test_encryption_rules_are_honoured(
    sops, age_flags, tmp_path, store, flag, pattern, encrypted_key, plain_key
) -> None:
    """encrypted_regex / unencrypted_regex / encrypted_suffix: encrypted values read back, plain ones not."""
    plain = f"{encrypted_key}: rule-secret-1\n{plain_key}: rule-plain-2\n"
    plain += f"nested:\n  {encrypted_key}: rule-secret-3\n"
    path = sops.encrypt(tmp_path / "r.enc.yaml", plain, fmt="yaml", keys=age_flags, extra=[flag, pattern])
    text = path.read_text()
    assert "rule-secret-1" not in text and "rule-plain-2" in text
    assert read(store, path, encrypted_key) == "rule-secret-1"
    with pytest.raises(SecretNotFound, match="stored unencrypted"):
        read(store, path, plain_key)
    assert read(store, path, f"nested.{encrypted_key}") == "rule-secret-3"


def test_mac_only_encrypted(sops, age_key, tmp_path, store) -> None:
    """A mac_only_encrypted file verifies when its plaintext changes; the plaintext is never served."""
    (sops.workdir / ".sops.yaml").write_text(
        "creation_rules:\n"
        f"  - age: {age_key.recipient}\n"
        "    encrypted_regex: ^password$\n"
        "    mac_only_encrypted: true\n"
    )
    plain = "password: mac-only-pw\nusername: app-user\n"
    path = sops.encrypt(tmp_path / "m.enc.yaml", plain, fmt="yaml", keys=[])
    assert "mac_only_encrypted: true" in path.read_text()
    assert read(store, path, "password") == "mac-only-pw"
    path.write_text(path.read_text().replace("username: app-user", "username: other-user"))
    assert SopsBackend().fetch(SecretRef(f"sops://{path}#password")).value == "mac-only-pw"
    with pytest.raises(SecretNotFound, match="stored unencrypted"):
        SopsBackend().fetch(SecretRef(f"sops://{path}#username"))


def test_relative_paths_are_relative_to_the_working_directory(sops, age_flags, tmp_path, monkeypatch) -> None:
    """``sops://config/secrets.enc.yaml`` reads config/secrets.enc.yaml of the working directory."""
    sops.encrypt(
        tmp_path / "config" / "secrets.enc.yaml", "token: relative-token-5\n", fmt="yaml", keys=age_flags
    )
    monkeypatch.chdir(tmp_path)
    store = SecretStore([], negative_ttl=0)
    assert store.get("sops://config/secrets.enc.yaml#token").reveal() == "relative-token-5"


def test_missing_file_and_missing_field_are_not_found(sops, age_flags, tmp_path, store) -> None:
    """An absent file, or a path the document lacks, is SecretNotFound naming the sops backend."""
    path = sops.encrypt(tmp_path / "s.enc.yaml", "a: value-a-1\n", fmt="yaml", keys=age_flags)
    with pytest.raises(SecretNotFound) as missing_file:
        store.get(f"sops://{tmp_path}/nope.enc.yaml#a")
    assert "sops" in str(missing_file.value)
    with pytest.raises(SecretNotFound) as missing_field:
        store.get(f"sops://{path}#b.c")
    assert "b.c" in str(missing_field.value)


def test_a_plain_file_is_a_configuration_error(tmp_path, store) -> None:
    """A file sops did not write is refused with a message that says so, and no content of it."""
    plain = tmp_path / "plain.yaml"
    plain.write_text("password: not-encrypted-secret-1\n")
    with pytest.raises(ConfigurationError) as info:
        store.get(f"sops://{plain}#password")
    assert "not a file sops wrote" in str(info.value)
    assert "not-encrypted-secret-1" not in str(info.value)


def test_options_are_refused(sops, age_flags, tmp_path) -> None:
    """The sops backend takes no ?options, and says so."""
    path = sops.encrypt(tmp_path / "s.enc.yaml", "a: value-a-1\n", fmt="yaml", keys=age_flags)
    with pytest.raises(Exception, match="takes none"):
        SopsBackend().fetch(SecretRef(f"sops://{path}#a?version=2"))


def test_secretkit_imports_no_sops_dependency() -> None:
    """`import secretkit` and building a SopsBackend import neither pyrage, PyYAML nor cryptography."""
    code = (
        "import sys, secretkit\n"
        "from secretkit.backends.sops import SopsBackend\n"
        "SopsBackend()\n"
        "print(sorted(m for m in ('pyrage', 'yaml', 'cryptography', 'boto3', 'hvac') if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_backend_built_with_a_file_serves_plain_names_in_a_chain(
    sops, age_flags, tmp_path, monkeypatch
) -> None:
    """SopsBackend(file) answers plain names from that file, after the environment; a miss passes on."""
    from secretkit.backends import EnvBackend

    plain = "API_KEY=chain-api-key-1\nDB_PASSWORD=chain-db-password-2\n"
    path = sops.encrypt(tmp_path / "secrets.enc.env", plain, fmt="dotenv", keys=age_flags)
    monkeypatch.setenv("DB_PASSWORD", "from-the-environment")
    store = SecretStore([EnvBackend(), SopsBackend(path)], negative_ttl=0)
    assert store.get("API_KEY").reveal() == "chain-api-key-1"
    assert store.get("DB_PASSWORD").reveal() == "from-the-environment"
    with pytest.raises(SecretNotFound) as info:
        store.get("NOT_THERE_EITHER")
    assert "sops" in str(info.value) and "env" in str(info.value)
    assert store.get(f"sops://{path}#API_KEY").reveal() == "chain-api-key-1"
