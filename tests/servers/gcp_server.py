"""A local Secret Manager speaking the real gRPC wire protocol, because Google ships no emulator.

The vendor SDK talks to it unchanged through ``SecretManagerServiceGrpcTransport(channel=...)``;
requests and responses are (de)serialized with the message classes the SDK itself ships, so
what the client sees on the wire is what the service sends. It keeps the service's rules on
every path secretkit uses:

- names in answers carry the project *number* (``projects/100000000001/secrets/s/versions/2``),
  while requests may name the project by id or number; a malformed name or project id
  answers INVALID_ARGUMENT; regional names (``projects/P/locations/L/secrets/S``) are
  served too, as a regional endpoint would serve them;
- ``latest`` is the newest version whatever its state (a disabled newest version is an error,
  not a fall-back to an older one), and version aliases resolve;
- a disabled or destroyed version answers FAILED_PRECONDITION with the service's wording;
- a missing secret or version answers NOT_FOUND; a secret in the deny set answers
  PERMISSION_DENIED; with ``require_auth`` a call without a bearer token answers UNAUTHENTICATED;
- payloads carry ``data_crc32c``; a checksum sent with AddSecretVersion is verified.

Test-only faults are set in-process: a wrong or missing checksum for one secret, a delay
for one secret. The server has no dependency on pytest or secretkit.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.api_core.exceptions import AlreadyExists
from google.cloud.secretmanager_v1 import SecretManagerServiceClient
from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
    SecretManagerServiceGrpcTransport,
)
from google.cloud.secretmanager_v1.types import resources, service
from google.protobuf import empty_pb2, timestamp_pb2

__all__ = ["SERVICE", "GcpSecretManagerServer", "crc32c_bitwise", "free_port", "make_client", "write_version"]

SERVICE = "google.cloud.secretmanager.v1.SecretManagerService"

ENABLED = resources.SecretVersion.State.ENABLED
DISABLED = resources.SecretVersion.State.DISABLED
DESTROYED = resources.SecretVersion.State.DESTROYED


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def crc32c_bitwise(data: bytes) -> int:
    """CRC-32C (Castagnoli), one bit at a time.

    Deliberately a different implementation from the backend's table-driven one, so a bug
    in either shows up as a checksum mismatch in the tests instead of cancelling out.
    """
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


@dataclass
class _Version:
    number: int
    data: bytes | None
    crc32c: int
    state: int
    created: float
    destroyed: float | None = None


@dataclass
class _Secret:
    parent: str  # projects/<number> or projects/<number>/locations/<location>
    secret_id: str
    created: float
    aliases: dict[str, int] = field(default_factory=dict)
    versions: list[_Version] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.parent}/secrets/{self.secret_id}"


_NAME = re.compile(
    r"projects/(?P<project>[^/]+)(?:/locations/(?P<location>[^/]+))?"
    r"(?:/secrets/(?P<secret>[^/]+)(?:/versions/(?P<version>[^/]+))?)?"
)
_PROJECT_ID = re.compile(r"[a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]+")


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


class GcpSecretManagerServer:
    """An in-memory Secret Manager on an insecure (or TLS) loopback port.

    ``start()`` binds a free port (or ``port``); ``stop()`` and ``start()`` again bring it
    back on the same port with the same secrets, which is what an outage test needs.
    ``calls`` records ``(method, resource name)`` for every RPC, for counting round trips.
    """

    def __init__(
        self,
        *,
        require_auth: bool = False,
        tls: tuple[bytes, bytes] | None = None,
        max_workers: int = 8,
    ) -> None:
        #: When true, a call without ``authorization: Bearer ...`` metadata is UNAUTHENTICATED.
        self.require_auth = require_auth
        #: (private key PEM, certificate chain PEM) to serve TLS instead of plaintext.
        self.tls = tls
        self.max_workers = max_workers
        self.port: int | None = None
        self.calls: list[tuple[str, str]] = []
        #: The bearer tokens seen, newest last (tests decode them to check who called).
        self.tokens: list[str] = []
        self._lock = threading.Lock()
        self._projects: dict[str, str] = {}  # project id -> project number
        self._secrets: dict[tuple[str, str], _Secret] = {}  # (project number, secret id)
        self._denied: set[tuple[str, str]] = set()
        self._checksum_faults: dict[tuple[str, str], str] = {}
        self._delays: dict[tuple[str, str], float] = {}
        self._server: grpc.Server | None = None

    # -- lifecycle ----------------------------------------------------------------------

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``: the target to give ``grpc.insecure_channel``."""
        if self.port is None:
            raise RuntimeError("the server has not been started")
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self, port: int | None = None) -> GcpSecretManagerServer:
        if self._server is not None:
            raise RuntimeError("the server is already running")
        if port is None:
            port = self.port if self.port is not None else free_port()
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="fake-gcp-sm"),
            # Refuse a second server on the same port rather than share it silently.
            options=[("grpc.so_reuseport", 0)],
        )
        server.add_generic_rpc_handlers((self._handler(),))
        target = f"127.0.0.1:{port}"
        if self.tls is None:
            bound = server.add_insecure_port(target)
        else:
            bound = server.add_secure_port(target, grpc.ssl_server_credentials([self.tls]))
        if bound != port:
            raise RuntimeError(f"could not bind {target}")
        server.start()
        self.port = port
        self._server = server
        return self

    def stop(self) -> None:
        """Stop serving now (in-flight calls are cancelled); the secrets are kept."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace=None).wait(5)

    def restart(self) -> None:
        """Stop, then serve again on the same port."""
        self.stop()
        self.start(self.port)

    def __enter__(self) -> GcpSecretManagerServer:
        return self if self.running else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- in-process seeding and faults --------------------------------------------------

    def project_number(self, project: str) -> str:
        """The number of ``project`` (an id gets a stable made-up number on first use)."""
        with self._lock:
            return self._number(project)

    def add_version(
        self, project: str, secret_id: str, data: bytes | str, *, location: str | None = None
    ) -> str:
        """Add a version (creating the secret if needed) without an RPC; returns its number."""
        payload = data.encode() if isinstance(data, str) else data
        with self._lock:
            key = self._key(project, secret_id, location)
            secret = self._secrets.get(key)
            if secret is None:
                secret = self._secrets[key] = _Secret(key[0], secret_id, time.time())
            return str(self._append(secret, payload).number)

    def deny(self, project: str, secret_id: str, *, location: str | None = None) -> None:
        """Answer PERMISSION_DENIED for every call on this secret, as IAM would."""
        with self._lock:
            self._denied.add(self._key(project, secret_id, location))

    def checksum_fault(
        self, project: str, secret_id: str, fault: str | None, *, location: str | None = None
    ) -> None:
        """Serve this secret with a ``"wrong"`` checksum, ``"missing"`` checksum, or ``None`` (correct)."""
        with self._lock:
            key = self._key(project, secret_id, location)
            if fault is None:
                self._checksum_faults.pop(key, None)
            else:
                self._checksum_faults[key] = fault

    def delay(self, project: str, secret_id: str, seconds: float, *, location: str | None = None) -> None:
        """Answer calls on this secret only after ``seconds`` (for deadline tests)."""
        with self._lock:
            self._delays[self._key(project, secret_id, location)] = seconds

    def access_count(self, name_fragment: str = "") -> int:
        """How many AccessSecretVersion calls named a resource containing ``name_fragment``."""
        with self._lock:
            return sum(1 for m, n in self.calls if m == "AccessSecretVersion" and name_fragment in n)

    # -- the service --------------------------------------------------------------------

    def _handler(self) -> grpc.GenericRpcHandler:
        methods: dict[str, tuple[Callable[[Any], Any], Any, Any]] = {
            "AccessSecretVersion": (
                self._access,
                service.AccessSecretVersionRequest.deserialize,
                service.AccessSecretVersionResponse.serialize,
            ),
            "AddSecretVersion": (
                self._add_version,
                service.AddSecretVersionRequest.deserialize,
                resources.SecretVersion.serialize,
            ),
            "CreateSecret": (
                self._create_secret,
                service.CreateSecretRequest.deserialize,
                resources.Secret.serialize,
            ),
            "DeleteSecret": (
                self._delete_secret,
                service.DeleteSecretRequest.deserialize,
                empty_pb2.Empty.SerializeToString,
            ),
            "DestroySecretVersion": (
                lambda r: self._change_state(r, DESTROYED),
                service.DestroySecretVersionRequest.deserialize,
                resources.SecretVersion.serialize,
            ),
            "DisableSecretVersion": (
                lambda r: self._change_state(r, DISABLED),
                service.DisableSecretVersionRequest.deserialize,
                resources.SecretVersion.serialize,
            ),
            "EnableSecretVersion": (
                lambda r: self._change_state(r, ENABLED),
                service.EnableSecretVersionRequest.deserialize,
                resources.SecretVersion.serialize,
            ),
            "GetSecret": (
                self._get_secret,
                service.GetSecretRequest.deserialize,
                resources.Secret.serialize,
            ),
            "GetSecretVersion": (
                self._get_version,
                service.GetSecretVersionRequest.deserialize,
                resources.SecretVersion.serialize,
            ),
        }
        handlers = {
            method: grpc.unary_unary_rpc_method_handler(
                self._wrap(method, fn), request_deserializer=deserialize, response_serializer=serialize
            )
            for method, (fn, deserialize, serialize) in methods.items()
        }
        return grpc.method_handlers_generic_handler(SERVICE, handlers)

    def _wrap(self, method: str, fn: Callable[[Any], Any]) -> Callable[[Any, grpc.ServicerContext], Any]:
        def handle(request: Any, context: grpc.ServicerContext) -> Any:
            target = str(getattr(request, "name", "") or getattr(request, "parent", ""))
            with self._lock:
                self.calls.append((method, target))
            try:
                self._authenticate(context)
                return fn(request)
            except _Abort as abort:
                context.abort(abort.code, abort.message)

        return handle

    def _authenticate(self, context: grpc.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata())
        auth = metadata.get("authorization", "")
        if isinstance(auth, bytes):
            auth = auth.decode()
        if auth.startswith("Bearer "):
            with self._lock:
                self.tokens.append(auth[len("Bearer ") :])
        elif self.require_auth:
            raise _Abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )

    def _access(self, request: service.AccessSecretVersionRequest) -> service.AccessSecretVersionResponse:
        with self._lock:
            key, version = self._parse(request.name, "version")
            self._check_permission(key, "secretmanager.versions.access", request.name)
            delay = self._delays.get(key, 0.0)
        if delay:
            time.sleep(delay)
        with self._lock:
            secret = self._secrets.get(key)
            if secret is None or not secret.versions:
                raise _Abort(
                    grpc.StatusCode.NOT_FOUND,
                    f"Secret [{key[0]}/secrets/{key[1]}] not found or has no versions.",
                )
            found = self._version(secret, version)
            name = f"{secret.name}/versions/{found.number}"
            if found.state != ENABLED:
                state = "DESTROYED" if found.state == DESTROYED else "DISABLED"
                raise _Abort(
                    grpc.StatusCode.FAILED_PRECONDITION, f"Secret Version [{name}] is in {state} state."
                )
            assert found.data is not None
            fault = self._checksum_faults.get(key)
        payload = resources.SecretPayload(data=found.data)
        if fault == "wrong":
            payload.data_crc32c = found.crc32c ^ 0x1
        elif fault != "missing":
            payload.data_crc32c = found.crc32c
        return service.AccessSecretVersionResponse(name=name, payload=payload)

    def _create_secret(self, request: service.CreateSecretRequest) -> resources.Secret:
        if not _valid_id(request.secret_id):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "The secret ID is invalid.")
        if "replication" not in request.secret and "/locations/" not in request.parent:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Secret.replication must be specified.")
        with self._lock:
            parent, _ = self._parse(request.parent, "parent")
            key = (parent[0], request.secret_id)
            self._check_permission(key, "secretmanager.secrets.create", request.parent)
            if key in self._secrets:
                raise _Abort(
                    grpc.StatusCode.ALREADY_EXISTS, f"Secret [{key[0]}/secrets/{key[1]}] already exists."
                )
            secret = self._secrets[key] = _Secret(key[0], request.secret_id, time.time())
            secret.aliases = {alias: int(n) for alias, n in request.secret.version_aliases.items()}
            return self._secret_message(secret)

    def _add_version(self, request: service.AddSecretVersionRequest) -> resources.SecretVersion:
        data = bytes(request.payload.data)
        if "data_crc32c" in request.payload and request.payload.data_crc32c != crc32c_bitwise(data):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Checksum mismatch.")
        with self._lock:
            key, _ = self._parse(request.parent, "secret")
            self._check_permission(key, "secretmanager.versions.add", request.parent)
            secret = self._secret(key)
            return self._version_message(secret, self._append(secret, data))

    def _get_secret(self, request: service.GetSecretRequest) -> resources.Secret:
        with self._lock:
            key, _ = self._parse(request.name, "secret")
            self._check_permission(key, "secretmanager.secrets.get", request.name)
            return self._secret_message(self._secret(key))

    def _delete_secret(self, request: service.DeleteSecretRequest) -> empty_pb2.Empty:
        with self._lock:
            key, _ = self._parse(request.name, "secret")
            self._check_permission(key, "secretmanager.secrets.delete", request.name)
            self._secret(key)
            del self._secrets[key]
        return empty_pb2.Empty()

    def _get_version(self, request: service.GetSecretVersionRequest) -> resources.SecretVersion:
        with self._lock:
            key, version = self._parse(request.name, "version")
            self._check_permission(key, "secretmanager.versions.get", request.name)
            secret = self._secret(key)
            return self._version_message(secret, self._version(secret, version))

    def _change_state(self, request: Any, state: int) -> resources.SecretVersion:
        with self._lock:
            key, version = self._parse(request.name, "version")
            self._check_permission(key, "secretmanager.versions.enable", request.name)
            secret = self._secret(key)
            found = self._version(secret, version)
            if found.state == DESTROYED and state != DESTROYED:
                raise _Abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Secret Version [{secret.name}/versions/{found.number}] is in DESTROYED state.",
                )
            found.state = state
            if state == DESTROYED:
                found.data, found.destroyed = None, time.time()
            return self._version_message(secret, found)

    # -- helpers (called with the lock held where they touch state) ---------------------

    def _number(self, project: str) -> str:
        # Every project id gets a stable number on first sight, so lookups by id or number agree.
        if project.isdigit():
            return project
        number = self._projects.get(project)
        if number is None:
            number = self._projects[project] = str(100000000001 + len(self._projects))
        return number

    def _key(self, project: str, secret_id: str, location: str | None = None) -> tuple[str, str]:
        parent = f"projects/{self._number(project)}" + (f"/locations/{location}" if location else "")
        return (parent, secret_id)

    def _parse(self, name: str, kind: str) -> tuple[tuple[str, str], str]:
        """``((parent with the project number, secret id), version)`` for a ``kind`` of name."""
        match = _NAME.fullmatch(name)
        shape_ok = match is not None and (
            (kind == "parent" and match["secret"] is None)
            or (kind == "secret" and match["secret"] is not None and match["version"] is None)
            or (kind == "version" and match["version"] is not None)
        )
        if match is None or not shape_ok or not _PROJECT_ID.fullmatch(match["project"]):
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"Invalid resource field value in the request: {name!r}"
            )
        key = self._key(match["project"], match["secret"] or "", match["location"])
        return key, match["version"] or ""

    def _check_permission(self, key: tuple[str, str], permission: str, resource: str) -> None:
        if key in self._denied:
            raise _Abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"Permission '{permission}' denied for resource '{resource}' (or it may not exist).",
            )

    def _secret(self, key: tuple[str, str]) -> _Secret:
        secret = self._secrets.get(key)
        if secret is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"Secret [{key[0]}/secrets/{key[1]}] not found.")
        return secret

    def _version(self, secret: _Secret, version: str) -> _Version:
        if version == "latest":
            if not secret.versions:
                raise _Abort(
                    grpc.StatusCode.NOT_FOUND, f"Secret [{secret.name}] not found or has no versions."
                )
            return secret.versions[-1]
        number = int(version) if version.isdigit() else secret.aliases.get(version)
        if number is None or not 1 <= number <= len(secret.versions):
            raise _Abort(
                grpc.StatusCode.NOT_FOUND, f"Secret Version [{secret.name}/versions/{version}] not found."
            )
        return secret.versions[number - 1]

    def _append(self, secret: _Secret, data: bytes) -> _Version:
        version = _Version(len(secret.versions) + 1, data, crc32c_bitwise(data), ENABLED, time.time())
        secret.versions.append(version)
        return version

    def _secret_message(self, secret: _Secret) -> resources.Secret:
        return resources.Secret(
            name=secret.name,
            replication=resources.Replication(automatic=resources.Replication.Automatic()),
            create_time=_timestamp(secret.created),
            version_aliases={alias: n for alias, n in secret.aliases.items()},
        )

    def _version_message(self, secret: _Secret, version: _Version) -> resources.SecretVersion:
        message = resources.SecretVersion(
            name=f"{secret.name}/versions/{version.number}",
            create_time=_timestamp(version.created),
            state=version.state,
            client_specified_payload_checksum=True,
        )
        if version.destroyed is not None:
            message.destroy_time = _timestamp(version.destroyed)
        return message


def _valid_id(secret_id: str) -> bool:
    return 0 < len(secret_id) <= 255 and all(c.isascii() and (c.isalnum() or c in "-_") for c in secret_id)


# A test server restarts in about a second: reconnect at that pace, not gRPC's minutes.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


def make_client(address: str) -> SecretManagerServiceClient:
    """The vendor client, unchanged, over a plaintext channel to ``address``."""
    channel = grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
    return SecretManagerServiceClient(transport=SecretManagerServiceGrpcTransport(channel=channel))


def write_version(
    client: SecretManagerServiceClient, project: str, secret_id: str, value: str | bytes
) -> str:
    """Create the secret if needed and add a version through the SDK; returns its number."""
    data = value.encode() if isinstance(value, str) else value
    try:
        client.create_secret(
            request={
                "parent": f"projects/{project}",
                "secret_id": secret_id,
                "secret": {"replication": {"automatic": {}}},
            }
        )
    except AlreadyExists:
        pass
    version = client.add_secret_version(
        request={
            "parent": f"projects/{project}/secrets/{secret_id}",
            "payload": {"data": data, "data_crc32c": crc32c_bitwise(data)},
        }
    )
    return str(version.name.rsplit("/", 1)[-1])
