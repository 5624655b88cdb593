"""A SOPS file is read on the reader's thread (it is a local file): a key service cannot hold the reader.

The store gives a local backend no deadline of its own; the one network step of reading a SOPS
file, recovering its data key from KMS or Vault transit, is bounded by the backend's deadline.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest

from secretkit import BackendUnavailable, SecretStore
from secretkit.backends.sops import SopsBackend
from sops import conftest as sops_suite

sops_env = sops_suite.sops_env  # autouse: only this test's age key is visible
age_key, key_file, sops, openbao, transit = (
    sops_suite.age_key,
    sops_suite.key_file,
    sops_suite.sops,
    sops_suite.openbao,
    sops_suite.transit,
)


@pytest.fixture
def silent() -> Iterator[int]:
    """A port that takes connections (into its backlog) and never says a byte: a hung key service."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield int(sock.getsockname()[1])
    sock.close()


def test_a_key_service_that_never_answers_cannot_hold_a_reader(
    transit, sops, tmp_path, openbao, silent, monkeypatch
) -> None:
    """The transit server VAULT_ADDR names hangs: the read ends at the deadline, not hvac's 10 s timeout."""
    transit.secrets.transit.create_key("hung", mount_point="sops")
    path = sops.encrypt(
        tmp_path / "t.enc.json",
        json.dumps({"password": "deadline-password-3Jd8"}),
        fmt="json",
        keys=["--hc-vault-transit", f"{openbao.url}/v1/sops/keys/hung"],
    )
    hung = f"https://127.0.0.1:{silent}"
    document = json.loads(path.read_text())
    document["sops"]["hc_vault"][0]["vault_address"] = hung
    path.write_text(json.dumps(document))
    monkeypatch.setenv("VAULT_ADDR", hung)  # the operator's own server, now hung
    store = SecretStore([SopsBackend(deadline=0.5)], negative_ttl=0)
    started = time.monotonic()
    with pytest.raises(BackendUnavailable, match="deadline") as info:
        store.get(f"sops://{path}#password")
    assert time.monotonic() - started < 8  # the hvac timeout alone is 10 s
    assert "deadline-password-3Jd8" not in repr(info.value)
