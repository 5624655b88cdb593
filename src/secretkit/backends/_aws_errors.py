"""An AWS backend's boto3 call: its failures mapped to our errors, its response bodies kept out of logs."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from .._errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    InvalidReference,
    SecretkitError,
    SecretNotFound,
)
from .._refs import SecretRef
from .._throttled import Throttled
from ._defaulted import aws_endpoint_note, noted

__all__ = [
    "ErrorContext",
    "batch_denied",
    "call",
    "each_unavailable",
    "install_log_filter",
    "map_client_error",
    "map_error",
]

T = TypeVar("T")

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


def install_log_filter() -> None:
    global _filter_installed
    with _filter_lock:
        if not _filter_installed:
            logging.getLogger("botocore.parsers").addFilter(_DropOurResponseBodies())
            _filter_installed = True


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
