"""The login data of Vault's ``aws`` auth method (iam type): a signed ``sts:GetCallerIdentity`` request.

The application never sends AWS credentials to Vault: it signs a GetCallerIdentity request
with them (SigV4, so the signature is good for that one request, for about 15 minutes) and
hands Vault the request; Vault sends it to STS and trusts the identity STS answers with.
``X-Vault-AWS-IAM-Server-ID`` is one of the signed headers, so a payload made for one Vault
cannot be replayed to another that requires its own server id.
"""

from __future__ import annotations

import base64
import json
from typing import Any

__all__ = ["BODY", "GLOBAL_STS", "SERVER_ID_HEADER", "signed_login_data", "sts_target"]

GLOBAL_STS = "https://sts.amazonaws.com/"
BODY = "Action=GetCallerIdentity&Version=2011-06-15"
SERVER_ID_HEADER = "X-Vault-AWS-IAM-Server-ID"
_CONTENT_TYPE = "application/x-www-form-urlencoded; charset=utf-8"


def sts_target(region: str | None, endpoint: str | None) -> tuple[str, str]:
    """``(url, signing region)``: the global endpoint as Vault expects by default, or a regional one.

    A regional or private endpoint must match the ``sts_endpoint`` / ``sts_region`` the
    Vault role's mount is configured with.
    """
    if endpoint:
        return endpoint, region or "us-east-1"
    if region:
        return f"https://sts.{region}.amazonaws.com/", region
    return GLOBAL_STS, "us-east-1"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def signed_login_data(credentials: Any, *, url: str, region: str, server_id: str | None) -> dict[str, str]:
    """The four ``iam_*`` fields of the login, signed with ``credentials`` (botocore's, frozen)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest

    headers = {"Content-Type": _CONTENT_TYPE}
    if server_id:
        headers[SERVER_ID_HEADER] = server_id
    request = AWSRequest(method="POST", url=url, data=BODY, headers=headers)
    SigV4Auth(credentials, "sts", region).add_auth(request)
    # Vault decodes the headers as a JSON map of name -> list of values, as Go's http.Header is.
    signed = {
        str(name): [value.decode() if isinstance(value, bytes) else str(value)]
        for name, value in request.headers.items()
    }
    return {
        "iam_http_request_method": "POST",
        "iam_request_url": _b64(url),
        "iam_request_body": _b64(BODY),
        "iam_request_headers": _b64(json.dumps(signed, separators=(",", ":"))),
    }
