"""A SOPS file authenticates its encrypted values and its MAC, nothing else: attacks on the rest.

Someone who can edit a SOPS file but holds no key may change its metadata (key-service
addresses, roles, profiles), add unencrypted or empty entries, and move bytes between
unencrypted values; ``sops`` itself accepts all of it. Each test performs one such edit on a
file the real ``sops`` binary wrote and checks that nothing the attacker chose is used:
no credential sent, no value served, nothing in a child's environment.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import threading
from pathlib import Path

import pytest

from secretkit import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    SecretNotFound,
    SecretRef,
    SecretStore,
)
from secretkit.backends.sops import SopsBackend, decrypt_dotenv
from sops import conftest as sops_suite
from sops.conftest import AgeKey, Sops
from test_cli import clean_env, run_cli
from test_cli_run import DIGESTS, PY, digest, digests

# The SOPS suite's fixtures (the real sops binary, OpenBao with TLS, moto, this test's age key).
sops_env = sops_suite.sops_env  # autouse: only this test's age key is visible
age_key, age_flags, key_file = sops_suite.age_key, sops_suite.age_flags, sops_suite.key_file
sops, moto, kms = sops_suite.sops, sops_suite.moto, sops_suite.kms
openbao, transit = sops_suite.openbao, sops_suite.transit

TOKEN_VALUE = "trust-api-token-5Rk2"
PASSWORD = "trust-db-password-9Wq7"


class Listener:
    """A loopback TCP server that records every connection (and its first bytes), and answers 500.

    It stands for a key service the attacker runs: a connection at all means the file chose
    where secretkit connects; an ``X-Vault-Token`` in the bytes means the token leaked.
    """

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = int(self._sock.getsockname()[1])
        self.received: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def url(self, scheme: str = "https") -> str:
        return f"{scheme}://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                data = b""
                try:
                    while b"\r\n\r\n" not in data and len(data) < 65536:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                except OSError:
                    pass
                # Recorded before answering: the client raises on the answer, and the test
                # may look at what was received the moment it does.
                self.received.append(data)
                with contextlib.suppress(OSError):
                    conn.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def listener() -> object:
    server = Listener()
    yield server
    server.close()


def edit_metadata(path: Path, kind: str, **fields: str) -> None:
    """Set ``fields`` on the file's first ``kind`` key entry: metadata no MAC covers."""
    document = json.loads(path.read_text())
    document["sops"][kind][0].update(fields)
    path.write_text(json.dumps(document))


def fetch(backend: SopsBackend, path: Path, field: str) -> str | bytes:
    return backend.fetch(SecretRef(f"sops://{path}#{field}")).value


# -- 1. key-service addresses, roles and profiles are the operator's choice ------------------


@pytest.fixture
def transit_file(transit, sops, tmp_path, openbao) -> Path:
    """A JSON file sops encrypted with an OpenBao transit key (the server VAULT_ADDR names)."""
    name = f"trust-{tmp_path.name[-8:]}"
    transit.secrets.transit.create_key(name, mount_point="sops")
    return sops.encrypt(
        tmp_path / "t.enc.json",
        json.dumps({"password": PASSWORD}),
        fmt="json",
        keys=["--hc-vault-transit", f"{openbao.url}/v1/sops/keys/{name}"],
    )


@pytest.mark.parametrize(
    "address",
    [
        "{evil}",  # the attacker's server, https
        "{evil_http}",  # the same over plain http
        "https://127.0.0.1:{bao_port}@127.0.0.1:{evil_port}",  # user-info that looks like VAULT_ADDR
        "https://127.0.0.1:{evil_port}#@127.0.0.1:{bao_port}",  # a fragment that looks like it
        "HTTPS://127.0.0.1:{evil_port}/v1/../",  # case and path games
    ],
)
def test_a_sops_key_service_address_from_the_file_never_receives_the_token(
    transit_file, listener, openbao, address
) -> None:
    """A transit address the file names, that is not VAULT_ADDR or allow-listed, gets no connection at all."""
    evil = address.format(
        evil=listener.url(),
        evil_http=listener.url("http"),
        evil_port=listener.port,
        bao_port=openbao.port,
    )
    edit_metadata(transit_file, "hc_vault", vault_address=evil)
    with pytest.raises(AccessDenied) as info:
        SecretStore([], negative_ttl=0).get(f"sops://{transit_file}#password")
    message = str(info.value)
    assert str(listener.port) in message  # the address is named
    assert "vault_addresses" in message or "without user-info" in message
    assert listener.received == []


def test_the_transit_address_vault_addr_names_is_used(transit_file) -> None:
    """The file's address matching VAULT_ADDR (scheme, host and port) opens the file: no blanket refusal."""
    assert fetch(SopsBackend(), transit_file, "password") == PASSWORD


def test_an_allow_listed_transit_address_opens_without_vault_addr(transit_file, openbao, monkeypatch) -> None:
    """``SopsBackend(vault_addresses=[...])`` allows a server besides VAULT_ADDR."""
    monkeypatch.delenv("VAULT_ADDR")
    with pytest.raises(AccessDenied, match="neither VAULT_ADDR nor an allowed address"):
        fetch(SopsBackend(), transit_file, "password")
    backend = SopsBackend(vault_addresses=[openbao.url + "/"])
    assert fetch(backend, transit_file, "password") == PASSWORD


def test_plain_http_sends_the_token_only_with_an_explicit_opt_in(transit_file, listener, monkeypatch) -> None:
    """An http transit address, even VAULT_ADDR's, gets nothing until ``vault_allow_http=True``."""
    monkeypatch.setenv("VAULT_ADDR", listener.url("http"))
    edit_metadata(transit_file, "hc_vault", vault_address=listener.url("http"))
    with pytest.raises(AccessDenied) as info:
        fetch(SopsBackend(), transit_file, "password")
    assert "plain http" in str(info.value) and "vault_allow_http=True" in str(info.value)
    assert listener.received == []
    # Opted in, the same file reaches the server: the refusal above is the rule, not an accident.
    with pytest.raises(BackendUnavailable):  # our stand-in answers 500
        fetch(SopsBackend(vault_allow_http=True), transit_file, "password")
    assert any(b"x-vault-token" in request.lower() for request in listener.received)


@pytest.fixture
def kms_file(kms, sops, tmp_path) -> Path:
    arn = kms.create_key()["KeyMetadata"]["Arn"]
    return sops.encrypt(
        tmp_path / "k.enc.json", json.dumps({"password": PASSWORD}), fmt="json", keys=["--kms", arn]
    )


ATTACKER_ROLE = "arn:aws:iam::123456789012:role/attacker-chosen"


def test_a_kms_role_from_the_file_is_never_assumed(kms_file, listener, kms, monkeypatch) -> None:
    """A ``role`` the file names is not assumed (no AWS call at all) unless ``kms_roles`` allows it."""
    edit_metadata(kms_file, "kms", role=ATTACKER_ROLE)
    moto_url = str(kms.meta.endpoint_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL", listener.url("http"))
    with pytest.raises(AccessDenied) as info:
        fetch(SopsBackend(), kms_file, "password")
    assert ATTACKER_ROLE in str(info.value) and "kms_roles" in str(info.value)
    assert listener.received == []
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    assert fetch(SopsBackend(kms_roles=[ATTACKER_ROLE]), kms_file, "password") == PASSWORD


def test_an_aws_profile_from_the_file_is_never_used(kms_file, listener, kms, tmp_path, monkeypatch) -> None:
    """An ``aws_profile`` the file names (a more privileged local profile, say) is not used unless allowed."""
    config = tmp_path / "aws-config"
    config.write_text(
        f"[profile admin]\naws_access_key_id = AKIAADMIN\naws_secret_access_key = admin-secret\n"
        f"endpoint_url = {listener.url('http')}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_ENDPOINT_URL", listener.url("http"))
    edit_metadata(kms_file, "kms", aws_profile="admin")
    with pytest.raises(AccessDenied) as info:
        fetch(SopsBackend(), kms_file, "password")
    assert "'admin'" in str(info.value) and "aws_profiles" in str(info.value)
    assert listener.received == []
    monkeypatch.setenv("AWS_ENDPOINT_URL", str(kms.meta.endpoint_url))
    config.write_text(config.read_text().replace(listener.url("http"), str(kms.meta.endpoint_url)))
    assert fetch(SopsBackend(aws_profiles=["admin"]), kms_file, "password") == PASSWORD


# -- 2. one path syntax; what the MAC does not cover is never served ------------------------


def add_entries(path: Path, entries: dict[str, object], *, first: bool = False) -> None:
    document = json.loads(path.read_text())
    body = {k: v for k, v in document.items() if k != "sops"}
    merged = {**entries, **body} if first else {**body, **entries}
    path.write_text(json.dumps({**merged, "sops": document["sops"]}))


def test_an_added_dotted_key_never_shadows_the_nested_value(sops, age_flags, tmp_path) -> None:
    """``"db.password": ""`` added beside ``db: {password}`` (no MAC change) does not replace the value."""
    path = sops.encrypt(
        tmp_path / "s.enc.json", json.dumps({"db": {"password": PASSWORD}}), fmt="json", keys=age_flags
    )
    for shadow in ("", None):
        add_entries(path, {"db.password": shadow}, first=True)
        assert fetch(SopsBackend(), path, "db.password") == PASSWORD


def test_two_entries_one_path_names_are_refused(sops, age_flags, tmp_path) -> None:
    """A key with a dot and nested keys that spell the same path: refused, not one of them picked."""
    plain = json.dumps({"db.password": "dotted-9", "db": {"password": PASSWORD}})
    path = sops.encrypt(tmp_path / "s.enc.json", plain, fmt="json", keys=age_flags)
    with pytest.raises(ConfigurationError) as info:
        SecretStore([], negative_ttl=0).get(f"sops://{path}#db.password")
    assert "more than one entry" in str(info.value)
    assert PASSWORD not in str(info.value) and "dotted-9" not in str(info.value)


def mac_only_file(sops: Sops, age_key: AgeKey, target: Path, plaintext: str, fmt: str) -> Path:
    (sops.workdir / ".sops.yaml").write_text(
        "creation_rules:\n"
        f"  - age: {age_key.recipient}\n"
        "    encrypted_regex: ^(password|API_TOKEN)$\n"
        "    mac_only_encrypted: true\n"
    )
    return sops.encrypt(target, plaintext, fmt=fmt, keys=[])


def test_an_added_plain_entry_under_mac_only_encrypted_is_never_served(sops, age_key, tmp_path) -> None:
    """mac_only_encrypted: an added plaintext key passes the MAC, yet is not a field nor in the document."""
    path = mac_only_file(sops, age_key, tmp_path / "m.enc.json", json.dumps({"password": PASSWORD}), "json")
    add_entries(path, {"api_key": "attacker-chosen-key"})
    backend = SopsBackend()
    assert fetch(backend, path, "password") == PASSWORD  # the MAC accepted the edit
    with pytest.raises(SecretNotFound, match="stored unencrypted"):
        fetch(backend, path, "api_key")
    assert json.loads(backend.fetch(SecretRef(f"sops://{path}")).value) == {"password": PASSWORD}


def test_bytes_moved_between_unencrypted_values_pass_the_mac_but_are_not_served(
    sops, age_flags, tmp_path
) -> None:
    """The MAC joins values without separators: ``"ab","c"`` → ``"a","bc"`` verifies; neither is served."""
    plain = json.dumps({"host_unencrypted": "db.internal", "port_unencrypted": "5432", "password": PASSWORD})
    path = sops.encrypt(tmp_path / "s.enc.json", plain, fmt="json", keys=age_flags)
    document = json.loads(path.read_text())
    document.update(host_unencrypted="db.interna", port_unencrypted="l5432")
    path.write_text(json.dumps(document))
    backend = SopsBackend()
    assert fetch(backend, path, "password") == PASSWORD  # the moved byte is not detected
    for field in ("host_unencrypted", "port_unencrypted"):
        with pytest.raises(SecretNotFound, match="stored unencrypted"):
            fetch(backend, path, field)


def test_a_value_moved_under_a_key_with_a_colon_is_not_served(sops, age_flags, tmp_path) -> None:
    """``app: {token}`` re-keyed ``"app:token"`` decrypts (same authenticated path) and passes the MAC."""
    plain = json.dumps({"app": {"token": TOKEN_VALUE}, "password": PASSWORD})
    path = sops.encrypt(tmp_path / "s.enc.json", plain, fmt="json", keys=age_flags)
    document = json.loads(path.read_text())
    moved = {
        "app:token": document["app"]["token"],
        "password": document["password"],
        "sops": document["sops"],
    }
    path.write_text(json.dumps(moved))
    backend = SopsBackend()
    assert fetch(backend, path, "password") == PASSWORD
    with pytest.raises(SecretNotFound, match="':'"):
        fetch(backend, path, "app:token")


# -- 3. secretkit run --env-file ------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, key_file: Path) -> dict[str, str]:
    return clean_env(tmp_path / "cli-home", SOPS_AGE_KEY_FILE=str(key_file))


def evil_site(tmp_path: Path) -> tuple[Path, Path]:
    """A directory whose sitecustomize.py (run by a Python with it on PYTHONPATH) leaves a marker."""
    site = tmp_path / "evil-site"
    site.mkdir()
    marker = tmp_path / "attacker-code-ran"
    (site / "sitecustomize.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    return site, marker


def test_an_appended_plain_loader_variable_never_reaches_the_child(sops, age_key, tmp_path, cli_env) -> None:
    """Plain ``PYTHONPATH=`` / ``BASH_ENV=`` lines under mac_only_encrypted pass the MAC; run refuses."""
    path = mac_only_file(sops, age_key, tmp_path / "s.enc.env", f"API_TOKEN={TOKEN_VALUE}\n", "dotenv")
    site, marker = evil_site(tmp_path)
    path.write_text(path.read_text() + f"PYTHONPATH={site}\nBASH_ENV={site}/x.sh\n")
    assert decrypt_dotenv(path) == {"API_TOKEN": TOKEN_VALUE}  # the file verifies
    result = run_cli(
        "run", "--env-file", str(path), "--", PY, "-c", DIGESTS, "API_TOKEN",
        env=cli_env, cwd=tmp_path, secrets=[TOKEN_VALUE],
    )  # fmt: skip
    assert result.code == 5, result.describe()
    assert "PYTHONPATH" in result.err and "not encrypted" in result.err
    assert not marker.exists()
    result.assert_no_secret()


def test_an_appended_plain_entry_is_left_out_of_the_child(sops, age_key, tmp_path, cli_env) -> None:
    """A plain ``FEATURE=`` line under mac_only_encrypted never reaches the child; a note names it."""
    path = mac_only_file(sops, age_key, tmp_path / "s.enc.env", f"API_TOKEN={TOKEN_VALUE}\n", "dotenv")
    path.write_text(path.read_text() + "FEATURE_FLAG=attacker-chosen\n")
    result = run_cli(
        "run", "--env-file", str(path), "--", PY, "-c", DIGESTS, "API_TOKEN", "FEATURE_FLAG",
        env=cli_env, cwd=tmp_path, secrets=[TOKEN_VALUE],
    )  # fmt: skip
    assert result.code == 0, result.describe()
    assert digests(result.out) == {"API_TOKEN": digest(TOKEN_VALUE), "FEATURE_FLAG": "unset"}
    assert "FEATURE_FLAG" in result.err and "does not authenticate" in result.err


def test_an_added_empty_entry_never_overrides_the_parents_variable(
    sops, age_flags, tmp_path, cli_env
) -> None:
    """An empty entry (neither encrypted nor MACed) appended in default mode keeps the parent's value."""
    path = sops.encrypt(tmp_path / "s.enc.env", f"API_TOKEN={TOKEN_VALUE}\n", fmt="dotenv", keys=age_flags)
    path.write_text(path.read_text() + "SK_PARENT_SETTING=\n")
    result = run_cli(
        "run", "--env-file", str(path), "--", PY, "-c", DIGESTS, "SK_PARENT_SETTING",
        env={**cli_env, "SK_PARENT_SETTING": "from-the-parent"}, cwd=tmp_path, secrets=[TOKEN_VALUE],
    )  # fmt: skip
    assert result.code == 0, result.describe()
    assert digests(result.out)["SK_PARENT_SETTING"] == digest("from-the-parent")
    path.write_text(path.read_text() + "PATH=\n")
    result = run_cli("run", "--env-file", str(path), "--", PY, "-c", "", env=cli_env, cwd=tmp_path)
    assert result.code == 5 and "PATH" in result.err, result.describe()


def test_a_plain_env_file_cannot_set_a_loader_variable(tmp_path, cli_env) -> None:
    """A SOPS file swapped for a plain one (or any plain --env-file) cannot set PYTHONPATH and run code."""
    site, marker = evil_site(tmp_path)
    plain = tmp_path / "secrets.enc.env"
    plain.write_text(f"API_TOKEN=whatever\nPYTHONPATH={site}\n")
    result = run_cli("run", "--env-file", str(plain), "--", PY, "-c", "", env=cli_env, cwd=tmp_path)
    assert result.code == 5, result.describe()
    assert "PYTHONPATH" in result.err and not marker.exists()
    # The same directory from the parent's environment is the user's choice, and is honoured.
    result = run_cli("run", "--", PY, "-c", "", env={**cli_env, "PYTHONPATH": str(site)}, cwd=tmp_path)
    assert result.code == 0 and marker.exists(), result.describe()


def test_an_encrypted_loader_variable_reaches_the_child(sops, age_flags, tmp_path, cli_env) -> None:
    """A loader variable the SOPS file encrypts is authenticated, so it is passed on."""
    path = sops.encrypt(tmp_path / "s.enc.env", "PYTHONOPTIMIZE=1\n", fmt="dotenv", keys=age_flags)
    result = run_cli(
        "run", "--env-file", str(path), "--", PY, "-c", DIGESTS, "PYTHONOPTIMIZE",
        env=cli_env, cwd=tmp_path,
    )  # fmt: skip
    assert result.code == 0, result.describe()
    assert digests(result.out) == {"PYTHONOPTIMIZE": digest("1")}


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_env_from_a_sops_file_only_when_encrypted(sops, age_key, tmp_path, cli_env) -> None:
    """``BASH_ENV`` appended in plain to a mac_only_encrypted file would run code in a bash child; refused."""
    path = mac_only_file(sops, age_key, tmp_path / "s.enc.env", f"API_TOKEN={TOKEN_VALUE}\n", "dotenv")
    marker = tmp_path / "bash-env-ran"
    script = tmp_path / "evil.sh"
    script.write_text(f"touch {marker}\n")
    path.write_text(path.read_text() + f"BASH_ENV={script}\n")
    result = run_cli(
        "run", "--env-file", str(path), "--", str(shutil.which("bash")), "-c", "true",
        env=cli_env, cwd=tmp_path, secrets=[TOKEN_VALUE],
    )  # fmt: skip
    assert result.code == 5 and "BASH_ENV" in result.err, result.describe()
    assert not marker.exists()
