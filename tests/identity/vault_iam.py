"""What Vault's aws auth method does with a login payload, done by the test: replay it to STS.

OpenBao ships no ``aws`` auth method and HashiCorp's Vault binary cannot be installed here,
so the tests check the payload the way the server does: decode it, refuse a URL other than
the configured STS endpoint and a server-id header that is missing, wrong or not signed,
then send the request to STS (moto, with signatures checked) and read the identity back.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass

import requests

SERVER_ID = "x-vault-aws-iam-server-id"


@dataclass(frozen=True)
class Verdict:
    status: int
    arn: str | None
    text: str


def replay(payload: dict[str, str], *, sts_endpoint: str, server_id: str | None = None) -> Verdict:
    """Vault's side of the login: checks, then the signed request sent to ``sts_endpoint``."""
    url = base64.b64decode(payload["iam_request_url"]).decode()
    body = base64.b64decode(payload["iam_request_body"]).decode()
    headers = {
        k: v[0] if isinstance(v, list) else v
        for k, v in json.loads(base64.b64decode(payload["iam_request_headers"])).items()
    }
    if url != sts_endpoint:
        return Verdict(400, None, "iam_request_url is not the configured STS endpoint")
    if body != "Action=GetCallerIdentity&Version=2011-06-15":
        return Verdict(400, None, "not a GetCallerIdentity request")
    if server_id is not None:
        given = {k.lower(): v for k, v in headers.items()}.get(SERVER_ID)
        signed = re.search(r"SignedHeaders=([^,]+)", headers.get("Authorization", ""))
        if given != server_id or signed is None or SERVER_ID not in signed.group(1).split(";"):
            return Verdict(400, None, "missing, wrong or unsigned server id header")
    response = requests.request(
        payload["iam_http_request_method"], url, data=body, headers=headers, timeout=10
    )
    found = re.search(r"<Arn>([^<]+)</Arn>", response.text)
    return Verdict(response.status_code, found.group(1) if found else None, response.text[:300])
