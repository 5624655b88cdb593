"""A host's processes behind one OpenBao Proxy: no token in the application, one login, one lease.

Real ``bao proxy`` (AppRole auto-auth, ``cache {}``, ``api_proxy { use_auto_auth_token = true }``)
in front of a real dev server; what reaches the server is counted by a tap in between. The
tests that need a proxy run against ``bao agent`` (OpenBao's Vault Agent) on the same
configuration too. Without a proxy each worker that builds its store logs in and takes a
lease of its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from secretkit import SecretRef, SecretStore
from secretkit.backends.vault import ProxyAuth, TokenAuth, VaultBackend
from secretkit.backends.vault_auth import auth_from_env
from servers.openbao_proxy import OpenBaoProxy, RequestTap
from servers.openbao_server import OpenBaoAdmin
from servers.postgres_server import Postgres
from servers.proxy_fleet import Fleet, Start, fleet_on, run_workers

Command = Literal["proxy", "agent"]

pytestmark = [
    pytest.mark.slow,
    # The workers are forked from the test process, as a preloading web server forks them.
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),
]


@pytest.fixture
def fleet(admin: OpenBaoAdmin, tmp_path: Path) -> Fleet:
    """Five KV secrets and an AppRole of the test's own (so its logins are the test's)."""
    return fleet_on(admin, tmp_path / "fleet", secrets=5)


@pytest.fixture(params=["proxy", "agent"])
def command(request: pytest.FixtureRequest) -> Command:
    """``bao proxy``, and ``bao agent`` (OpenBao's Vault Agent) on the same configuration."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def proxy(fleet: Fleet, tap: RequestTap, command: Command) -> Iterator[OpenBaoProxy]:
    with OpenBaoProxy(
        tap.url, fleet.approle_mount, fleet.role_id, fleet.secret_id, command=command
    ) as running:
        yield running


def accessors_of(admin: OpenBaoAdmin, approle_mount: str) -> int:
    """Tokens the server holds that were made by logging in at ``approle_mount`` (the server's own books)."""
    keys = admin.root.list("auth/token/accessors")["data"]["keys"]
    paths = [admin.root.auth.token.lookup_accessor(a)["data"]["path"] for a in keys]
    return sum(1 for path in paths if path == f"auth/{approle_mount}/login")


def test_a_store_with_only_vault_agent_addr_reads_through_the_proxy_without_a_token(
    monkeypatch: pytest.MonkeyPatch, fleet: Fleet, proxy: OpenBaoProxy, tap: RequestTap, admin: OpenBaoAdmin
) -> None:
    """VAULT_AGENT_ADDR and no token (VAULT_ADDR at a dead port, overridden): values come via the Proxy."""
    monkeypatch.setenv("VAULT_AGENT_ADDR", proxy.url)
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:9")
    store = SecretStore(backends=[], deadline=10.0)
    try:
        values = [store.get(name).reveal() for name in fleet.names]
    finally:
        store.close()
    assert values == [f"{name.split('/')[-2]}-value-{i}" for i, name in enumerate(fleet.names)]
    assert tap.logins(fleet.approle_mount) == 1, "the Proxy's auto-auth login, none from the application"
    assert accessors_of(admin, fleet.approle_mount) == 1


def test_the_backend_sends_no_token_behind_a_proxy_and_logs_in_nowhere(
    monkeypatch: pytest.MonkeyPatch, fleet: Fleet, proxy: OpenBaoProxy, tap: RequestTap
) -> None:
    """ProxyAuth is chosen from VAULT_AGENT_ADDR alone; its token status shows no token to renew."""
    monkeypatch.setenv("VAULT_AGENT_ADDR", proxy.url)
    tap.reset()
    backend = VaultBackend()
    try:
        assert backend.url == proxy.url
        assert repr(backend).endswith("auth=ProxyAuth())")
        store = SecretStore(backends=[backend])
        assert store.get(fleet.names[0]).reveal().endswith("-value-0")
        status = backend.token_status()
        assert (status.method, status.ttl, status.renewable, status.renewals) == ("proxy", None, False, 0)
    finally:
        backend.close()
    assert tap.logins(fleet.approle_mount) == 0
    # At most the Proxy's own renewal, which it makes at once after logging in.
    assert tap.count("*", "/v1/auth/token/renew-self") <= 1


def test_a_token_set_with_vault_agent_addr_is_still_sent() -> None:
    """VAULT_TOKEN (or VAULT_TOKEN_FILE) beside VAULT_AGENT_ADDR is sent, as the vault CLI sends it."""
    assert isinstance(auth_from_env({"VAULT_AGENT_ADDR": "http://127.0.0.1:8100"}), ProxyAuth)
    assert isinstance(auth_from_env({"VAULT_AGENT_ADDR": "http://x:1", "VAULT_TOKEN": "t"}), TokenAuth)
    assert isinstance(auth_from_env({"VAULT_AGENT_ADDR": "http://x:1", "VAULT_TOKEN_FILE": "/t"}), TokenAuth)
    assert isinstance(auth_from_env({"VAULT_AUTH_METHOD": "proxy"}), ProxyAuth)
    assert isinstance(auth_from_env({}), TokenAuth), "no agent: a token, as before"


def test_an_explicit_url_wins_over_vault_agent_addr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Code that names its server keeps it; the environment's agent address only replaces VAULT_ADDR."""
    monkeypatch.setenv("VAULT_AGENT_ADDR", "http://127.0.0.1:8100")
    monkeypatch.setenv("VAULT_ADDR", "http://127.0.0.1:8200")
    backend = VaultBackend(url="http://127.0.0.1:8300", auth=TokenAuth(token="t"))
    try:
        assert backend.url == "http://127.0.0.1:8300"
        assert not backend.proxied
    finally:
        backend.close()


@pytest.mark.parametrize("start", ["own", "preloaded"])
@pytest.mark.parametrize("k", [1, 4])
def test_workers_behind_the_proxy_make_one_login_whatever_their_number(
    k: int, start: Start, fleet: Fleet, proxy: OpenBaoProxy, tap: RequestTap, admin: OpenBaoAdmin
) -> None:
    """K workers (own stores, or forked from a preloaded parent) via the Proxy: one login at the server."""
    reports = run_workers(k, start, Fleet.proxy_env(proxy.url), fleet.names)
    assert all(r["failed"] == 0 for r in reports)
    assert tap.logins(fleet.approle_mount) == 1
    assert accessors_of(admin, fleet.approle_mount) == 1


@pytest.mark.parametrize("k", [1, 4])
def test_workers_without_the_proxy_each_log_in(
    k: int, fleet: Fleet, tap: RequestTap, admin: OpenBaoAdmin
) -> None:
    """The baseline: K workers building their stores make K logins (preloaded: the parent's one)."""
    reports = run_workers(k, "own", fleet.direct_env(tap.url), fleet.names)
    assert all(r["failed"] == 0 for r in reports)
    assert tap.logins(fleet.approle_mount) == k
    assert accessors_of(admin, fleet.approle_mount) == k
    run_workers(k, "preloaded", fleet.direct_env(tap.url), fleet.names)
    assert tap.logins(fleet.approle_mount) == k + 1


# -- one lease per host ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def database(admin: OpenBaoAdmin, postgres: Postgres) -> str:
    """A database mount whose role ``app`` issues PostgreSQL users with renewable 60 s leases."""
    return admin.database_mount(postgres.port, {"app": ("60s", "10m")})


def leases_of(admin: OpenBaoAdmin, database: str) -> int:
    try:
        found = admin.root.list(f"sys/leases/lookup/{database}/creds/app/")
    except Exception:  # hvac raises InvalidPath when there is none
        return 0
    return len(found["data"]["keys"]) if found else 0


@pytest.fixture
def db_fleet(admin: OpenBaoAdmin, tmp_path: Path, database: str) -> Fleet:
    return fleet_on(admin, tmp_path / "fleet", secrets=2, database_mount=database)


@pytest.mark.parametrize("start", ["own", "preloaded"])
def test_workers_behind_the_proxy_share_one_database_lease(
    start: Start, command: Command, db_fleet: Fleet, tap: RequestTap, admin: OpenBaoAdmin, database: str
) -> None:
    """Four workers read a dynamic database credential via the Proxy: one lease, one user, at the server."""
    before, issued = leases_of(admin, database), tap.count("GET", f"/v1/{database}/creds/app")
    assert db_fleet.credential is not None
    with OpenBaoProxy(
        tap.url, db_fleet.approle_mount, db_fleet.role_id, db_fleet.secret_id, command=command
    ) as proxy:
        reports = run_workers(4, start, Fleet.proxy_env(proxy.url), db_fleet.names)
        leases = {v for r in reports for v in r["versions"][db_fleet.credential]}
        assert len(leases) == 1, "every worker got the lease the Proxy cached"
        assert leases_of(admin, database) - before == 1
        assert tap.count("GET", f"/v1/{database}/creds/app") - issued == 1


def test_workers_without_the_proxy_each_take_a_database_lease(
    db_fleet: Fleet, tap: RequestTap, admin: OpenBaoAdmin, database: str
) -> None:
    """The baseline: four workers building their own stores take four leases (four PostgreSQL users)."""
    before = leases_of(admin, database)
    assert db_fleet.credential is not None
    reports = run_workers(4, "own", db_fleet.direct_env(tap.url), db_fleet.names)
    assert len({v for r in reports for v in r["versions"][db_fleet.credential]}) == 4
    assert leases_of(admin, database) - before == 4


def test_a_refused_lease_is_replaced_for_the_whole_host(
    monkeypatch: pytest.MonkeyPatch, db_fleet: Fleet, tap: RequestTap, admin: OpenBaoAdmin
) -> None:
    """&lease=new clears the refused lease from the Proxy's cache: the next read anywhere gets the new one."""
    assert db_fleet.credential is not None
    with OpenBaoProxy(tap.url, db_fleet.approle_mount, db_fleet.role_id, db_fleet.secret_id) as proxy:
        monkeypatch.setenv("VAULT_AGENT_ADDR", proxy.url)
        first, second = VaultBackend(), VaultBackend()
        try:
            ref = SecretStore(backends=[first])
            other = SecretStore(backends=[second])
            held = ref.get(db_fleet.credential).version
            assert other.get(db_fleet.credential).version == held
            replaced = ref.get(db_fleet.credential + "&lease=new").version
            assert replaced != held
            other.invalidate(db_fleet.credential)
            assert other.get(db_fleet.credential).version == replaced
        finally:
            first.close()
            second.close()


# -- a sink file the proxy rewrites ---------------------------------------------------------------


def test_the_token_a_proxy_sink_writes_anew_is_used_without_a_restart(
    admin: OpenBaoAdmin, tap: RequestTap, tmp_path: Path, command: Command
) -> None:
    """Tokens capped at 12 s: the proxy logs in again before each runs out and rewrites its sink;
    an application reading the server directly with TokenAuth(token_file=sink) never fails a read."""
    fleet = fleet_on(admin, tmp_path / "fleet", secrets=1, token_ttl="4s", token_max_ttl="12s")
    with OpenBaoProxy(
        tap.url, fleet.approle_mount, fleet.role_id, fleet.secret_id, sink=True, command=command
    ) as proxy:
        assert proxy.sink_path is not None
        backend = VaultBackend(url=tap.url, auth=TokenAuth(token_file=proxy.sink_path))
        path, _, key = fleet.names[0].removeprefix("vault://").partition("#")
        ref = SecretRef("vault", path, options={"key": key})
        try:
            tokens, reads = set(), 0
            end = time.monotonic() + 30
            while time.monotonic() < end:
                # Straight to the backend: every read reaches the server, none is served stale.
                assert backend.fetch(ref).value
                tokens.add(backend._client.token)
                reads += 1
                time.sleep(0.1)
        finally:
            backend.close()
    print(
        f"\nsink rewritten: {reads} reads, {len(tokens)} tokens, "
        f"{tap.logins(fleet.approle_mount)} proxy logins"
    )
    assert tap.logins(fleet.approle_mount) >= 3
    assert len(tokens) >= 3
