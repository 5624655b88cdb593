"""A FastAPI app whose settings come from secretkit, and keep working while a secret rotates.

Run it from anywhere: ``python examples/fastapi_app.py``. It sets up its own secrets - the
process environment, a throw-away ``.env`` and an in-memory stand-in for AWS Secrets Manager -
then drives the app in-process through httpx's ASGI transport: it calls the API, rotates the
API token in the "vault", and shows the app accept the new token (and refuse the old one)
without a restart. It prints masks and status codes, never a value.

In a deployment the same ``Settings`` class reads the real environment, ``.env`` and AWS::

    uvicorn examples.fastapi_app:create_app --factory
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

import secretkit
from secretkit import LiveSecret
from secretkit.backends import DotenvBackend, EnvBackend, MemoryBackend
from secretkit.pydantic import Ref, SecretkitSettings


class Settings(SecretkitSettings):
    """Every field is resolved through secretkit's store."""

    model_config = SettingsConfigDict(env_prefix="DEMO_")

    # By name: DEMO_API_TOKEN. A live handle: each request sees the current token, so a
    # rotation needs no restart. (Here DEMO_API_TOKEN holds a reference: aws-sm://...)
    api_token: LiveSecret[str]
    # By name, from .env: a snapshot, replaced by settings.refresh() when it rotates.
    database_url: SecretStr
    # By reference: one key of a JSON secret in AWS Secrets Manager.
    signing_key: Annotated[SecretStr, Ref("aws-sm://demo/app#signing_key")]
    # Not secret, but validated from the same sources: int, bool, JSON list.
    port: int = 8000
    debug: bool = False
    allowed_origins: list[str] = Field(default_factory=list)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def require_token(
    settings: Annotated[Settings, Depends(get_settings)],
    authorization: Annotated[str, Header()] = "",
) -> None:
    scheme, _, given = authorization.partition(" ")
    expected = settings.api_token.reveal()  # through the store's cache: the new token once it rotates
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(status_code=401, detail="invalid token")


def health(settings: Annotated[Settings, Depends(get_settings)]) -> dict[str, Any]:
    # mode="json" masks SecretStr fields and secretkit handles: safe to return and to log.
    return {"status": "ok", "settings": settings.model_dump(mode="json")}


def orders() -> dict[str, Any]:
    return {"orders": [{"id": 1, "total": "9.99"}]}


def reload_settings(settings: Annotated[Settings, Depends(get_settings)]) -> dict[str, Any]:
    # Re-reads the secrets behind the snapshot fields; only the ones that rotated are replaced.
    return {"changed": sorted(settings.refresh())}


def create_app(settings: Settings | None = None) -> FastAPI:
    """The application; ``settings`` default to ``Settings()`` from secretkit's default store."""
    secretkit.redact_logs()  # a value revealed through secretkit never reaches a log line
    app = FastAPI(title="secretkit demo")
    app.state.settings = settings if settings is not None else Settings()
    app.get("/health")(health)
    app.get("/orders", dependencies=[Depends(require_token)])(orders)
    app.post("/admin/reload-settings", dependencies=[Depends(require_token)])(reload_settings)
    return app


def show(label: str, response: httpx.Response) -> None:
    body = json.dumps(response.json(), sort_keys=True)
    print(f"{label:<40} -> {response.status_code} {body}")


async def demo(workdir: Path) -> None:
    # What a deployment would provide; the example sets its own so it runs anywhere.
    dotenv = workdir / ".env"
    dotenv.write_text("DEMO_DATABASE_URL=postgresql://app:dotenv-db-pw-4711@db.internal:5432/app\n")
    os.environ["DEMO_API_TOKEN"] = "aws-sm://demo/api-token"  # a reference: secretkit resolves it
    os.environ["DEMO_PORT"] = "8080"
    os.environ["DEMO_ALLOWED_ORIGINS"] = '["https://app.example.com"]'
    # An in-memory stand-in for AWS Secrets Manager, serving the aws-sm:// scheme.
    vault = MemoryBackend(scheme="aws-sm")
    first_token = "tok_first_7c1d9e2f"
    vault.set("demo/api-token", first_token)
    vault.set("demo/app", '{"signing_key": "sign-key-v1-5b6c7d8e"}')

    store = secretkit.configure(
        backends=[EnvBackend(), DotenvBackend(dotenv)],
        reference_backends=[vault],
        ttl=1.0,  # short, so that the demo sees a rotation within a second
        jitter=0.0,
    )
    try:
        settings = Settings()
        app = create_app(settings)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
            show("GET /health", await client.get("/health"))
            auth = {"Authorization": f"Bearer {first_token}"}
            show("GET /orders with the token", await client.get("/orders", headers=auth))
            show("GET /orders without a token", await client.get("/orders"))

            # Rotation: the vault gets a new token and signing key; the old token stops working.
            second_token = "tok_second_3a8b0c4d"
            vault.set("demo/api-token", second_token)
            vault.set("demo/app", '{"signing_key": "sign-key-v2-9f0a1b2c"}')
            print("rotated the API token and the signing key in the vault")
            await asyncio.sleep(1.1)  # the store's TTL here; a deployment keeps the default 300 s

            old = await client.get("/orders", headers=auth)
            show("GET /orders with the old token", old)
            assert old.status_code == 401, "the old token should be refused after the rotation"
            auth = {"Authorization": f"Bearer {second_token}"}
            new = await client.get("/orders", headers=auth)
            show("GET /orders with the new token", new)
            assert new.status_code == 200, "the new token should be accepted without a restart"

            reloaded = await client.post("/admin/reload-settings", headers=auth)
            show("POST /admin/reload-settings", reloaded)
            assert reloaded.json() == {"changed": ["signing_key"]}
            assert settings.signing_key.get_secret_value() == "sign-key-v2-9f0a1b2c"
            print("api_token:", repr(settings.api_token), "now at version", settings.api_token.version)
            print("signing_key:", repr(settings.signing_key))
    finally:
        store.close()
        for name in ("DEMO_API_TOKEN", "DEMO_PORT", "DEMO_ALLOWED_ORIGINS"):
            os.environ.pop(name, None)


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(demo(Path(workdir)))


if __name__ == "__main__":
    main()
