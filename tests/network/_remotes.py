"""The remote backends as the network tests see them: each behind its own fault proxy."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from secretkit import SecretStore
from secretkit._backend import Backend
from servers.azure_server import KeyVaultServer, StaticTokenCredential
from servers.faultproxy import FaultProxy
from servers.gcp_server import GcpSecretManagerServer, make_client
from servers.moto_server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer
from servers.openbao_server import OpenBaoAdmin, OpenBaoServer

__all__ = [
    "BUILDERS",
    "GCP_PROJECT",
    "ColdReaders",
    "NETWORK_TEST",
    "REMOTES",
    "Remote",
    "running_remotes",
    "time_to_success",
]

import pytest

#: The marks of every test here: they start servers, and the connections a fault cuts (a
#: reset in the middle of a TLS handshake) can leave SDK or test-server sockets for the
#: garbage collector, whose "unclosed socket" warning would fail whichever test it lands in.
NETWORK_TEST = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:unclosed:ResourceWarning")]

GCP_PROJECT = "net-project"
REMOTES = ("aws-sm", "vault", "gcp-sm", "azure-kv")


@dataclass
class Remote:
    """One backend kind behind its proxy: how to build it, write to it and name a secret in it."""

    scheme: str
    proxy: FaultProxy
    build: Callable[[], Backend]
    write: Callable[[str, str], object]
    recreate: Callable[[str, str], object]
    ref: Callable[[str], str]
    made: list[Backend] = field(default_factory=list)

    def backend(self) -> Backend:
        """A new backend (own SDK client and connections) through this remote's proxy."""
        made = self.build()
        self.made.append(made)
        return made

    def secret(self, value: str) -> str:
        """Write a new secret holding ``value``; its reference."""
        name = f"net-{uuid.uuid4().hex[:12]}"
        self.write(name, value)
        return self.ref(name)

    def store(self, **options: Any) -> SecretStore:
        """A store with a fresh backend of this kind as its only reference backend."""
        return SecretStore([], reference_backends=[self.backend()], **options)


def _aws(moto: MotoServer, proxy: FaultProxy) -> Remote:
    from secretkit.backends.aws import AwsSecretsManagerBackend

    admin = moto.client("secretsmanager")

    def write(name: str, value: str) -> None:
        try:
            admin.put_secret_value(SecretId=name, SecretString=value)
        except admin.exceptions.ResourceNotFoundException:
            admin.create_secret(Name=name, SecretString=value)

    def recreate(name: str, value: str) -> None:
        admin.delete_secret(SecretId=name, ForceDeleteWithoutRecovery=True)
        admin.create_secret(Name=name, SecretString=value)

    return Remote(
        "aws-sm",
        proxy,
        lambda: AwsSecretsManagerBackend(endpoint_url=f"http://{proxy.address}"),
        write,
        recreate,
        lambda name: f"aws-sm://{name}",
    )


def _vault(openbao: OpenBaoServer, proxy: FaultProxy) -> Remote:
    from secretkit.backends.vault import TokenAuth, VaultBackend

    admin = OpenBaoAdmin(openbao)

    def recreate(name: str, value: str) -> None:
        admin.root.secrets.kv.v2.delete_metadata_and_all_versions(path=f"net/{name}", mount_point="secret")
        admin.put(f"net/{name}", {"v": value})

    return Remote(
        "vault",
        proxy,
        lambda: VaultBackend(url=f"http://{proxy.address}", auth=TokenAuth(openbao.root_token)),
        lambda name, value: admin.put(f"net/{name}", {"v": value}),
        recreate,
        lambda name: f"vault://secret/net/{name}?key=v",
    )


def _gcp(server: GcpSecretManagerServer, proxy: FaultProxy) -> Remote:
    from secretkit.backends.gcp import GcpSecretManagerBackend

    def recreate(name: str, value: str) -> None:
        client = make_client(server.address)
        try:
            client.delete_secret(request={"name": f"projects/{GCP_PROJECT}/secrets/{name}"})
        finally:
            client.transport.close()
        server.add_version(GCP_PROJECT, name, value)

    return Remote(
        "gcp-sm",
        proxy,
        lambda: GcpSecretManagerBackend(project=GCP_PROJECT, endpoint=f"http://{proxy.address}", timeout=5.0),
        lambda name, value: server.add_version(GCP_PROJECT, name, value),
        recreate,
        lambda name: f"gcp-sm://{GCP_PROJECT}/{name}",
    )


def _azure(server: KeyVaultServer, proxy: FaultProxy) -> Remote:
    from secretkit.backends.azure import AzureKeyVaultBackend

    def build() -> Backend:
        options = server.client_options()
        options.pop("retry_total")  # secretkit's own retry settings are under test
        return AzureKeyVaultBackend(
            vault_url=f"https://127.0.0.1:{proxy.port}", credential=StaticTokenCredential(), **options
        )

    return Remote(
        "azure-kv",
        proxy,
        build,
        lambda name, value: server.put(name, value),
        # Key Vault gives every version a new random id: a new version is what a recreated secret reads as.
        lambda name, value: server.put(name, value),
        lambda name: f"azure-kv://{name}",
    )


BUILDERS: dict[str, Callable[[Any, FaultProxy], Remote]] = {
    "aws-sm": _aws,
    "vault": _vault,
    "gcp-sm": _gcp,
    "azure-kv": _azure,
}


class ColdReaders:
    """One thread per reference, each reading it with ``store.get`` at the same moment: :meth:`go`.

    The threads are started (and wait) when this is made, so what :meth:`go` times or counts
    is the reads alone. A read that raises is kept in ``failures``.
    """

    def __init__(self, store: SecretStore, refs: list[str]) -> None:
        self.failures: list[BaseException] = []
        self._barrier = threading.Barrier(len(refs) + 1)
        self._threads = [threading.Thread(target=self._read, args=(store, ref)) for ref in refs]
        for thread in self._threads:
            thread.start()

    def _read(self, store: SecretStore, ref: str) -> None:
        self._barrier.wait()
        try:
            store.get(ref)
        except BaseException as exc:
            self.failures.append(exc)

    def go(self, timeout: float | None = None) -> None:
        """Let every read start at once; returns when all have ended (or ``timeout`` passed for each)."""
        self._barrier.wait()
        for thread in self._threads:
            thread.join(timeout)


def time_to_success(store: SecretStore, ref: str, expected: str, limit: float) -> float:
    """Seconds until a read of ``ref`` returns ``expected``, retrying errors for at most ``limit``."""
    from secretkit import BackendUnavailable

    started = time.perf_counter()
    while True:
        try:
            value = store.get(ref).reveal()
        except BackendUnavailable:
            if time.perf_counter() - started > limit:
                raise
            time.sleep(0.02)
            continue
        assert value == expected
        return time.perf_counter() - started


@contextmanager
def running_remotes(schemes: Sequence[str] = REMOTES) -> Iterator[dict[str, Remote]]:
    """Start the servers of ``schemes`` and a proxy in front of each, for scripts (benchmarks).

    Tests use the fixtures of this directory's conftest instead, which share servers across tests.
    """
    import os

    from servers.azure_server import free_port as azure_free_port

    os.environ.update(
        {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    with ExitStack() as stack:
        out: dict[str, Remote] = {}
        for scheme in schemes:
            server: Any
            if scheme == "aws-sm":
                server = stack.enter_context(MotoServer())
            elif scheme == "vault":
                server = stack.enter_context(OpenBaoServer())
            elif scheme == "gcp-sm":
                server = GcpSecretManagerServer().start()
                stack.callback(server.stop)
            else:
                server = KeyVaultServer(azure_free_port()).start()
                stack.callback(server.close)
            proxy = FaultProxy("127.0.0.1", int(server.port)).start()
            stack.callback(proxy.stop)
            remote = BUILDERS[scheme](server, proxy)
            stack.callback(_close_backends, remote)
            out[scheme] = remote
        yield out


def _close_backends(remote: Remote) -> None:
    remote.proxy.set("pass")
    for backend in remote.made:
        backend.close()
