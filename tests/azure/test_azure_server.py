"""The local Key Vault answers the SDK the way the service does, on every path the backend relies on."""

from __future__ import annotations

import http.client
import json
import ssl
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient

from servers.azure_server import RESOURCE, TENANT, TOKEN, KeyVaultServer, StaticTokenCredential


def raw_get(
    server: KeyVaultServer, path: str, token: str | None = None
) -> tuple[int, dict[str, str], dict[str, Any]]:
    context = ssl.create_default_context(cafile=server.ca_path)
    connection = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=10)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), json.loads(response.read())
    finally:
        connection.close()


def test_a_request_without_a_token_gets_the_bearer_challenge(kv_server: KeyVaultServer) -> None:
    """No token: 401 with a challenge naming the tenant's authority and the Key Vault resource."""
    status, headers, body = raw_get(kv_server, "/secrets/anything?api-version=7.6")
    assert status == 401
    assert headers["WWW-Authenticate"] == (
        f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", resource="{RESOURCE}"'
    )
    assert body["error"]["code"] == "Unauthorized"


def test_the_sdk_asks_the_credential_for_a_token_in_the_challenged_tenant(kv_server: KeyVaultServer) -> None:
    """After the challenge the SDK requests a Key Vault token for the tenant the challenge named."""
    credential = StaticTokenCredential()
    with SecretClient(kv_server.url, credential, **kv_server.client_options()) as client:
        with pytest.raises(ResourceNotFoundError):
            client.get_secret("never-created-anywhere")
    assert credential.requests == [((f"{RESOURCE}/.default",), TENANT)]


def test_a_missing_or_unknown_api_version_is_a_bad_parameter(kv_server: KeyVaultServer) -> None:
    """Every request must carry an api-version the service knows."""
    status, _, body = raw_get(kv_server, "/secrets/x", token=TOKEN)
    assert (status, body["error"]["code"]) == (400, "BadParameter")
    status, _, body = raw_get(kv_server, "/secrets/x?api-version=1999-01-01", token=TOKEN)
    assert (status, body["error"]["code"]) == (400, "BadParameter")


def test_a_missing_secret_is_a_secret_not_found_404(kv_writer: SecretClient) -> None:
    """The SDK raises ResourceNotFoundError carrying Key Vault's SecretNotFound code."""
    with pytest.raises(ResourceNotFoundError) as info:
        kv_writer.get_secret("no-such-secret-here")
    assert info.value.status_code == 404
    assert info.value.error is not None and info.value.error.code == "SecretNotFound"


def test_versions_are_listed_across_pages(kv_writer: SecretClient, secret_name: str) -> None:
    """Listing 30 versions follows nextLink and returns every version id, without values."""
    ids = [kv_writer.set_secret(secret_name, f"v{i}").properties.version for i in range(30)]
    listed = [p.version for p in kv_writer.list_properties_of_secret_versions(secret_name)]
    assert listed == ids


def test_a_disabled_version_is_forbidden_and_an_expired_one_is_served(
    kv_writer: SecretClient, secret_name: str
) -> None:
    """Disabled: 403 Forbidden/SecretDisabled. Expired: returned, as the real service does."""
    kv_writer.set_secret(secret_name, "off", enabled=False)
    with pytest.raises(HttpResponseError) as info:
        kv_writer.get_secret(secret_name)
    assert info.value.status_code == 403
    assert info.value.error is not None
    assert (info.value.error.code, info.value.error.innererror) == ("Forbidden", {"code": "SecretDisabled"})
    past = datetime.now(UTC) - timedelta(days=1)
    kv_writer.set_secret(secret_name, "stale", expires_on=past)
    got = kv_writer.get_secret(secret_name)
    assert got.value == "stale"
    assert got.properties.expires_on is not None and got.properties.expires_on < datetime.now(UTC)


def test_a_denied_secret_is_forbidden_with_access_denied(
    kv_server: KeyVaultServer, kv_writer: SecretClient, secret_name: str
) -> None:
    """A secret the caller may not read answers 403 Forbidden with inner code AccessDenied."""
    kv_server.deny(secret_name)
    with pytest.raises(HttpResponseError) as info:
        kv_writer.get_secret(secret_name)
    assert info.value.status_code == 403
    assert info.value.error is not None and info.value.error.innererror == {"code": "AccessDenied"}


def test_names_are_case_insensitive(kv_writer: SecretClient, secret_name: str) -> None:
    """A secret set as lower-case is read under any case, keeping the spelling it was created with."""
    kv_writer.set_secret(secret_name, "cased")
    got = kv_writer.get_secret(secret_name.upper())
    assert (got.value, got.name) == ("cased", secret_name)
