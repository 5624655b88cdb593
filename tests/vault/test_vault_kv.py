"""The Vault backend reads KV v1 and v2 secrets from a real OpenBao server through hvac."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from secretkit import (
    ConfigurationError,
    InvalidReference,
    Secret,
    SecretNotFound,
    SecretRef,
    SecretStore,
)
from secretkit.backends import MemoryBackend
from secretkit.backends.vault import TokenAuth, VaultBackend
from secretkit.testing import BackendContract, FakeClock, assert_no_value_in_error
from servers.openbao_server import OpenBaoAdmin

MakeBackend = Callable[..., VaultBackend]


class TestVaultKv2Contract(BackendContract):
    """The shared contract, on the dev server's KV v2 ``secret/`` mount.

    A KV secret is a map, so the contract's single values live under the key ``value``
    and are read with ``?key=value`` (binary ones base64-encoded, read with
    ``&encoding=base64``).
    """

    @pytest.fixture
    def backend(self, vault: OpenBaoAdmin, make_backend: MakeBackend) -> VaultBackend:
        self.vault = vault
        self.binary: set[str] = set()
        return make_backend()

    def put(self, backend: VaultBackend, name: str, value: str | bytes) -> None:  # type: ignore[override]
        if isinstance(value, bytes):
            self.binary.add(name)
            value = base64.b64encode(value).decode()
        self.vault.put(name, {"value": value})

    def ref(self, backend: VaultBackend, name: str, **options: str) -> SecretRef:  # type: ignore[override]
        extra = {"encoding": "base64"} if name in self.binary else {}
        return SecretRef("vault", f"secret/{name}", options={"key": "value", **extra, **options})


class TestVaultKv1Contract(BackendContract):
    """The shared contract on a KV v1 mount, detected from the mount's options."""

    supports_versions = False

    @pytest.fixture
    def backend(self, kv1_mount: str, vault: OpenBaoAdmin, make_backend: MakeBackend) -> VaultBackend:
        self.vault, self.mount = vault, kv1_mount
        self.binary: set[str] = set()
        return make_backend()

    def put(self, backend: VaultBackend, name: str, value: str | bytes) -> None:  # type: ignore[override]
        if isinstance(value, bytes):
            self.binary.add(name)
            value = base64.b64encode(value).decode()
        self.vault.root.secrets.kv.v1.create_or_update_secret(
            path=name, secret={"value": value}, mount_point=self.mount
        )

    def ref(self, backend: VaultBackend, name: str, **options: str) -> SecretRef:  # type: ignore[override]
        extra = {"encoding": "base64"} if name in self.binary else {}
        return SecretRef("vault", f"{self.mount}/{name}", options={"key": "value", **extra, **options})


@pytest.fixture(scope="module")
def kv1_mount(vault: OpenBaoAdmin) -> str:
    mount = vault.unique("kv1")
    vault.root.sys.enable_secrets_engine("kv", path=mount, options={"version": "1"})
    return mount


def test_whole_data_map_is_a_json_secret(vault: OpenBaoAdmin, make_backend: MakeBackend) -> None:
    """Without #key the secret is the whole data map as JSON, and field() picks a key of it."""
    path = vault.unique("app/db")
    vault.put(path, {"username": "app", "password": "pw-map-1", "port": 5432})
    store = SecretStore([make_backend()])
    secret = store.get(f"vault://secret/{path}")
    assert json.loads(secret.reveal()) == {"username": "app", "password": "pw-map-1", "port": 5432}
    assert secret.field("password").reveal() == "pw-map-1"
    assert store.get(f"vault://secret/{path}#password").reveal() == "pw-map-1"
    assert secret.version == "1"
    assert secret.source == "vault"


def test_latest_and_pinned_versions(vault: OpenBaoAdmin, make_backend: MakeBackend) -> None:
    """The latest version is read by default; ?version=N reads version N, and Secret.version says which."""
    path = vault.unique("app/api")
    vault.put(path, {"key": "old-key-1"})
    vault.put(path, {"key": "new-key-2"})
    store = SecretStore([make_backend()])
    latest = store.get(f"vault://secret/{path}#key")
    pinned = store.get(f"vault://secret/{path}#key?version=1")
    assert (latest.reveal(), latest.version) == ("new-key-2", "2")
    assert (pinned.reveal(), pinned.version) == ("old-key-1", "1")


def test_rotation_by_a_new_version_is_seen_after_the_ttl(
    vault: OpenBaoAdmin, make_backend: MakeBackend
) -> None:
    """Writing a new version is seen once the TTL passes, and on_rotate gets the old and new versions."""
    path = vault.unique("app/rotating")
    vault.put(path, {"password": "before-rotation"})
    clock = FakeClock()
    store = SecretStore([make_backend()], ttl=60, jitter=0.0, clock=clock)
    key = f"vault://secret/{path}#password"
    assert store.get(key).reveal() == "before-rotation"
    seen: list[tuple[str | None, str | None]] = []
    store.on_rotate(key, lambda old, new: seen.append((old.version, new.version)))
    vault.put(path, {"password": "after-rotation"})
    assert store.get(key).reveal() == "before-rotation"
    clock.advance(61)
    assert store.get(key).reveal() == "after-rotation"
    assert seen == [("1", "2")]


def test_kv_v1_mount_is_detected(vault: OpenBaoAdmin, kv1_mount: str, make_backend: MakeBackend) -> None:
    """A KV v1 mount is recognised from its options: its secrets read, with no version."""
    vault.root.secrets.kv.v1.create_or_update_secret(
        path="app/v1", secret={"k": "v1-value"}, mount_point=kv1_mount
    )
    fetched = make_backend().fetch(SecretRef.parse(f"vault://{kv1_mount}/app/v1"))
    assert json.loads(fetched.value) == {"k": "v1-value"}
    assert fetched.version is None


def test_fixed_mount_and_kv_version(vault: OpenBaoAdmin, kv1_mount: str, make_backend: MakeBackend) -> None:
    """With mount= and kv_version=, a reference's path is inside that mount and no lookup is needed."""
    vault.root.secrets.kv.v1.create_or_update_secret(
        path="fixed/x", secret={"k": "fixed-v"}, mount_point=kv1_mount
    )
    backend = make_backend(mount=kv1_mount, kv_version=1)
    store = SecretStore([backend])
    assert store.get("vault://fixed/x#k").reveal() == "fixed-v"
    # A plain name tried against the chain is a path inside the mount, too.
    assert json.loads(store.get("fixed/x").reveal()) == {"k": "fixed-v"}


def test_a_version_on_a_kv_v1_mount_is_an_invalid_reference(
    kv1_mount: str, make_backend: MakeBackend
) -> None:
    """?version= on a KV v1 mount is refused with a message saying v1 keeps no versions."""
    with pytest.raises(InvalidReference, match="version 1"):
        make_backend().fetch(SecretRef.parse(f"vault://{kv1_mount}/app/v1?version=2"))


def test_nested_mount_path_is_found(vault: OpenBaoAdmin, make_backend: MakeBackend) -> None:
    """A KV mount at a multi-segment path (team/kv) is found by asking the server, not assumed."""
    mount = vault.unique("team") + "/kv"
    vault.root.sys.enable_secrets_engine("kv", path=mount, options={"version": "2"})
    vault.put("app/db", {"password": "nested-pw"}, mount=mount)
    assert SecretStore([make_backend()]).get(f"vault://{mount}/app/db#password").reveal() == "nested-pw"


def test_missing_secret_and_missing_key_raise_secret_not_found(
    vault: OpenBaoAdmin, make_backend: MakeBackend
) -> None:
    """An absent path, an absent mount and an absent ?key= all raise SecretNotFound."""
    path = vault.unique("app/present")
    vault.put(path, {"a": "1"})
    backend = make_backend()
    for ref in (
        f"vault://secret/{vault.unique('app/absent')}",
        f"vault://{vault.unique('nomount')}/app/x",
        f"vault://secret/{path}?key=b",
    ):
        with pytest.raises(SecretNotFound):
            backend.fetch(SecretRef.parse(ref))


def test_a_plain_name_in_a_chain_is_not_found_so_the_chain_moves_on(make_backend: MakeBackend) -> None:
    """A name that is not a <mount>/<path> (API_KEY) is not found in Vault, and the next backend answers."""
    store = SecretStore([make_backend(), MemoryBackend({"API_KEY": "from-memory"})])
    assert store.get("API_KEY").reveal() == "from-memory"


def test_deleted_latest_version_is_not_found(vault: OpenBaoAdmin, make_backend: MakeBackend) -> None:
    """A soft-deleted latest version reads as not found, while an older version still reads."""
    path = vault.unique("app/deleted")
    vault.put(path, {"a": "first"})
    vault.put(path, {"a": "second"})
    vault.root.secrets.kv.v2.delete_latest_version_of_secret(path=path)
    backend = make_backend()
    with pytest.raises(SecretNotFound):
        backend.fetch(SecretRef.parse(f"vault://secret/{path}"))
    assert json.loads(backend.fetch(SecretRef.parse(f"vault://secret/{path}?version=1")).value) == {
        "a": "first"
    }


def test_a_non_kv_mount_points_to_engine_generic(make_backend: MakeBackend) -> None:
    """Reading a non-KV mount as KV fails with a message that says to add ?engine=generic."""
    with pytest.raises(InvalidReference, match=r"engine=generic"):
        make_backend().fetch(SecretRef.parse("vault://cubbyhole/anything"))


def test_unknown_options_are_refused(make_backend: MakeBackend) -> None:
    """A misspelt option is an InvalidReference naming it, not a silently ignored setting."""
    with pytest.raises(InvalidReference, match="versoin"):
        make_backend().fetch(SecretRef.parse("vault://secret/app/x?versoin=2"))
    with pytest.raises(InvalidReference, match="engine"):
        make_backend().fetch(SecretRef.parse("vault://secret/app/x?engine=kv3"))


def test_key_option_returns_one_raw_value_and_decodes_base64(
    vault: OpenBaoAdmin, make_backend: MakeBackend
) -> None:
    """?key= returns one key's raw text (a JSON document stays text), and encoding=base64 gives bytes."""
    path = vault.unique("app/files")
    document = '{"type": "service_account", "private_key": "pk-1"}'
    vault.put(path, {"sa": document, "keystore": base64.b64encode(b"\x00\x01keystore").decode()})
    store = SecretStore([make_backend()])
    assert store.get(f"vault://secret/{path}?key=sa").reveal() == document
    assert store.get(f"vault://secret/{path}?key=sa#private_key").reveal() == "pk-1"
    assert store.get(f"vault://secret/{path}?key=keystore&encoding=base64").reveal() == b"\x00\x01keystore"


def test_bad_base64_error_names_the_key_not_the_value(vault: OpenBaoAdmin, make_backend: MakeBackend) -> None:
    """A key that is not base64 fails with a message naming the key and never its content."""
    path = vault.unique("app/notb64")
    vault.put(path, {"blob": "not*base64*secret-content"})
    with pytest.raises(ConfigurationError, match="blob") as info:
        make_backend().fetch(SecretRef.parse(f"vault://secret/{path}?key=blob&encoding=base64"))
    assert_no_value_in_error(info.value, "not*base64*secret-content")


def test_zero_config_from_vault_addr_and_vault_token(
    vault: OpenBaoAdmin, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With VAULT_ADDR and VAULT_TOKEN set, SecretStore() resolves vault:// with no configuration."""
    path = vault.unique("app/zero")
    vault.put(path, {"key": "zero-config-value"})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VAULT_ADDR", vault.url)
    monkeypatch.setenv("VAULT_TOKEN", vault.server.root_token)
    with SecretStore() as store:
        secret: Secret[Any] = store.get(f"vault://secret/{path}#key")
        assert secret.reveal() == "zero-config-value"
        assert isinstance(store.backend_for("vault"), VaultBackend)


def test_zero_config_reads_the_vault_token_file(
    vault: OpenBaoAdmin, monkeypatch: pytest.MonkeyPatch, vault_env: Path
) -> None:
    """Without VAULT_TOKEN, the token in ~/.vault-token is used, as the vault CLI does."""
    path = vault.unique("app/tokenfile")
    vault.put(path, {"key": "from-token-file"})
    (vault_env / ".vault-token").write_text(vault.token(["reader"]) + "\n")
    monkeypatch.setenv("VAULT_ADDR", vault.url)
    backend = VaultBackend()
    try:
        assert backend.fetch(SecretRef.parse(f"vault://secret/{path}?key=key")).value == "from-token-file"
    finally:
        backend.close()


def test_no_token_anywhere_is_a_configuration_error(
    vault: OpenBaoAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no token configured, the error says where a token is looked for."""
    monkeypatch.setenv("VAULT_ADDR", vault.url)
    backend = VaultBackend()
    try:
        with pytest.raises(ConfigurationError, match="VAULT_TOKEN"):
            backend.fetch(SecretRef.parse("vault://secret/app/x"))
    finally:
        backend.close()


def test_repr_never_shows_the_token(vault: OpenBaoAdmin) -> None:
    """The backend's and the auth's repr name the server and method, never the token."""
    backend = VaultBackend(url=vault.url, auth=TokenAuth("hvs.do-not-show-this-token"))
    try:
        assert "do-not-show" not in repr(backend)
        assert vault.url in repr(backend)
    finally:
        backend.close()


def test_importing_the_module_does_not_import_hvac() -> None:
    """secretkit.backends.vault imports hvac only when a backend is built."""
    code = "import sys, secretkit.backends.vault; assert 'hvac' not in sys.modules, 'hvac imported'"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
