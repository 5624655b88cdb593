"""A reference alone cannot make the Vault backend write (issue 10, item 13), against a real OpenBao.

An attacker who controls one environment variable controls a reference; ``method=POST``
in it must not reach Vault unless the application listed the path as writable.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import hvac.exceptions
import pytest

from secretkit import AccessDenied, InvalidReference, SecretkitError, SecretRef, SecretStore
from secretkit.backends.env import EnvBackend
from secretkit.backends.vault import TokenAuth, VaultBackend
from servers.openbao_server import OpenBaoServer

PLANTED = "attacker-planted-value"


@pytest.fixture(scope="module")
def bao() -> Iterator[OpenBaoServer]:
    with OpenBaoServer() as server:
        yield server


def _backend(bao: OpenBaoServer, **kwargs: object) -> VaultBackend:
    return VaultBackend(url=bao.url, auth=TokenAuth(bao.root_token), **kwargs)  # type: ignore[arg-type]


def _written(bao: OpenBaoServer, path: str) -> bool:
    try:
        bao.client().secrets.kv.v2.read_secret_version(path=path, raise_on_deleted_version=True)
    except hvac.exceptions.InvalidPath:
        return False
    return True


def test_post_without_opt_in_is_refused_and_nothing_is_written(bao: OpenBaoServer) -> None:
    """method=POST on a path nobody allowed raises AccessDenied naming post_paths, and Vault is untouched."""
    path = f"planted-{uuid.uuid4().hex[:8]}"
    ref = SecretRef.parse(f"vault://secret/data/{path}?engine=generic&method=POST&password={PLANTED}")
    backend = _backend(bao)
    try:
        with pytest.raises(AccessDenied, match=r"post_paths") as caught:
            backend.fetch(ref)
    finally:
        backend.close()
    assert not _written(bao, path)
    assert "pki/issue/*" in str(caught.value)


def test_post_from_an_environment_variable_is_refused(
    bao: OpenBaoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variable holding a writing reference, read through a store, writes nothing to Vault."""
    path = f"via-env-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("DB_PASSWORD", f"vault://secret/data/{path}?engine=generic&method=POST&x={PLANTED}")
    store = SecretStore([EnvBackend()], reference_backends=[_backend(bao)])
    try:
        with pytest.raises((AccessDenied, InvalidReference)):
            store.get("DB_PASSWORD")
    finally:
        store.close()
    assert not _written(bao, path)


def test_opted_in_path_may_post_only_its_declared_parameters(bao: OpenBaoServer) -> None:
    """post_paths allows a write to matching paths with the listed parameters, and refuses others."""
    path = f"allowed-{uuid.uuid4().hex[:8]}"
    backend = _backend(bao, post_paths={"cubbyhole/allowed-*": ["note"]})
    try:
        with pytest.raises(InvalidReference, match=r"not allowed"):
            backend.fetch(SecretRef.parse(f"vault://cubbyhole/{path}?engine=generic&method=POST&other=1"))
        with pytest.raises(AccessDenied):
            backend.fetch(SecretRef.parse("vault://cubbyhole/other?engine=generic&method=POST&note=1"))
        # A KV write answers 204 with no data (an error for a read), but it did reach Vault.
        with pytest.raises(SecretkitError):
            backend.fetch(SecretRef.parse(f"vault://cubbyhole/{path}?engine=generic&method=POST&note=hi"))
        read = backend.fetch(SecretRef.parse(f"vault://cubbyhole/{path}?engine=generic"))
        assert '"note": "hi"' in str(read.value)
    finally:
        backend.close()


def test_dot_dot_cannot_walk_out_of_an_allowed_pattern(bao: OpenBaoServer) -> None:
    """An allowed pattern does not admit a path that climbs out of it with '..' segments."""
    backend = _backend(bao, post_paths={"cubbyhole/*": ["note"]})
    try:
        with pytest.raises(InvalidReference, match=r"\.\."):
            backend.fetch(
                SecretRef.parse("vault://cubbyhole/../secret/data/x?engine=generic&method=POST&note=1")
            )
    finally:
        backend.close()


def test_declared_options_include_the_write_parameters(bao: OpenBaoServer) -> None:
    """The backend's options list the read options plus every declared write parameter, nothing else."""
    plain = _backend(bao)
    writer = _backend(bao, post_paths={"pki/issue/*": ["common_name", "ttl"]})
    try:
        assert {"version", "key", "encoding", "engine", "method"} <= plain.options
        assert writer.options - plain.options == {"common_name", "ttl"}
    finally:
        plain.close()
        writer.close()
