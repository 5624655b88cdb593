"""A local Azure Key Vault (the secrets data plane) over HTTPS, for tests and benchmarks.

Microsoft ships no Key Vault emulator and none on PyPI serves the REST API the Python SDK
speaks, so this module speaks it itself: the bearer challenge, ``GET``/``PUT``
``/secrets/{name}[/{version}]``, ``GET /secrets/{name}/versions``, the service's JSON shapes and
error bodies, disabled versions (403 ``SecretDisabled``) and per-secret denials (403
``AccessDenied``). Like the real service it returns expired and not-yet-valid secrets: ``exp`` and
``nbf`` are informational there, so a client that wants them enforced must check them itself.

State lives in the :class:`KeyVaultServer` object, not in the listener, so a test can stop the
server (an outage) and start it again on the same port with its secrets intact.
:class:`LoopbackGateway` plays the rest of an Azure host for zero-configuration tests: an App
Service managed-identity endpoint and an HTTPS proxy that tunnels ``*.vault.azure.net`` here.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import select
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

import trustme
from azure.core.credentials import AccessToken, AccessTokenInfo, TokenRequestOptions
from azure.keyvault.secrets import SecretClient

if TYPE_CHECKING:
    from typing import Self

__all__ = [
    "API_VERSIONS",
    "RESOURCE",
    "TENANT",
    "TOKEN",
    "KeyVaultServer",
    "LoopbackGateway",
    "StaticTokenCredential",
    "free_port",
    "write_secret",
]

#: The only bearer token the test vault accepts (what :class:`StaticTokenCredential` hands out).
TOKEN = "secretkit-test-bearer-token"
#: A made-up Entra ID tenant, named in the challenge.
TENANT = "5e1f7b2c-0d6a-4c3e-9b8f-000000000001"
RESOURCE = "https://vault.azure.net"
#: The api-version values the service answers (those the SDK knows).
API_VERSIONS = frozenset(
    {"2016-10-01", "7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01"}
)

_FAULT_HEADER = "x-test-fault"
_NAME = re.compile(r"[0-9A-Za-z-]{1,127}")
_MAX_VALUE_BYTES = 25 * 1024
_PAGE = 25


def free_port() -> int:
    """A loopback port that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_secret(client: SecretClient, name: str, value: str | bytes, **kwargs: Any) -> str:
    """Store a version through the SDK; bytes go as ``az keyvault secret set --encoding base64``
    stores a file (base64 text tagged ``file-encoding: base64``). Returns the version id."""
    if isinstance(value, bytes):
        kwargs["tags"] = {**(kwargs.get("tags") or {}), "file-encoding": "base64"}
        value = base64.b64encode(value).decode("ascii")
    version = client.set_secret(name, value, **kwargs).properties.version
    assert version is not None
    return version


class StaticTokenCredential:
    """A credential handing out :data:`TOKEN`; :attr:`requests` records each ``(scopes, tenant)`` asked.

    It implements both token protocols of azure-core: ``get_token`` (``TokenCredential``) and
    ``get_token_info`` (``SupportsTokenInfo``, preferred by newer clients).
    """

    def __init__(self, token: str = TOKEN, lifetime: int = 3600) -> None:
        self.token = token
        self.lifetime = lifetime
        self.requests: list[tuple[tuple[str, ...], str | None]] = []
        self._lock = threading.Lock()

    def get_token(
        self,
        *scopes: str,
        claims: str | None = None,
        tenant_id: str | None = None,
        enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:
        with self._lock:
            self.requests.append((scopes, tenant_id))
        return AccessToken(self.token, int(time.time()) + self.lifetime)

    def get_token_info(self, *scopes: str, options: TokenRequestOptions | None = None) -> AccessTokenInfo:
        tenant = (options or {}).get("tenant_id")
        with self._lock:
            self.requests.append((scopes, tenant))
        return AccessTokenInfo(self.token, int(time.time()) + self.lifetime)

    def close(self) -> None:
        pass

    def __enter__(self) -> StaticTokenCredential:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass
class SecretVersion:
    """One version of a secret, as the service stores it."""

    name: str
    version: str
    value: str
    enabled: bool = True
    not_before: int | None = None
    expires: int | None = None
    content_type: str | None = None
    tags: dict[str, str] | None = None
    kid: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    updated: int = field(default_factory=lambda: int(time.time()))

    def attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            "enabled": self.enabled,
            "created": self.created,
            "updated": self.updated,
            "recoveryLevel": "Recoverable+Purgeable",
            "recoverableDays": 90,
        }
        if self.not_before is not None:
            attrs["nbf"] = self.not_before
        if self.expires is not None:
            attrs["exp"] = self.expires
        return attrs

    def item(self, base: str) -> dict[str, Any]:
        """The ``SecretItem`` shape (list responses): everything but the value."""
        body: dict[str, Any] = {
            "id": f"{base}/secrets/{self.name}/{self.version}",
            "attributes": self.attributes(),
        }
        if self.content_type is not None:
            body["contentType"] = self.content_type
        if self.tags is not None:
            body["tags"] = self.tags
        if self.kid is not None:
            body["managed"] = True
        return body

    def bundle(self, base: str) -> dict[str, Any]:
        """The ``SecretBundle`` shape (get and set responses)."""
        body = self.item(base)
        body["value"] = self.value
        if self.kid is not None:
            body["kid"] = self.kid
        return body


class _Vault:
    def __init__(self) -> None:
        self.secrets: dict[str, list[SecretVersion]] = {}  # lower-case name -> versions, oldest first
        self.denied: set[str] = set()


class _Error(Exception):
    def __init__(self, status: int, code: str, message: str, inner: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner is not None:
            error["innererror"] = {"code": self.inner}
        return {"error": error}


class _Served:
    """Starts and stops one threaded server on ``self.port``; subclasses name handler and TLS."""

    port: int
    _handler: type[BaseHTTPRequestHandler]
    _thread_name: str
    _tls: ssl.SSLContext | None = None
    _httpd: _HTTPSServer | None = None
    _thread: threading.Thread | None = None

    def start(self) -> Self:
        if self._httpd is None:
            httpd = _HTTPSServer(("127.0.0.1", self.port), self._handler, self, self._tls)
            self._httpd = httpd
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=self._thread_name,
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and drop open connections (state stays for the next start)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.drop_connections()
        if self._thread is not None:
            self._thread.join(5)


class KeyVaultServer(_Served):
    """Key Vault's secrets REST API on ``https://127.0.0.1:<port>``, with its own test CA.

    Each ``Host`` is a separate vault (``127.0.0.1`` and ``localhost`` are two vaults on one
    server; ``myvault.vault.azure.net`` reached through :class:`LoopbackGateway` is a third).
    The certificate covers ``127.0.0.1``, ``localhost`` and ``*.vault.azure.net``;
    :attr:`ca_path` is the CA to trust (``connection_verify=server.ca_path``).
    """

    def __init__(self, port: int | None = None, *, tokens: tuple[str, ...] = (TOKEN,)) -> None:
        self.port = port or free_port()
        self.tokens = frozenset(tokens)
        self.ca = trustme.CA()
        self._dir = Path(tempfile.mkdtemp(prefix="secretkit-kv-"))
        self.ca_path = str(self._dir / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_path)
        self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1", "localhost", "*.vault.azure.net").configure_cert(self._tls)
        self._handler, self._thread_name = _KeyVaultHandler, "test-keyvault"
        self._vaults: dict[str, _Vault] = {}
        self._faults: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._httpd = None
        self._thread = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The vault URL of the default vault (``https://127.0.0.1:<port>``)."""
        return f"https://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._httpd is not None

    @property
    def connections(self) -> int:
        """TLS connections accepted since the last start (a client reusing one adds none)."""
        httpd = self._httpd
        return httpd.accepted if httpd is not None else 0

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def client_options(self) -> dict[str, Any]:
        """``SecretClient`` keyword arguments for this vault: trust its CA, accept its challenge
        (it names ``vault.azure.net``, not 127.0.0.1), and fail at once instead of retrying."""
        return {"verify_challenge_resource": False, "connection_verify": self.ca_path, "retry_total": 0}

    def __enter__(self) -> KeyVaultServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- state, for tests (the REST API is what clients use) -------------------------------

    def vault(self, host: str = "127.0.0.1") -> _Vault:
        with self._lock:
            return self._vaults.setdefault(host.lower(), _Vault())

    def put(
        self,
        name: str,
        value: str,
        *,
        host: str = "127.0.0.1",
        enabled: bool = True,
        not_before: int | None = None,
        expires: int | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        kid: str | None = None,
    ) -> str:
        """Store a new version of ``name`` in the vault at ``host``; returns its version id."""
        return self._store(
            name,
            value,
            host=host,
            enabled=enabled,
            not_before=not_before,
            expires=expires,
            content_type=content_type,
            tags=tags,
            kid=kid,
        ).version

    def _store(
        self,
        name: str,
        value: str,
        *,
        host: str,
        enabled: bool = True,
        not_before: int | None = None,
        expires: int | None = None,
        content_type: str | None = None,
        tags: Mapping[str, str] | None = None,
        kid: str | None = None,
    ) -> SecretVersion:
        record = SecretVersion(
            name=name,
            version=uuid.uuid4().hex,
            value=value,
            enabled=enabled,
            not_before=not_before,
            expires=expires,
            content_type=content_type,
            tags=dict(tags) if tags is not None else None,
            kid=kid,
        )
        vault = self.vault(host)
        with self._lock:
            history = vault.secrets.setdefault(name.lower(), [])
            if history:
                record.name = history[0].name  # names are case-insensitive; the first spelling stays
            history.append(record)
        return record

    def deny(self, name: str, host: str = "127.0.0.1") -> None:
        """Refuse every operation on ``name`` with 403, as a missing permission would."""
        vault = self.vault(host)
        with self._lock:
            vault.denied.add(name.lower())

    def allow(self, name: str, host: str = "127.0.0.1") -> None:
        vault = self.vault(host)
        with self._lock:
            vault.denied.discard(name.lower())

    def disable(self, name: str, version: str | None = None, host: str = "127.0.0.1") -> None:
        """Disable one version of ``name`` (the latest when ``version`` is ``None``)."""
        vault = self.vault(host)
        with self._lock:
            history = vault.secrets[name.lower()]
            target = history[-1] if version is None else next(v for v in history if v.version == version)
            target.enabled = False
            target.updated = int(time.time())

    def fault(self, name: str, kind: str | None, host: str = "127.0.0.1") -> None:
        """Break successful reads of ``name``: ``"garbled"`` sends a 200 whose JSON is cut short
        after the value, ``"truncated"`` closes the connection before the promised length;
        ``None`` heals it. Real vaults do neither, but proxies and broken networks do."""
        with self._lock:
            if kind is None:
                self._faults.pop((host.lower(), name.lower()), None)
            else:
                assert kind in ("garbled", "truncated"), kind
                self._faults[(host.lower(), name.lower())] = kind

    # -- the protocol ----------------------------------------------------------------------

    def handle(
        self, method: str, target: str, headers: Mapping[str, str] | Message, body: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        """Answer one request: ``(status, extra headers, JSON body)``."""
        parts = urlsplit(target)
        path = parts.path
        query = parse_qs(parts.query, keep_blank_values=True)
        authorization = headers.get("Authorization", "")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or token not in self.tokens:
            message = (
                "AKV10000: Request is missing a Bearer or PoP token."
                if not authorization
                else "AKV10022: Invalid audience or token."
            )
            challenge = (
                f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", resource="{RESOURCE}"'
            )
            return 401, {"WWW-Authenticate": challenge}, _Error(401, "Unauthorized", message).body()
        host_header = headers.get("Host") or "127.0.0.1"
        host = urlsplit(f"//{host_header}").hostname or "127.0.0.1"
        base = f"https://{host_header}"
        try:
            api_version = (query.get("api-version") or [""])[0]
            if not api_version:
                raise _Error(400, "BadParameter", "The 'api-version' query parameter is missing.")
            if api_version not in API_VERSIONS:
                raise _Error(
                    400,
                    "BadParameter",
                    f"The specified version ({api_version}) is not recognized. "
                    "Consider using the latest supported version (2026-04-01).",
                )
            segments = path.split("/")[1:]
            if len(segments) < 2 or segments[0] != "secrets":
                raise _Error(404, "NotFound", f"The requested path {path} does not exist.")
            name = segments[1]
            if not _NAME.fullmatch(name):
                raise _Error(400, "BadParameter", f"The request URI contains an invalid name: {name}")
            vault = self.vault(host)
            if name.lower() in vault.denied:
                operation = {"GET": "get", "PUT": "set"}.get(method, method.lower())
                raise _Error(
                    403,
                    "Forbidden",
                    f"The user, group or application 'appid=00000000-0000-0000-0000-000000000000;"
                    f"oid=00000000-0000-0000-0000-000000000001;iss=https://sts.windows.net/{TENANT}/' "
                    f"does not have secrets {operation} permission on key vault '{host};location=local'. "
                    "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                    inner="AccessDenied",
                )
            rest = segments[2:]
            if method == "GET" and rest == ["versions"]:
                return 200, {}, self._list_versions(vault, name, query, base, api_version)
            if method == "GET" and len(rest) <= 1:
                bundle = self._get(vault, name, rest[0] if rest else "", base)
                with self._lock:
                    fault = self._faults.get((host, name.lower()))
                return 200, ({_FAULT_HEADER: fault} if fault else {}), bundle
            if method == "PUT" and not rest:
                return 200, {}, self._set(host, name, body, base)
            raise _Error(405, "MethodNotAllowed", f"{method} is not supported on {path}.")
        except _Error as err:
            return err.status, {}, err.body()

    def _get(self, vault: _Vault, name: str, version: str, base: str) -> dict[str, Any]:
        with self._lock:
            history = list(vault.secrets.get(name.lower(), ()))
        record = (
            history[-1]
            if history and not version
            else next((v for v in history if v.version == version.lower()), None)
        )
        if record is None:
            shown = f"{name}/{version}" if version else name
            raise _Error(
                404,
                "SecretNotFound",
                f"A secret with (name/id) {shown} was not found in this key vault. If you recently "
                "deleted this secret you may be able to recover it using the correct recovery command. "
                "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182",
            )
        if not record.enabled:
            raise _Error(
                403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled"
            )
        return record.bundle(base)

    def _set(self, host: str, name: str, body: bytes, base: str) -> dict[str, Any]:
        try:
            payload = json.loads(body or b"{}")
        except ValueError:
            raise _Error(400, "BadParameter", "The request body is not valid JSON.") from None
        value = payload.get("value") if isinstance(payload, dict) else None
        if not isinstance(value, str):
            raise _Error(400, "BadParameter", "Property 'value' is required and must be a string.")
        if len(value.encode("utf-8")) > _MAX_VALUE_BYTES:
            raise _Error(400, "BadParameter", "The secret value exceeds the maximum size of 25 KB.")
        attrs = payload.get("attributes") or {}
        record = self._store(
            name,
            value,
            host=host,
            enabled=bool(attrs.get("enabled", True)),
            not_before=attrs.get("nbf"),
            expires=attrs.get("exp"),
            content_type=payload.get("contentType"),
            tags=payload.get("tags"),
        )
        return record.bundle(base)

    def _list_versions(
        self, vault: _Vault, name: str, query: Mapping[str, list[str]], base: str, api_version: str
    ) -> dict[str, Any]:
        with self._lock:
            history = list(vault.secrets.get(name.lower(), ()))
        try:
            size = int((query.get("maxresults") or [str(_PAGE)])[0])
            start = int((query.get("$skiptoken") or ["0"])[0])
        except ValueError:
            raise _Error(400, "BadParameter", "maxresults and $skiptoken must be integers.") from None
        if not 1 <= size <= _PAGE:
            raise _Error(400, "BadParameter", f"maxresults must be between 1 and {_PAGE}.")
        page = history[start : start + size]
        next_link = None
        if start + size < len(history):
            next_link = (
                f"{base}/secrets/{quote(name)}/versions?api-version={api_version}"
                f"&$skiptoken={start + size}&maxresults={size}"
            )
        return {"value": [v.item(base) for v in page], "nextLink": next_link}


class _HTTPSServer(ThreadingHTTPServer):
    """A threading HTTP server whose connections are TLS, handshaken in the handler thread."""

    daemon_threads = True
    block_on_close = False
    # socketserver's default backlog of 5 drops the connections of a burst (a cold start opens
    # dozens at once) and the client's TCP retries each after a second: Key Vault does not.
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        owner: Any,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.owner = owner
        self.tls = tls
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        #: Connections taken so far (TLS ones once their handshake passed).
        self.accepted = 0
        super().__init__(address, handler)

    def track(self, sock: socket.socket) -> None:
        with self._open_lock:
            self._open.add(sock)
            self.accepted += 1

    def untrack(self, sock: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(sock)

    def drop_connections(self) -> None:
        # A stopped server must look like an outage: keep-alive connections die too.
        with self._open_lock:
            open_now, self._open = list(self._open), set()
        for sock in open_now:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that drop a connection or refuse the certificate are expected in tests.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30
    server: _HTTPSServer

    def setup(self) -> None:
        self.request.settimeout(self.timeout)
        # Headers and body go out in separate writes; without this, Nagle's algorithm and the
        # client's delayed ACK add ~40 ms to every response.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.server.tls is not None:
            self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        self.server.track(self.request)
        super().setup()

    def finish(self) -> None:
        self.server.untrack(self.request)
        with contextlib.suppress(OSError):
            super().finish()
        # socketserver closes the socket it accepted, which wrapping in TLS detached: close ours.
        with contextlib.suppress(OSError):
            self.request.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status: int, headers: Mapping[str, str], body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache")
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


class _KeyVaultHandler(_Handler):
    server_version = "secretkit-test-keyvault/1.0"

    def _dispatch(self) -> None:
        body = self.read_body()
        owner: KeyVaultServer = self.server.owner
        status, headers, payload = owner.handle(self.command, self.path, self.headers, body)
        fault = headers.pop(_FAULT_HEADER, None)
        if fault is not None:
            self.send_fault(fault, payload)
            return
        headers = {
            "x-ms-keyvault-service-version": "1.9.0.0",
            "x-ms-keyvault-region": "local",
            "x-ms-request-id": str(uuid.uuid4()),
            **headers,
        }
        self.send_json(status, headers, payload)

    def send_fault(self, kind: str, payload: Mapping[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        if kind == "garbled":
            # Everything up to and including the value, then nothing: valid JSON it is not.
            value = json.dumps(payload["value"]).encode("utf-8")
            data = data[: data.index(b'"value": ' + value) + len(b'"value": ') + len(value)]
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data) + (100 if kind == "truncated" else 0)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()
        if kind == "truncated":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _dispatch


class LoopbackGateway(_Served):
    """Plain-HTTP helpers on loopback that stand in for the rest of an Azure host.

    * ``GET /msi/token``: the App Service managed-identity endpoint (set ``IDENTITY_ENDPOINT``
      to :attr:`identity_endpoint` and ``IDENTITY_HEADER`` to :attr:`identity_header`), so
      ``DefaultAzureCredential`` finds a managed identity and gets :data:`TOKEN`.
    * ``CONNECT <anything>.vault.azure.net:443``: an HTTPS proxy (``HTTPS_PROXY``) tunnelling to the
      test vault, so ``https://<name>.vault.azure.net`` URLs reach it; other hosts are refused.
    """

    def __init__(self, vault_port: int, port: int | None = None) -> None:
        self.vault_port = vault_port
        self.port = port or free_port()
        self._handler, self._thread_name = _GatewayHandler, "test-gateway"
        self.identity_header = uuid.uuid4().hex
        self.token_requests: list[str] = []
        self.tunnels: list[str] = []
        self._httpd = None
        self._thread = None

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def identity_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}/msi/token"

    def environment(self, ca_path: str) -> dict[str, str]:
        """The environment variables an App Service instance behind this proxy would have."""
        return {
            "IDENTITY_ENDPOINT": self.identity_endpoint,
            "IDENTITY_HEADER": self.identity_header,
            "HTTPS_PROXY": self.proxy_url,
            "NO_PROXY": "127.0.0.1,localhost",
            "REQUESTS_CA_BUNDLE": ca_path,
        }

    def __enter__(self) -> LoopbackGateway:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _GatewayHandler(_Handler):
    server_version = "secretkit-test-gateway/1.0"

    def do_GET(self) -> None:
        self.read_body()
        owner: LoopbackGateway = self.server.owner
        parts = urlsplit(self.path)
        if parts.path != "/msi/token":
            self.send_json(404, {}, {"error": "not_found"})
            return
        query = parse_qs(parts.query)
        resource = (query.get("resource") or [""])[0]
        if self.headers.get("X-IDENTITY-HEADER") != owner.identity_header:
            self.send_json(401, {}, {"statusCode": 401, "message": "X-IDENTITY-HEADER is missing or wrong"})
            return
        owner.token_requests.append(resource)
        self.send_json(
            200,
            {},
            {
                "access_token": TOKEN,
                "expires_on": str(int(time.time()) + 3600),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": "00000000-0000-0000-0000-000000000000",
            },
        )

    def do_CONNECT(self) -> None:
        owner: LoopbackGateway = self.server.owner
        host, _, port = self.path.rpartition(":")
        if not host.lower().endswith(".vault.azure.net") or port != "443":
            self.send_json(403, {}, {"error": "this test proxy only tunnels to *.vault.azure.net:443"})
            self.close_connection = True
            return
        owner.tunnels.append(host)
        upstream = socket.create_connection(("127.0.0.1", owner.vault_port), timeout=self.timeout)
        self.server.track(upstream)
        try:
            self.send_response(200, "Connection Established")
            self.end_headers()
            self.wfile.flush()
            for _ in _pump(self.connection, upstream, idle=self.timeout):
                pass
        finally:
            self.server.untrack(upstream)
            with contextlib.suppress(OSError):
                upstream.close()
        self.close_connection = True


def _pump(a: socket.socket, b: socket.socket, idle: float) -> Iterator[int]:
    """Copy bytes both ways until either side closes or nothing moves for ``idle`` seconds."""
    while True:
        ready, _, _ = select.select([a, b], [], [], idle)
        if not ready:
            return
        for src in ready:
            dst = b if src is a else a
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                return
            try:
                dst.sendall(data)
            except OSError:
                return
            yield len(data)
