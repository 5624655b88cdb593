"""What the aws-sm and aws-ssm backends share: boto3 clients per region, botocore errors mapped to ours."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

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
from .._options import Shape, where
from .._refs import SecretRef
from .._throttled import Throttled
from ._defaulted import aws_endpoint_note, noted

if TYPE_CHECKING:
    from botocore.config import Config

__all__ = [
    "AwsBackendBase",
    "Clients",
    "ErrorContext",
    "arn_region",
    "batch_denied",
    "call",
    "chunks",
    "each_unavailable",
    "group_by_region",
    "import_boto3",
    "map_client_error",
    "map_error",
    "pick_region",
    "settings",
]

T = TypeVar("T")

# Connection and read timeouts, and the retries botocore makes before we see an error.
# botocore's defaults (60 s timeouts, 5 legacy attempts) can hold a fetch for minutes
# against an endpoint that drops packets. The store gives every fetch a total deadline
# (5 s by default) and stops waiting there; these keep botocore's own worst case near it
# (one retry for a blip: 2 attempts of at most 2 s connect + 3 s per read), so an abandoned
# attempt does not linger in its worker thread long after the caller has moved on.
DEFAULT_CONFIG: dict[str, Any] = {
    "connect_timeout": 2,
    "read_timeout": 3,
    "retries": {"mode": "standard", "total_max_attempts": 2},
    # botocore keeps 10 connections: calls in flight past that open one each and drop it.
    "max_pool_connections": 64,
}

#: Batch calls (of up to 20 secrets or 10 parameters each) made at once by one fetch_many.
MAX_PARALLEL_CHUNKS = 8

NOT_FOUND = frozenset({"ResourceNotFoundException", "ParameterNotFound", "ParameterVersionNotFound"})
DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "ExpiredToken",
        "ExpiredTokenException",
        "IncompleteSignature",
        "InvalidClientTokenId",
        "InvalidSignatureException",
        "MissingAuthenticationToken",
        "NotAuthorized",
        "SignatureDoesNotMatch",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
    }
)
KMS = frozenset(
    {
        "DecryptionFailure",
        "InvalidKeyId",
        "KMSAccessDeniedException",
        "KMSDisabledException",
        "KMSInvalidKeyUsageException",
        "KMSInvalidStateException",
        "KMSNotFoundException",
        "KMSOptInRequired",
    }
)
INVALID = frozenset({"InvalidParameterException", "ValidationException", "InvalidRequestException"})
THROTTLED = frozenset(
    {
        "RequestLimitExceeded",
        "ThrottledException",
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
    }
)

# botocore logs every response body at DEBUG ("Response body: b'{...SecretString...}'").
# An application that turns on DEBUG logging must not get its secrets in its logs, so
# while one of our calls runs in a thread, botocore's parser records from that thread
# are dropped. Other botocore users in the process are left alone.
_quiet = threading.local()
_filter_lock = threading.Lock()
_filter_installed = False


class _DropOurResponseBodies(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_quiet, "on", False)


def _install_log_filter() -> None:
    global _filter_installed
    with _filter_lock:
        if not _filter_installed:
            logging.getLogger("botocore.parsers").addFilter(_DropOurResponseBodies())
            _filter_installed = True


def import_boto3(scheme: str) -> Any:
    """boto3, or :class:`MissingDependency` naming the extra that installs it."""
    try:
        import boto3
        import botocore.config  # noqa: F401 - fail here, not on first fetch
    except ImportError as exc:
        raise MissingDependency(scheme, "boto3", "aws") from exc
    _install_log_filter()
    return boto3


class ErrorContext:
    """What an error message needs to say: which backend, which secret, which permission."""

    __slots__ = ("permission", "scheme", "secret", "service")

    def __init__(self, scheme: str, service: str, secret: str, permission: str) -> None:
        self.scheme = scheme
        self.service = service
        self.secret = secret
        self.permission = permission


def call(ctx: ErrorContext, fn: Callable[..., T], /, **kwargs: Any) -> T:
    """Call a boto3 client method, mapping every failure to one of our errors (cause chained)."""
    _quiet.on = True
    try:
        return fn(**kwargs)
    except Exception as exc:
        from botocore.parsers import ResponseParserError

        if not isinstance(exc, ResponseParserError):
            # Which endpoint and region it fell back on, when nobody chose them.
            raise noted(map_error(exc, ctx), aws_endpoint_note(getattr(fn, "__self__", None))) from exc
    finally:
        _quiet.on = False
    # Raised outside the ``except`` on purpose: a parser error quotes the raw response body,
    # which may hold the secret, so it must not ride along as __cause__ or __context__.
    err = BackendUnavailable(
        f"secret {ctx.secret!r}: {ctx.service} sent a response the {ctx.scheme} backend could not "
        "parse; check the endpoint URL points to AWS"
    )
    err.backend = ctx.scheme
    raise err


def map_error(exc: BaseException, ctx: ErrorContext) -> SecretkitError:
    """Our error for a boto3/botocore exception (the caller chains ``exc`` as the cause)."""
    from botocore import exceptions as bx

    err: SecretkitError
    if isinstance(exc, SecretkitError):
        return exc
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return map_client_error(str(error.get("Code", "")), str(error.get("Message", "")), status, ctx)
    if isinstance(exc, bx.ParamValidationError):
        # botocore's text quotes the parameter's value, which came from the reference's options.
        err = InvalidReference(
            f"secret {ctx.secret!r}: the {ctx.scheme} backend cannot ask {ctx.service} for it: botocore "
            "refused a parameter built from the reference (ParamValidationError); fix the reference"
        )
    elif isinstance(exc, bx.NoRegionError):
        err = ConfigurationError(
            f"secret {ctx.secret!r}: the {ctx.scheme} backend has no AWS region; set AWS_DEFAULT_REGION, "
            f"pass region=... to the backend, or add ?region=... to the reference"
        )
    elif isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError | bx.CredentialRetrievalError):
        # Unavailable rather than denied: on EC2/ECS a credential endpoint that hiccups raises
        # these too, and cached values should keep being served through it.
        err = BackendUnavailable(
            f"secret {ctx.secret!r}: the {ctx.scheme} backend found no usable AWS credentials "
            f"({type(exc).__name__}); set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE, "
            "or run with an IAM role"
        )
    elif isinstance(exc, bx.HTTPClientError | bx.ConnectionError):
        err = BackendUnavailable(
            f"secret {ctx.secret!r}: the {ctx.scheme} backend could not reach {ctx.service} "
            f"({type(exc).__name__}); check the network "
            "and the endpoint URL"
        )
    else:
        err = BackendUnavailable(
            f"secret {ctx.secret!r}: the {ctx.scheme} backend failed ({type(exc).__name__}: "
            f"{_short(str(exc))})"
        )
    err.backend = ctx.scheme
    return err


def map_client_error(code: str, message: str, status: int | None, ctx: ErrorContext) -> SecretkitError:
    """Our error for an AWS error code (also used for the per-secret errors of a batch call)."""
    err: SecretkitError
    said = f" ({code}: {_short(message)})" if message else f" ({code})"
    if code in NOT_FOUND:
        return SecretNotFound(ctx.secret, detail=_short(message) or None)
    if code == "InvalidRequestException" and "delet" in message.lower():
        return SecretNotFound(ctx.secret, detail="it is scheduled for deletion")
    if code in KMS:
        err = AccessDenied(
            f"secret {ctx.secret!r}: {ctx.service} could not decrypt it with its KMS key{said}; "
            "grant kms:Decrypt on that key to the caller's IAM identity (the aws backends' docs list "
            "the minimal policy)"
        )
    elif code in DENIED or status == 403:
        err = AccessDenied(
            f"secret {ctx.secret!r}: {ctx.service} refused access to the {ctx.scheme} backend{said}; "
            f"grant {ctx.permission} on it to the caller's IAM identity, or check its credentials"
        )
    elif code in INVALID:
        err = InvalidReference(
            f"secret {ctx.secret!r}: {ctx.service} rejected the request{said}; fix the reference"
        )
    elif code in THROTTLED:
        # The store's limiter reads this: fewer calls at once to this backend until it recovers.
        err = Throttled(
            f"secret {ctx.secret!r}: {ctx.service} throttled the {ctx.scheme} backend{said}", status=status
        )
    else:
        err = BackendUnavailable(f"secret {ctx.secret!r}: {ctx.service} failed{said}")
    err.backend = ctx.scheme
    return err


def batch_denied(exc: BaseException, *actions: str) -> bool:
    """True if a batch call was refused because the caller may not use one of the batch ``actions``.

    Refusals of single secrets come back inside a batch response; a refusal of the whole
    call that names the batch action means the IAM policy grants single reads only.
    """
    if not isinstance(exc, AccessDenied):
        return False
    # AWS's own message, not ours: ours names the batch permission in every refusal.
    response = getattr(exc.__cause__, "response", None)
    if not isinstance(response, dict):
        return False
    said = str(response.get("Error", {}).get("Message", ""))
    return any(action in said for action in actions)


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def arn_region(path: str, service: str) -> str | None:
    """The region named in an ARN of ``service`` (``arn:aws:secretsmanager:eu-west-1:...``)."""
    if not path.startswith("arn:"):
        return None
    parts = path.split(":", 5)
    if len(parts) == 6 and parts[2] == service and parts[3]:
        return parts[3]
    return None


def pick_region(ref: SecretRef, service: str, scheme: str) -> str | None:
    """``?region=`` or the ARN's region; a reference that says two different regions is refused."""
    option = ref.options.get("region") or None
    in_arn = arn_region(ref.path, service)
    if option and in_arn and option != in_arn:
        raise InvalidReference(
            f"{where(ref)} names a region in ?region= that is not its ARN's ({in_arn!r}); "
            "drop ?region= (the ARN's region is used)"
        )
    return option or in_arn


#: The shape of an AWS region name (us-east-1, us-gov-west-1, eu-isoe-west-1): checked before
#: botocore builds an endpoint from it, which fails as an outage and quotes the value.
REGION = Shape(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}", "an AWS region name, such as eu-west-1")


def settings(endpoint_variable: str) -> tuple[Setting, ...]:
    """The variables and files boto3 reads, with the one that sets this service's endpoint."""
    return (
        Setting("AWS_ENDPOINT_URL", shown=True),
        Setting("AWS_REGION", shown=True),
        Setting("AWS_DEFAULT_REGION", shown=True),
        Setting("AWS_PROFILE", shown=True),
        Setting("AWS_ACCESS_KEY_ID"),
        Setting("AWS_SECRET_ACCESS_KEY"),
        Setting("AWS_SESSION_TOKEN"),
        Setting("AWS_WEB_IDENTITY_TOKEN_FILE", shown=True),
        Setting("AWS_ROLE_ARN", shown=True),
        Setting("AWS_CONTAINER_CREDENTIALS_FULL_URI", shown=True),
        Setting("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", shown=True),
        Setting(endpoint_variable, shown=True),
        Setting("~/.aws/", file=True),
    )


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def each_unavailable(
    refs: Sequence[SecretRef], exc: SecretkitError, context: Callable[[str], ErrorContext]
) -> dict[SecretRef, Exception]:
    """One error per secret of a failed batch call, each naming its own secret, same cause."""
    cause = exc.__cause__
    out: dict[SecretRef, Exception] = {}
    for ref in refs:
        ctx = context(ref.path)
        if isinstance(cause, Exception):
            err = map_error(cause, ctx)
            err.__cause__ = cause
        else:
            # No cause to map (an unparsable response is deliberately not chained).
            err = BackendUnavailable(f"secret {ref.path!r}: a batch call to {ctx.service} failed")
            err.backend = ctx.scheme
        out[ref] = err
    return out


class Clients:
    """boto3 clients for one service, one per region, built on first use and shared by threads.

    boto3 clients are thread-safe but sessions are not, so clients are built under a lock.
    A forked child gets clients of its own (the parent's connection pools are not shared).
    """

    def __init__(
        self,
        *,
        scheme: str,
        service: str,
        region: str | None,
        profile: str | None,
        endpoint_url: str | None,
        client: Any,
        config: Config | None,
        endpoints: Mapping[str, str] | None = None,
        role_arn: str | None = None,
        external_id: str | None = None,
    ) -> None:
        boto3 = import_boto3(scheme)
        from botocore.config import Config
        from botocore.exceptions import ProfileNotFound

        self.scheme = scheme
        self.service = service
        self._config = Config(**DEFAULT_CONFIG)
        if config is not None:
            self._config = self._config.merge(config)
        self._endpoint_url = endpoint_url
        # A region's own endpoint (a VPC endpoint in each region of a replicated secret).
        self._endpoints = dict(endpoints or {})
        try:
            self._session = boto3.session.Session(profile_name=profile, region_name=region)
        except ProfileNotFound as exc:
            raise ConfigurationError(
                f"the {scheme} backend was given the AWS profile {profile!r}, which is not in the AWS "
                "config files; fix the name or set AWS_CONFIG_FILE"
            ) from exc
        if role_arn:
            from ._aws_assume import assumed_session

            self._session = assumed_session(
                self._session, role_arn, external_id=external_id, session_name=None, scheme=scheme
            )
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._built: dict[str | None, Any] = {}
        self._given = client
        if client is not None:
            self.default_region: str | None = client.meta.region_name
        else:
            # boto3 reads AWS_DEFAULT_REGION only; Lambda, ECS and many CI systems set AWS_REGION.
            self.default_region = self._session.region_name or os.environ.get("AWS_REGION") or None
            if self.default_region:
                self._build(None)

    def normal(self, region: str | None) -> str | None:
        """``None`` for the default region, so refs in it batch together however they name it."""
        return None if region == self.default_region else region

    def get(self, region: str | None) -> Any:
        """The client for ``region`` (``None``: the default region)."""
        if region is None or region == self.default_region:
            if self._given is not None:
                return self._given
            region = None
        if self._pid != os.getpid():
            self._after_fork()
        client = self._built.get(region)
        if client is None:
            client = self._build(region)
        return client

    def _build(self, region: str | None) -> Any:
        with self._lock:
            client = self._built.get(region)
            if client is None:
                from botocore.exceptions import InvalidRegionError, NoRegionError

                refused: ConfigurationError | None = None
                try:
                    name = region or self.default_region or ""
                    client = self._session.client(
                        self.service,
                        region_name=region or self.default_region,
                        endpoint_url=self._endpoints.get(name, self._endpoint_url),
                        config=self._config,
                    )
                except NoRegionError as exc:
                    raise ConfigurationError(
                        f"the {self.scheme} backend has no AWS region; set AWS_DEFAULT_REGION, pass "
                        "region=... to the backend, or add ?region=... to the reference"
                    ) from exc
                except InvalidRegionError:
                    # A reference's ?region= is shape-checked before this; this one came from the
                    # configuration. botocore's text quotes it.
                    refused = ConfigurationError(
                        f"the {self.scheme} backend was configured with a region that is not an AWS "
                        "region name (from region=..., AWS_DEFAULT_REGION or AWS_REGION); fix it"
                    )
                except ValueError:
                    # Building a client sends nothing, so this is configuration: in practice an
                    # endpoint URL botocore cannot parse, and its "Invalid endpoint: <url>" quotes
                    # the URL, user-info and all.
                    refused = ConfigurationError(
                        f"the {self.scheme} backend's configuration was refused by botocore: most likely "
                        "the endpoint URL is not a valid URL (endpoint_url=... or AWS_ENDPOINT_URL*); fix it"
                    )
                if refused is not None:
                    # Raised outside the except: not even __context__ keeps botocore's text.
                    raise refused
                self._built[region] = client
        return client

    def _after_fork(self) -> None:
        # Replace the lock rather than take it: a parent thread may have held it at fork time.
        self._lock = threading.Lock()
        if self._pid != os.getpid():
            self._built = {}
            self._pid = os.getpid()

    def close(self) -> None:
        """Close the clients built here (a client passed in belongs to its owner)."""
        with self._lock:
            built, self._built = list(self._built.values()), {}
        for client in built:
            close = getattr(client, "close", None)
            if callable(close):
                close()


def group_by_region(
    refs: Sequence[SecretRef],
    eligible: Callable[[SecretRef], bool],
    region_of: Callable[[SecretRef], str | None],
    out: dict[SecretRef, Any],
) -> Mapping[str | None, list[SecretRef]]:
    """Refs a batch call can serve, by region; refs it cannot are left out (fetched one by one)."""
    groups: dict[str | None, list[SecretRef]] = {}
    for ref in dict.fromkeys(refs):
        try:
            if not eligible(ref):
                continue
            region = region_of(ref)
        except SecretkitError as exc:
            out[ref] = exc
            continue
        groups.setdefault(region, []).append(ref)
    return groups


class AwsBackendBase:
    """What the two AWS backends share: clients per region, batching in chunks, closing.

    A subclass sets ``scheme``, ``service``, ``label``, ``batch_size`` and
    ``single_permission``, and writes ``fetch``, ``_batchable``, ``_region_of`` and
    ``_fetch_chunk``.
    """

    scheme: str
    #: The query options a reference may carry; the store refuses others before asking AWS.
    options: frozenset[str]
    service: str
    label: str
    batch_size: int
    single_permission: str
    #: The variable that sets this service's endpoint alone (``AWS_ENDPOINT_URL_SSM``).
    endpoint_variable: str

    def __init__(
        self,
        region: str | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
        *,
        config: Config | None = None,
        endpoints: Mapping[str, str] | None = None,
        role_arn: str | None = None,
        external_id: str | None = None,
    ) -> None:
        self._clients = Clients(
            scheme=self.scheme,
            service=self.service,
            region=region,
            profile=profile,
            endpoint_url=endpoint_url,
            client=client,
            config=config,
            endpoints=endpoints,
            role_arn=role_arn,
            external_id=external_id,
        )
        self._batch_allowed = True

    def __repr__(self) -> str:
        return f"{type(self).__name__}(region={self._clients.default_region!r})"

    @classmethod
    def reachability(cls, env: Mapping[str, str], refs: Sequence[SecretRef]) -> Probe:
        """The service's endpoint: as set, else the default region's; none when only a profile has one."""
        endpoint = env.get(cls.endpoint_variable) or env.get("AWS_ENDPOINT_URL")
        if endpoint:
            setting = cls.endpoint_variable if env.get(cls.endpoint_variable) else "AWS_ENDPOINT_URL"
            return Probe(url=endpoint, setting=setting)
        # The backend's order: boto3's AWS_DEFAULT_REGION, then AWS_REGION (see Clients).
        variable = "AWS_DEFAULT_REGION" if env.get("AWS_DEFAULT_REGION") else "AWS_REGION"
        region = env.get(variable)
        if not region:
            return Probe(note="no AWS_REGION or AWS_ENDPOINT_URL: the region comes from the profile, if any")
        if not REGION.fits(region):
            # Pasted into a host name, "x@evil/" would send the probe elsewhere.
            return Probe(refused=f"{variable} is not a region name such as eu-west-1")
        return Probe(url=f"https://{cls.service}.{region}.amazonaws.com")

    @property
    def region(self) -> str | None:
        """The region used when a reference names none."""
        return self._clients.default_region

    def fetch_many(self, refs: Sequence[SecretRef]) -> Mapping[SecretRef, Any]:
        out: dict[SecretRef, Any] = {}
        if not self._batch_allowed:
            return out
        groups = group_by_region(refs, self._batchable, self._region_of, out)
        jobs = [
            (region, chunk) for region, group in groups.items() for chunk in chunks(group, self.batch_size)
        ]
        if len(jobs) == 1:
            self._fetch_chunk(*jobs[0], out)
            return out
        # Chunks run side by side: 100 secrets cost one round trip rather than five, and the
        # store's deadline covers this whole call. Each chunk writes only its own refs to out.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(len(jobs), MAX_PARALLEL_CHUNKS), "secretkit-aws-batch") as pool:
            for done in [
                pool.submit(self._fetch_allowed_chunk, region, chunk, out) for region, chunk in jobs
            ]:
                done.result()
        return out

    def _fetch_allowed_chunk(
        self, region: str | None, chunk: list[SecretRef], out: dict[SecretRef, Any]
    ) -> None:
        if self._batch_allowed:
            self._fetch_chunk(region, chunk, out)

    def _batchable(self, ref: SecretRef) -> bool:
        raise NotImplementedError

    def _region_of(self, ref: SecretRef) -> str | None:
        raise NotImplementedError

    def _fetch_chunk(self, region: str | None, chunk: list[SecretRef], out: dict[SecretRef, Any]) -> None:
        raise NotImplementedError

    def _context(self, secret: str, permission: str) -> ErrorContext:
        return ErrorContext(self.scheme, self.label, secret, permission)

    def _single_context(self, secret: str) -> ErrorContext:
        return self._context(secret, self.single_permission)

    def close(self) -> None:
        self._clients.close()
