"""Google Cloud Secret Manager (``gcp-sm://``) through the official SDK, imported only when built."""

from __future__ import annotations

import os
import re
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._backend import Fetched
from .._backend_class import Probe, Setting
from .._errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    InvalidReference,
    MissingDependency,
    SecretkitError,
    SecretNotFound,
)
from .._options import Shape, check_options, where
from .._refs import SecretRef
from .._throttled import Throttled, retry_after
from ._defaulted import noted

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud.secretmanager_v1 import SecretManagerServiceClient
    from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
        SecretManagerServiceTransport,
    )

__all__ = ["GcpSecretManagerBackend"]

SCHEME = "gcp-sm"
ROLE = "roles/secretmanager.secretAccessor"

_FULL_NAME = re.compile(
    r"projects/(?P<project>[^/]+)(?:/locations/(?P<location>[^/]+))?"
    r"/secrets/(?P<secret>[^/]+)(?:/versions/(?P<version>[^/]+))?"
)
_SECRET_ID = re.compile(r"[A-Za-z0-9_-]{1,255}")
_VERSION = re.compile(r"[A-Za-z0-9_-]{1,63}")
_VERSION_IN_MESSAGE = re.compile(r"/versions/([^/\]\s]+)\]")
_OPTIONS = frozenset({"version"})
_SHAPES = {
    "version": Shape(
        _VERSION.pattern, "a version number, 'latest' or an alias (at most 63 of A-Z a-z 0-9 - _)"
    )
}

# Insecure channels only ever reach a local emulator or test server: reconnect quickly
# after it restarts instead of backing off for up to two minutes (gRPC's default). gRPC
# also takes the minimum backoff as the time a connection attempt may take, so it stays at
# 2 s (the other backends' connect timeout): at 200 ms, a link with a 300 ms round trip
# could never finish the HTTP/2 handshake.
_LOCAL_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 2000),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


class GcpSecretManagerBackend:
    """Reads secret versions from Google Cloud Secret Manager.

    References: ``gcp-sm://<project>/<secret>[#field][?version=N]``, ``gcp-sm://<secret>``
    (the backend's project), or the full resource name
    ``gcp-sm://projects/<P>/secrets/<S>[/versions/<V>]``. The default version is ``latest``;
    ``Fetched.version`` is the version number the service resolved it to, so a new version
    is seen as a rotation.

    The project of a short reference is ``project``, else ``GOOGLE_CLOUD_PROJECT`` (or
    ``GCLOUD_PROJECT``), else the project of the Application Default Credentials.

    Give at most one of ``client`` (used as is, never closed here), ``transport`` (a
    transport instance, or a name such as ``"rest"``) and ``endpoint``. ``endpoint`` is an
    API host (``secretmanager.europe-west1.rep.googleapis.com``, TLS with credentials), or
    ``http://host:port`` for a local emulator: plaintext, and no credentials are sent.

    Nothing touches the network or Application Default Credentials until the first fetch.
    Each fetch takes at most ``timeout`` seconds, retrying UNAVAILABLE for at most
    ``retry_for`` of them; the store then serves the last good value and backs off.
    All calls share one gRPC channel (HTTP/2 multiplexes them). When the backend builds that
    channel itself without looking up Application Default Credentials (an emulator endpoint,
    or ``credentials=`` given), gRPC enforces ``timeout`` as a total deadline, so a store
    whose deadline is at least ``timeout`` calls it on the reader's thread.
    """

    scheme = SCHEME
    #: The most calls in flight at once (the store adapts below it); one channel carries them all.
    concurrency = 64
    #: Set per instance: ``timeout`` when gRPC's deadline bounds the whole call (see above).
    enforced_deadline: float | None = None
    #: The query options a reference may carry; the store refuses others before asking the service.
    options = _OPTIONS
    #: The shape of each option's value, checked before any call (see ``secretkit._options``).
    option_shapes = _SHAPES
    #: What ``secretkit doctor`` reports as this backend's configuration.
    settings = (
        Setting("GOOGLE_CLOUD_PROJECT", shown=True),
        Setting("GCLOUD_PROJECT", shown=True),
        Setting("GOOGLE_APPLICATION_CREDENTIALS", shown=True),
    )

    @classmethod
    def reachability(cls, env: Mapping[str, str], refs: Sequence[SecretRef]) -> Probe:
        """The service's global endpoint (a regional or emulator ``endpoint=`` is the caller's)."""
        return Probe(url="https://secretmanager.googleapis.com/")

    def __init__(
        self,
        project: str | None = None,
        credentials: Credentials | None = None,
        client: SecretManagerServiceClient | None = None,
        transport: SecretManagerServiceTransport | str | None = None,
        endpoint: str | None = None,
        *,
        timeout: float = 5.0,
        retry_for: float = 1.0,
    ) -> None:
        try:
            import google.api_core.exceptions as google_exceptions
            import google.api_core.retry as google_retry
            import google.cloud.secretmanager_v1  # noqa: F401 - fail here, not on the first fetch
            from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
                SecretManagerServiceTransport,
            )
        except ImportError as exc:
            raise MissingDependency(SCHEME, "google-cloud-secret-manager", "gcp") from exc
        given = [n for n, v in (("client", client), ("transport", transport), ("endpoint", endpoint)) if v]
        if len(given) > 1:
            raise ConfigurationError(
                f"the {SCHEME} backend takes one of client=, transport= and endpoint=, not "
                f"{' and '.join(given)}: configure the endpoint on the client or transport you pass"
            )
        ready = client is not None or isinstance(transport, SecretManagerServiceTransport)
        if credentials is not None and ready:
            raise ConfigurationError(
                f"the {SCHEME} backend was given credentials= and a ready {given[0]}: "
                f"give the credentials to the {given[0]} instead"
            )
        if timeout <= 0 or retry_for < 0:
            raise ConfigurationError(f"the {SCHEME} backend needs timeout > 0 and retry_for >= 0")
        self._errors = google_exceptions
        self._crc32c = _crc32c_function()
        self.project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
        # Where a short reference's project comes from, for errors to say (None: the ADC's).
        self._project_from = "project=" if project else _first_set("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT")
        self.endpoint = endpoint
        self.timeout = timeout
        # The SDK's default retries UNAVAILABLE for 60 s: a reader would wait that long on
        # an outage. Retry briefly for a blip; the store's backoff and stale-if-error do the rest.
        self._retry = google_retry.Retry(
            initial=0.05,
            maximum=0.5,
            multiplier=2.0,
            predicate=google_retry.if_exception_type(google_exceptions.ServiceUnavailable),
            timeout=min(retry_for, timeout),
        )
        self._credentials = credentials
        self._transport = transport
        self._client = client
        # A client or transport instance passed in belongs to the caller: close() leaves it open.
        self._owns_client = not ready
        self._adc_project: str | None = None
        self._lock = threading.Lock()
        # Finding ADC may ask the metadata server with timeouts of its own, and a transport
        # named or given may be REST: only a channel built here from what was given is timely.
        builds_grpc = client is None and transport in (None, "grpc")
        if builds_grpc and (credentials is not None or (endpoint or "").startswith("http://")):
            self.enforced_deadline = timeout
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"GcpSecretManagerBackend(project={self.project!r}, endpoint={self.endpoint!r})"

    # -- the protocol ---------------------------------------------------------------------

    def fetch(self, ref: SecretRef) -> Fetched:
        name, secret_name = self._version_name(ref)
        client = self._get_client()
        try:
            response = client.access_secret_version(
                request={"name": name}, retry=self._retry, timeout=self.timeout
            )
        except self._errors.GoogleAPIError as exc:
            err = self._map_error(exc, ref, name, secret_name)
            raise noted(err, self._fell_back_on(ref, err)) from exc
        # Reading through proto-plus wrappers costs more than the checksum: use the protobuf message.
        message = type(response).pb(response)
        payload = message.payload
        data: bytes = payload.data
        if payload.HasField("data_crc32c") and payload.data_crc32c != self._crc32c(data):
            resolved = _last_segment(message.name) or name
            # The corrupt bytes would otherwise sit in this frame's locals for any
            # traceback-with-locals to print.
            del response, message, payload, data
            err = BackendUnavailable(
                f"secret {ref.path!r}: the {SCHEME} backend received version {resolved} of "
                f"{secret_name} with a checksum (data_crc32c) that does not match its payload; "
                "the value was discarded"
            )
            err.backend = SCHEME
            raise err
        value: str | bytes
        try:
            value = data.decode("utf-8")
        except UnicodeDecodeError:
            value = data
        resolved_name: str = message.name
        return Fetched(value, version=_last_segment(resolved_name), metadata={"name": resolved_name})

    def close(self) -> None:
        """Close the gRPC channel this backend opened (a client passed in is left open)."""
        with self._lock:
            if not self._owns_client:
                return
            client, self._client = self._client, None
        if client is not None:
            client.transport.close()  # type: ignore[no-untyped-call]

    def _after_fork(self) -> None:
        # gRPC channels do not survive fork, and the lock may be held by a parent thread that
        # does not exist here: a channel this backend opened is rebuilt on first use.
        self._lock = threading.Lock()
        if self._owns_client:
            self._client = None

    # -- helpers -------------------------------------------------------------------------

    def _get_client(self) -> SecretManagerServiceClient:
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                self._client = self._build_client()
            return self._client

    def _build_client(self) -> SecretManagerServiceClient:
        from google.cloud.secretmanager_v1 import SecretManagerServiceClient

        endpoint = self.endpoint
        if endpoint is not None and endpoint.startswith("http://"):
            import grpc
            from google.cloud.secretmanager_v1.services.secret_manager_service.transports import (
                SecretManagerServiceGrpcTransport,
            )

            channel = grpc.insecure_channel(
                endpoint[len("http://") :].rstrip("/"), options=_LOCAL_CHANNEL_OPTIONS
            )
            return SecretManagerServiceClient(transport=SecretManagerServiceGrpcTransport(channel=channel))
        credentials = self._credentials
        if credentials is None and self._owns_client:
            credentials = self._default_credentials()
        options: dict[str, Any] = {}
        if endpoint is not None:
            options["api_endpoint"] = endpoint.removeprefix("https://").rstrip("/")
        return SecretManagerServiceClient(
            credentials=credentials, transport=self._transport, client_options=options or None
        )

    def _default_credentials(self) -> Credentials:
        # Looked up here rather than left to the client so the ADC project is known too,
        # for references that name no project.
        import google.auth
        import google.auth.exceptions

        try:
            credentials, project = google.auth.default(
                default_scopes=["https://www.googleapis.com/auth/cloud-platform"]
            )
        except google.auth.exceptions.DefaultCredentialsError as exc:
            raise ConfigurationError(
                f"the {SCHEME} backend found no Google credentials: {exc} "
                "Run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS, "
                "attach a service account, or pass credentials= to GcpSecretManagerBackend"
            ) from exc
        self._adc_project = project
        return credentials

    def _version_name(self, ref: SecretRef) -> tuple[str, str]:
        """``projects/P/secrets/S/versions/V`` for ``ref``, and the secret's own name."""
        check_options(self, ref)
        option = ref.options.get("version")
        path = ref.path
        full = _FULL_NAME.fullmatch(path) if path.startswith("projects/") else None
        if full is not None:
            project, secret_id = full["project"], full["secret"]
            location, version = full["location"], full["version"]
            if version is not None and option is not None and option != version:
                raise InvalidReference(
                    f"{where(ref)}: the name pins version {version} and ?version= asks for another; "
                    "give the version once"
                )
            version = version or option
        else:
            parts = path.split("/")
            if len(parts) > 2 or not all(parts):
                raise InvalidReference(
                    f"{SCHEME}://{path} is not a Secret Manager secret: use {SCHEME}://<project>/<secret>, "
                    f"{SCHEME}://<secret> or {SCHEME}://projects/<project>/secrets/<secret>[/versions/<v>]"
                )
            location, version = None, option
            if len(parts) == 2:
                project, secret_id = parts
            else:
                secret_id = parts[0]
                project = self._default_project(ref)
        if not _SECRET_ID.fullmatch(secret_id):
            # It cannot exist in Secret Manager; not-found lets a chain go on to its next backend.
            raise SecretNotFound(
                ref.path,
                detail=f"{secret_id!r} is not a Secret Manager secret id "
                "(letters, digits, '-' and '_', at most 255)",
            )
        version = version or "latest"
        if not _VERSION.fullmatch(version):
            # Only a version in the path gets here (?version= was checked with the other options).
            raise InvalidReference(
                f"{where(ref)}: the version in the name is not a version number, 'latest' or an alias"
            )
        parent = f"projects/{project}" + (f"/locations/{location}" if location else "")
        secret_name = f"{parent}/secrets/{secret_id}"
        return f"{secret_name}/versions/{version}", secret_name

    def _default_project(self, ref: SecretRef) -> str:
        if self.project:
            return self.project
        # Building the client looks up Application Default Credentials, and their project.
        self._get_client()
        if self._adc_project:
            return self._adc_project
        raise ConfigurationError(
            f"{SCHEME}://{ref.path} names no project and none is configured: write "
            f"{SCHEME}://<project>/{ref.path}, pass GcpSecretManagerBackend(project=...), "
            "or set GOOGLE_CLOUD_PROJECT"
        )

    def _fell_back_on(self, ref: SecretRef, err: SecretkitError) -> str:
        """What an error about ``ref`` adds: the project and endpoint that nobody named for it."""
        notes: list[str] = []
        if "/" not in ref.path:  # a short reference: the backend's project
            if self._project_from is not None:
                notes.append(
                    f"the reference names no project, so {self.project} from {self._project_from} was used"
                )
            elif self._adc_project:
                notes.append(
                    f"the reference names no project and GOOGLE_CLOUD_PROJECT is not set, so the project "
                    f"{self._adc_project} of the Application Default Credentials was used"
                )
        if isinstance(err, BackendUnavailable) and self.endpoint is None and self._owns_client:
            notes.append("endpoint= was not given, so Secret Manager's global endpoint was used")
        return "; ".join(notes)

    def _map_error(self, exc: Exception, ref: SecretRef, name: str, secret_name: str) -> SecretkitError:
        errors = self._errors
        message = getattr(exc, "message", None) or str(exc)
        if isinstance(exc, errors.NotFound):
            return SecretNotFound(ref.path, detail=f"Secret Manager has no {name} ({message})")
        if isinstance(exc, errors.FailedPrecondition):
            state = next((s for s in ("DESTROYED", "DISABLED") if s in message), None)
            if state is not None:
                found = _VERSION_IN_MESSAGE.search(message)
                version = found.group(1) if found else _last_segment(name)
                hint = (
                    "a destroyed version cannot come back: add a new version or pin another"
                    if state == "DESTROYED"
                    else "enable it, or pin ?version= to an enabled version"
                )
                detail = f"version {version} of {secret_name} is {state}; {hint}"
                if state == "DISABLED":
                    # A disabled version still exists: refused, as Key Vault refuses a disabled
                    # secret, so a chain never falls through to an older value elsewhere.
                    denied = AccessDenied(f"secret {ref.path!r}: {detail}")
                    denied.backend = SCHEME
                    return denied
                return SecretNotFound(ref.path, detail=detail)
        if isinstance(exc, errors.PermissionDenied | errors.Unauthenticated):
            what = (
                "was refused access to"
                if isinstance(exc, errors.PermissionDenied)
                else "could not authenticate to read"
            )
            err: SecretkitError = AccessDenied(
                f"secret {ref.path!r}: the {SCHEME} backend {what} {name}; grant the caller "
                f"{ROLE} on the secret or its project and check the credentials in use "
                f"(Secret Manager said: {message})"
            )
        elif isinstance(exc, errors.InvalidArgument):
            err = InvalidReference(f"secret {ref.path!r}: Secret Manager rejected {name}: {message}")
        elif isinstance(exc, errors.TooManyRequests):  # RESOURCE_EXHAUSTED: a quota, or load
            err = Throttled(
                f"secret {ref.path!r}: Secret Manager refused to read {name} for load or quota "
                f"({message}); secretkit sends fewer requests at once until it recovers",
                retry_after=_retry_delay(exc),
                status=429,
            )
        else:
            cause = exc.cause if isinstance(exc, errors.RetryError) and exc.cause is not None else exc
            code = getattr(cause, "grpc_status_code", None)
            status = getattr(code, "name", None) or type(cause).__name__
            cause_message = getattr(cause, "message", None) or str(cause)
            err = BackendUnavailable(
                f"secret {ref.path!r}: the {SCHEME} backend could not read {name} "
                f"({status}: {cause_message}); "
                "check that Secret Manager is reachable"
            )
        err.backend = SCHEME
        return err


def _retry_delay(exc: Exception) -> float | None:
    """The wait a ``google.rpc.RetryInfo`` in the error's details asks for, seconds."""
    for detail in getattr(exc, "details", None) or ():
        delay = getattr(detail, "retry_delay", None)
        if delay is not None:
            return retry_after(getattr(delay, "seconds", 0) + getattr(delay, "nanos", 0) / 1e9)
    return None


def _last_segment(name: str) -> str | None:
    tail = name.rsplit("/", 1)[-1] if "/versions/" in name else ""
    return tail or None


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_CRC_TABLE = _make_table()


def _crc32c_python(data: bytes) -> int:
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _crc32c_function() -> Callable[[bytes], int]:
    """CRC-32C: google-crc32c's C code when it is installed, else a table in Python."""
    try:
        import google_crc32c  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return _crc32c_python
    return google_crc32c.value  # type: ignore[no-any-return]


_LIVE: weakref.WeakSet[GcpSecretManagerBackend] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for backend in list(_LIVE):
        backend._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _first_set(*names: str) -> str | None:
    return next((name for name in names if os.environ.get(name)), None)
