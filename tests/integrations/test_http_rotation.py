"""httpx and requests auths keep every call succeeding while an API rotates its accepted key.

The key lives in Secrets Manager (moto) and rotates the way a rotation Lambda does it: a new
``AWSPENDING`` version, then the API switches to it (from then on only the new key works),
then ``AWSCURRENT`` moves. Workers call the API all along; no call fails, and no call is
sent more than twice (the first try and one resend).
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

import httpx
import pytest
import requests

from integrations.key_server import KeyServer
from integrations.workload import Workload
from secretkit import SecretStore
from secretkit.integrations.httpx import SecretAuth as HttpxAuth
from secretkit.integrations.requests import SecretAuth as RequestsAuth

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("aws_env")]

ROTATIONS = 3
# The key server is plain http on loopback, which cannot prove who it is: the auths opt in to
# offering it the pending key, which the window between the API's switch and the stage move needs.
UNVERIFIED_OK = {"offer_pending_to_unverified_server": True}


class KeyRotation:
    """Rotates the API key held in secret ``name`` and accepted by ``api``, one step at a time."""

    def __init__(self, sm: Any, api: KeyServer, name: str, wrap: Any = str) -> None:
        self.sm, self.api, self.name, self.wrap = sm, api, name, wrap
        self.n = 0

    def steps(self) -> list[Any]:
        token = uuid.uuid4().hex
        self.n += 1
        key = f"api-key-{self.n}-{uuid.uuid4().hex[:8]}"

        def create() -> None:
            self.sm.put_secret_value(
                SecretId=self.name,
                ClientRequestToken=token,
                SecretString=self.wrap(key),
                VersionStages=["AWSPENDING"],
            )

        def finish() -> None:
            versions = self.sm.describe_secret(SecretId=self.name)["VersionIdsToStages"]
            current = next(v for v, stages in versions.items() if "AWSCURRENT" in stages)
            self.sm.update_secret_version_stage(
                SecretId=self.name,
                VersionStage="AWSCURRENT",
                MoveToVersionId=token,
                RemoveFromVersionId=current,
            )

        return [create, lambda: self.api.accept(key), finish]


def new_key_secret(sm: Any, wrap: Any = str) -> tuple[str, str]:
    name = f"api/key-{uuid.uuid4().hex[:10]}"
    key = "api-key-0-" + uuid.uuid4().hex[:8]
    sm.create_secret(Name=name, SecretString=wrap(key))
    return name, key


def caller(send: Any) -> Any:
    def call() -> object:
        response = send({"X-Call-Id": uuid.uuid4().hex})
        if response.status_code != 200:
            raise RuntimeError(f"HTTP {response.status_code}")
        return response

    return call


@pytest.mark.parametrize("kind", ["bearer", "header", "basic"])
def test_sync_clients_make_no_failed_call_through_rotations(kind: str, sm_admin: Any) -> None:
    """httpx.Client and requests.Session with SecretAuth: 0 failed calls, at most one resend each."""
    wrap: Any = (lambda k: json.dumps({"username": "svc", "password": k})) if kind == "basic" else str
    name, key = new_key_secret(sm_admin, wrap)
    ref = f"aws-sm://{name}"
    with SecretStore([], ttl=2.0) as store, KeyServer(key) as api:
        make = {
            "bearer": lambda cls: cls(ref, store=store, **UNVERIFIED_OK),
            "header": lambda cls: cls.header(ref, "X-API-Key", store=store, **UNVERIFIED_OK),
            "basic": lambda cls: cls.basic(ref, store=store, **UNVERIFIED_OK),
        }[kind]
        httpx_auth, requests_auth = make(HttpxAuth), make(RequestsAuth)
        local = threading.local()

        def via_requests(headers: dict[str, str]) -> Any:
            if not hasattr(local, "session"):
                local.session = requests.Session()
            return local.session.get(api.url, headers=headers, auth=requests_auth, timeout=10)

        with httpx.Client(auth=httpx_auth, timeout=10) as client:
            targets = {
                "httpx": (caller(lambda h: client.post(api.url, headers=h, content=b"payload")), 4),
                "requests": (caller(via_requests), 4),
            }
            rotation = KeyRotation(sm_admin, api, name, wrap)
            with Workload(targets) as load:
                load.wait(5, "httpx")
                for _ in range(ROTATIONS):
                    for step in rotation.steps():
                        step()
                        load.wait(3, "httpx")
                        load.wait(3, "requests")

    assert (load.failed("httpx"), load.failed("requests")) == (0, 0), (
        load.errors("httpx"),
        load.errors("requests"),
    )
    assert api.refused > 0, "the rotations never refused a stale key: the test proved nothing"
    assert max(api.seen.values()) <= 2
    assert httpx_auth.resent + requests_auth.resent == api.refused


async def test_async_client_follows_a_rotation(sm_admin: Any) -> None:
    """httpx.AsyncClient with SecretAuth: every call succeeds across a rotation, resending at most once."""
    name, key = new_key_secret(sm_admin)
    with SecretStore([], ttl=2.0) as store, KeyServer(key) as api:
        auth = HttpxAuth(f"aws-sm://{name}", store=store, **UNVERIFIED_OK)
        rotation = KeyRotation(sm_admin, api, name)
        async with httpx.AsyncClient(auth=auth, timeout=10) as client:

            async def calls(n: int) -> list[int]:
                responses = await asyncio.gather(
                    *(client.get(api.url, headers={"X-Call-Id": uuid.uuid4().hex}) for _ in range(n))
                )
                return [r.status_code for r in responses]

            statuses = await calls(4)
            for _ in range(2):
                for step in rotation.steps():
                    await asyncio.to_thread(step)
                    statuses += await calls(4)

    assert set(statuses) == {200}
    assert api.refused > 0
    assert max(api.seen.values()) <= 2


def test_no_resend_when_the_secret_did_not_change(sm_admin: Any) -> None:
    """A 401 for a key the store still holds is returned as is: no resend, no loop."""
    name, _ = new_key_secret(sm_admin)
    with SecretStore([], ttl=60.0) as store, KeyServer("a-key-nobody-has") as api:
        auth = HttpxAuth(f"aws-sm://{name}", store=store)
        with httpx.Client(auth=auth) as client:
            response = client.get(api.url, headers={"X-Call-Id": "one"})
        requests_response = requests.get(
            api.url,
            headers={"X-Call-Id": "two"},
            auth=RequestsAuth(f"aws-sm://{name}", store=store),
            timeout=10,
        )
    assert (response.status_code, requests_response.status_code) == (401, 401)
    assert api.seen == {"one": 1, "two": 1}
    assert auth.resent == 0


def test_auth_repr_shows_no_value(sm_admin: Any) -> None:
    """An auth's repr and its header object's repr name the secret, never its value."""
    name, key = new_key_secret(sm_admin)
    with SecretStore([], ttl=60.0) as store:
        auth = HttpxAuth(f"aws-sm://{name}", store=store)
        shown = (
            repr(auth) + repr(auth.credential.current()) + repr(RequestsAuth(f"aws-sm://{name}", store=store))
        )
    assert key not in shown
    assert name in shown
