"""A backend's errors name the setting it fell back on, so the app says what only doctor used to."""

from __future__ import annotations

import os
from typing import TypeVar
from urllib.parse import urlsplit

from .._errors import AccessDenied, BackendUnavailable, SecretkitError, SecretNotFound, public_name

__all__ = ["aws_endpoint_note", "noted"]

E = TypeVar("E", bound=BaseException)

# Errors where "which server, project or vault" is the question: not a malformed reference.
_ABOUT_WHERE = (BackendUnavailable, AccessDenied, SecretNotFound)


def noted(err: E, note: str) -> E:
    """``err`` saying ``note`` too (``VAULT_ADDR is not set, so ... was used``); once, and only when
    ``note`` is not empty and the error is an outage, a refusal or an absence."""
    if not note or not isinstance(err, SecretkitError) or not isinstance(err, _ABOUT_WHERE):
        return err
    if isinstance(err, SecretNotFound):
        if note not in (err.detail or ""):
            err.detail = f"{err.detail}; {note}" if err.detail else note
        return err
    if err.args and isinstance(err.args[0], str) and note not in err.args[0]:
        err.args = (f"{err.args[0]}; {note}", *err.args[1:])
    return err


# Hosts of AWS's own endpoints, which botocore picks when no endpoint URL is configured.
_AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


def aws_endpoint_note(client: object) -> str:
    """For a boto3 client that was given no endpoint URL: the AWS endpoint it used, and whence its region.

    Empty when an ``AWS_ENDPOINT_URL*`` variable is set or the endpoint is not AWS's (moto,
    LocalStack, a proxy): then the endpoint was chosen by someone, not fallen back on.
    """
    meta = getattr(client, "meta", None)
    endpoint = str(getattr(meta, "endpoint_url", "") or "")
    region = str(getattr(meta, "region_name", "") or "")
    if not (urlsplit(endpoint).hostname or "").endswith(_AWS_HOSTS):
        return ""
    env = os.environ
    if any(name.startswith("AWS_ENDPOINT_URL") and value for name, value in env.items()):
        return ""
    source = next((name for name in ("AWS_DEFAULT_REGION", "AWS_REGION") if env.get(name) == region), None)
    whence = f"from {source}" if source else "from region=, the reference or the AWS config file"
    return (
        f"AWS_ENDPOINT_URL is not set, so AWS's own endpoint {public_name(endpoint)} was used "
        f"(region {public_name(region)}, {whence})"
    )
