"""Credential senders pin where a credential may go (issue 22, items 15 and 16), tested as the attacks.

HTTP: an API that redirects to another origin must not hand that origin the key (httpx and
requests copy every header but ``Authorization`` into a redirect), and a 401 from there must
not make the auth fetch the pending key and send it too. Databases: a server that refuses a
login must not collect the pending password unless it proved who it is (verify-full TLS,
channel binding) or the user opted in. Real loopback servers throughout (see
``credential_attackers.py``); the credentials live in a memory backend whose fetches are counted.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import requests
import sqlalchemy
import trustme
from sqlalchemy.pool import NullPool

from secretkit import SecretStore
from secretkit.backends.memory import MemoryBackend
from secretkit.integrations import database_login
from secretkit.integrations._destination import asyncpg_server_authenticated, libpq_server_authenticated
from secretkit.integrations.asyncpg import create_pool
from secretkit.integrations.httpx import SecretAuth as HttpxAuth
from secretkit.integrations.psycopg import AsyncRotatingConnection, RotatingConnection
from secretkit.integrations.requests import SecretAuth as RequestsAuth
from secretkit.integrations.sqlalchemy import create_async_engine, create_engine
from security.credential_attackers import FakePostgres, HttpServers, RecordingHttp

KEY, PENDING_KEY = "key-current-7c1e0b9a55", "key-pending-4d2f88e1aa"
PASSWORD, PENDING_PASSWORD = "pw-current-0b1e77c2d4", "pw-pending-93ad51f0e6"
CLIENTS = ["httpx", "httpx-async", "requests"]


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend(
        {
            "api-key": KEY,
            "api-key-pending": PENDING_KEY,
            "db": json.dumps({"username": "app", "password": PASSWORD}),
            "db-pending": json.dumps({"username": "app", "password": PENDING_PASSWORD}),
        }
    )


@pytest.fixture
def store(backend: MemoryBackend) -> Iterator[SecretStore]:
    with SecretStore([], reference_backends=[backend], ttl=3600) as store:
        yield store


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    """A server context with a certificate for 127.0.0.1 that the test CA signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture(scope="module")
def ca_file(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return path


def pending_fetches(backend: MemoryBackend, path: str) -> int:
    return sum(1 for ref in backend.fetched if ref.path == path)


# -- HTTP -----------------------------------------------------------------------------------


def http_auth(client: str, kind: str, store: SecretStore, **options: Any) -> Any:
    cls = RequestsAuth if client == "requests" else HttpxAuth
    options = {"pending": "memory://api-key-pending", "store": store, **options}
    if kind == "header":
        return cls.header("memory://api-key", "X-API-Key", **options)
    return cls("memory://api-key", **options)


def get(client: str, auth: Any, url: str, *, follow: bool = True, ca_file: Path | None = None) -> int:
    """GET ``url`` through ``client`` with ``auth``; the status code of the final response."""
    if client == "requests":
        verify: Any = str(ca_file) if ca_file else True
        return requests.get(url, auth=auth, allow_redirects=follow, timeout=10, verify=verify).status_code
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
    if client == "httpx":
        with httpx.Client(auth=auth, follow_redirects=follow, timeout=10, verify=context) as sync:
            return sync.get(url).status_code

    async def run() -> int:
        async with httpx.AsyncClient(
            auth=auth, follow_redirects=follow, timeout=10, verify=context
        ) as aclient:
            return (await aclient.get(url)).status_code

    return asyncio.run(run())


@pytest.mark.parametrize("kind", ["header", "bearer"])
@pytest.mark.parametrize("client", CLIENTS)
def test_a_cross_origin_redirect_target_never_receives_the_key(
    client: str, kind: str, store: SecretStore, backend: MemoryBackend
) -> None:
    """The API redirects to another origin that answers 401: it gets neither key, and no recovery starts.

    The auth opted in to offering the pending key over plain http, so only the origin rule
    stands between the pending key and the other host.
    """
    auth = http_auth(client, kind, store, offer_pending_to_unverified_server=True)
    with HttpServers() as servers:
        assert get(client, auth, servers.api.url + "/redirect") == 401
        assert [path for path, _ in servers.elsewhere.seen] == ["/collect"]  # the redirect was followed
        leaked = servers.elsewhere.values()
    assert KEY not in leaked and PENDING_KEY not in leaked
    assert auth.credential.recoveries == 0
    assert pending_fetches(backend, "api-key-pending") == 0
    assert auth.resent == 0


@pytest.mark.parametrize("client", CLIENTS)
def test_a_redirect_within_the_origin_keeps_the_key(client: str, store: SecretStore) -> None:
    """A redirect to another path of the same origin still carries the key (the API works as before)."""
    auth = http_auth(client, "header", store)
    with RecordingHttp() as api:
        assert get(client, auth, api.url + "/same") == 200
        assert api.header("X-API-Key") == [KEY, KEY]


@pytest.mark.parametrize("client", CLIENTS)
def test_an_auth_sends_its_key_to_its_first_origin_only(client: str, store: SecretStore) -> None:
    """One auth used for two hosts: the second host never sees the key the first one was sent."""
    auth = http_auth(client, "header", store)
    with HttpServers() as servers:
        get(client, auth, servers.api.url + "/ok")
        get(client, auth, servers.elsewhere.url + "/ok")
        assert servers.api.header("X-API-Key") == [KEY]
        assert servers.elsewhere.header("X-API-Key") == []


@pytest.mark.parametrize("client", CLIENTS)
def test_an_explicit_origin_is_the_only_one_that_gets_the_key(client: str, store: SecretStore) -> None:
    """With ``origin=``, even the first request, to another host, goes without the key."""
    with HttpServers() as servers:
        auth = http_auth(client, "header", store, origin=servers.api.url)
        get(client, auth, servers.elsewhere.url + "/ok")
        get(client, auth, servers.api.url + "/ok")
        assert servers.elsewhere.header("X-API-Key") == []
        assert servers.api.header("X-API-Key") == [KEY]


def test_following_httpx_next_request_by_hand_does_not_carry_the_key(store: SecretStore) -> None:
    """``client.send(response.next_request)`` to another origin goes without the header httpx copied."""
    auth = http_auth("httpx", "header", store)
    with HttpServers() as servers, httpx.Client(auth=auth, timeout=10) as client:
        response = client.get(servers.api.url + "/redirect")
        assert response.next_request is not None
        assert client.send(response.next_request).status_code == 401
        assert KEY not in servers.elsewhere.values()
    assert auth.credential.recoveries == 0


@pytest.mark.parametrize(("opt_in", "expected"), [(False, [KEY]), (True, [KEY, PENDING_KEY])])
@pytest.mark.parametrize("client", CLIENTS)
def test_a_plain_http_server_that_refuses_does_not_collect_the_pending_key(
    client: str, opt_in: bool, expected: list[str], store: SecretStore, backend: MemoryBackend
) -> None:
    """Over http (no server identity) a 401 gets the current key only, unless the user opted in."""
    auth = http_auth(client, "header", store, offer_pending_to_unverified_server=opt_in)
    with RecordingHttp() as api:
        assert get(client, auth, api.url + "/refuse") == 401
        assert api.header("X-API-Key") == expected
    assert pending_fetches(backend, "api-key-pending") == int(opt_in)


@pytest.mark.parametrize("client", CLIENTS)
def test_a_verified_https_server_that_refuses_is_offered_the_pending_key(
    client: str, store: SecretStore, server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    """Over https with a certificate the client verified, a 401 gets the pending key (no opt-in needed)."""
    auth = http_auth(client, "header", store)
    with RecordingHttp(tls=server_tls) as api:
        assert get(client, auth, api.url + "/refuse", ca_file=ca_file) == 401
        assert api.header("X-API-Key") == [KEY, PENDING_KEY]


# -- Databases ------------------------------------------------------------------------------


async def login_through(
    driver: str, server: FakePostgres, opt_in: bool, store: SecretStore, **tls: Any
) -> None:
    """Log in to ``server`` through the integration ``driver``; the login is expected to be refused."""
    options: dict[str, Any] = {
        "secret": "memory://db",
        "pending": ["memory://db-pending"],
        "store": store,
        "offer_pending_to_unverified_server": opt_in,
    }
    where = f"host={server.host} port={server.port} dbname=app connect_timeout=10"
    url = f"{server.host}:{server.port}/app"
    if driver == "psycopg":
        credential = database_login(**options)
        libpq = " ".join(f"{key}={value}" for key, value in tls.items())
        with pytest.raises(psycopg.OperationalError):
            await asyncio.to_thread(
                RotatingConnection.connect, f"{where} {libpq}", secretkit_credential=credential
            )
    elif driver == "psycopg-async":
        credential = database_login(**options)
        with pytest.raises(psycopg.OperationalError):
            await AsyncRotatingConnection.connect(where, secretkit_credential=credential, **tls)
    elif driver == "asyncpg":
        pool = await create_pool(f"postgresql://{url}", min_size=0, **options, **tls)
        try:
            with pytest.raises(Exception, match="password authentication failed"):
                async with pool.acquire():
                    pass
        finally:
            await pool.close()
    elif driver == "sqlalchemy":
        engine = create_engine(f"postgresql+psycopg://{url}", poolclass=NullPool, **options)
        with pytest.raises(sqlalchemy.exc.OperationalError):
            await asyncio.to_thread(lambda: engine.connect().close())
        engine.dispose()
    else:
        aengine = create_async_engine(f"postgresql+asyncpg://{url}", poolclass=NullPool, **options)
        with pytest.raises(Exception, match="password authentication failed"):
            async with aengine.connect():
                pass
        await aengine.dispose()


DRIVERS = ["psycopg", "psycopg-async", "asyncpg", "sqlalchemy", "sqlalchemy-asyncpg"]


@pytest.mark.parametrize("driver", DRIVERS)
async def test_a_server_that_refuses_a_login_never_collects_the_pending_password(
    driver: str, store: SecretStore, backend: MemoryBackend
) -> None:
    """An impostor on the database's address refuses the password it asked for in clear: it gets no other.

    Nothing authenticates the server (no verify-full, no channel binding), so the pool tries
    the refreshed current password and then gives up, without even fetching the pending one.
    """
    with FakePostgres() as server:
        await login_through(driver, server, False, store)
    assert set(server.passwords) == {PASSWORD}
    assert pending_fetches(backend, "db-pending") == 0


@pytest.mark.parametrize("driver", DRIVERS)
async def test_the_opt_in_offers_the_pending_password_to_an_unverified_server(
    driver: str, store: SecretStore
) -> None:
    """With ``offer_pending_to_unverified_server=True`` the same refusal gets the pending password."""
    with FakePostgres() as server:
        await login_through(driver, server, True, store)
    assert server.passwords[0] == PASSWORD
    assert server.passwords[-1] == PENDING_PASSWORD


@pytest.mark.parametrize(
    ("driver", "tls"),
    [
        ("psycopg", {"sslmode": "verify-full"}),
        ("psycopg-async", {"sslmode": "verify-full"}),
        ("asyncpg", {"ssl": "context"}),
    ],
)
async def test_a_verified_server_that_refuses_is_offered_the_pending_password(
    driver: str, tls: dict[str, str], store: SecretStore, server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    """Over TLS whose certificate and host name the driver checked, a refusal gets the pending password."""
    options: dict[str, Any] = dict(tls)
    if driver == "asyncpg":
        options["ssl"] = ssl.create_default_context(cafile=str(ca_file))
    else:
        options["sslrootcert"] = str(ca_file)
    with FakePostgres(tls=server_tls) as server:
        await login_through(driver, server, False, store, **options)
    assert server.passwords == [PASSWORD, PENDING_PASSWORD]


@pytest.mark.parametrize(
    ("driver", "tls"),
    [
        ("psycopg", {"sslmode": "require"}),
        ("psycopg-async", {"sslmode": "verify-ca"}),
        ("asyncpg", {"ssl": "require"}),
    ],
)
async def test_tls_that_does_not_check_the_host_name_is_not_enough(
    driver: str, tls: dict[str, str], store: SecretStore, server_tls: ssl.SSLContext, ca_file: Path
) -> None:
    """``sslmode=require`` or ``verify-ca`` encrypt, but any certificate holder passes: no pending."""
    options: dict[str, Any] = dict(tls)
    if tls.get("sslmode") == "verify-ca":
        options["sslrootcert"] = str(ca_file)
    with FakePostgres(tls=server_tls) as server:
        await login_through(driver, server, False, store, **options)
    assert set(server.passwords) == {PASSWORD}


async def test_channel_binding_gives_an_impostor_no_password_at_all(store: SecretStore) -> None:
    """With ``channel_binding=require`` libpq will not answer a cleartext request: the impostor gets nothing.

    So channel binding counts as an authenticated server: the pending password would only go
    where the server completed a SCRAM exchange bound to the TLS channel.
    """
    with FakePostgres(tls=None) as server:
        credential = database_login("memory://db", pending=["memory://db-pending"], store=store)
        with pytest.raises(psycopg.OperationalError, match="channel binding"):
            await asyncio.to_thread(
                RotatingConnection.connect,
                f"host={server.host} port={server.port} dbname=app sslmode=prefer channel_binding=require",
                secretkit_credential=credential,
            )
    assert server.passwords == []
    assert libpq_server_authenticated({"channel_binding": "require"})


def test_what_counts_as_an_authenticated_database_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """verify-full and channel binding (in settings or libpq's environment) count; weaker TLS does not."""
    monkeypatch.delenv("PGSSLMODE", raising=False)
    monkeypatch.delenv("PGCHANNELBINDING", raising=False)
    assert libpq_server_authenticated({"sslmode": "verify-full"})
    assert not libpq_server_authenticated({"sslmode": "verify-ca"}, {"sslmode": "require"})
    assert not libpq_server_authenticated({"sslmode": "verify-full"}, {"sslmode": "prefer"})  # later wins
    assert not asyncpg_server_authenticated("postgresql://db/app", None)
    assert asyncpg_server_authenticated("postgresql://db/app?sslmode=verify-full", None)
    assert asyncpg_server_authenticated(None, True)
    unchecked = ssl.create_default_context()
    unchecked.check_hostname = False
    assert not asyncpg_server_authenticated(None, unchecked)
    monkeypatch.setenv("PGSSLMODE", "verify-full")
    assert libpq_server_authenticated({}) and asyncpg_server_authenticated("postgresql://db/app", None)
