"""``secretkit doctor``'s reachability probes against settings and references written to misdirect them.

Each backend class says what its probe asks (``reachability``); a name in the environment
(``DB_PASSWORD=azure-kv://...``) or a setting pasted wrong (``AWS_REGION``) is input, and
must not choose the host the probe connects to. A listening socket on this machine stands
for the attacker's host and counts every connection made to it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from test_cli import clean_env, run_cli
from test_cli_doctor import backend, doctor_json


class Listener:
    """A TCP port on 127.0.0.1 that accepts, counts and closes every connection."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


@pytest.fixture
def attacker() -> Iterator[Listener]:
    listener = Listener()
    try:
        yield listener
    finally:
        listener.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


def test_a_reference_cannot_point_doctors_azure_probe_at_a_host(
    attacker: Listener, workdir: Path, tmp_path: Path
) -> None:
    """``azure-kv://127.0.0.1:PORT/name`` in a variable: only a vault name's host is probed, not this."""
    env = clean_env(
        tmp_path / "home",
        DB_PASSWORD=f"azure-kv://127.0.0.1:{attacker.port}/db-password",
        API_TOKEN=f"azure-kv://https://127.0.0.1:{attacker.port}/api-token",
    )
    result, data = doctor_json(env=env, cwd=workdir)
    azure: Any = backend(data, "azure-kv")
    assert azure["referenced_by"] == ["API_TOKEN", "DB_PASSWORD"], result.describe()
    assert azure["reachable"] is None
    assert "vault names" in azure["note"]
    assert attacker.connections == 0


def test_a_region_cannot_point_doctors_aws_probe_at_a_host(
    attacker: Listener, workdir: Path, tmp_path: Path
) -> None:
    """``AWS_REGION=x@127.0.0.1:PORT/#`` would make the endpoint's host 127.0.0.1: refused, no connection."""
    region = f"eu-west-1.planted-cred-58@127.0.0.1:{attacker.port}/#"
    env = clean_env(tmp_path / "home", AWS_DEFAULT_REGION=region)
    result, data = doctor_json(env=env, cwd=workdir, secrets=["planted-cred-58"])
    assert result.code == 1, result.describe()
    for scheme in ("aws-sm", "aws-ssm"):
        reach = backend(data, scheme)["reachable"]
        assert reach["ok"] is False and "not a region name" in reach["detail"], result.describe()
    assert attacker.connections == 0
    text = run_cli("doctor", "--timeout", "2", env=env, cwd=workdir, secrets=["planted-cred-58"])
    text.assert_no_secret()
    assert attacker.connections == 0
