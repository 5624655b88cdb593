"""Dynamic secrets (``?engine=generic``): the store's TTL follows the lease, leases are renewed or replaced.

Leases are real (PKI certificates with ``generate_lease=true``, PostgreSQL users from the
database engine); the store's and the backend's lease bookkeeping share a FakeClock, so
"later" is a tick, not a sleep.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from secretkit import InvalidReference, Secret, SecretRef, SecretStore
from secretkit.backends.vault import TokenAuth, VaultBackend
from secretkit.testing import FakeClock
from servers.openbao_server import OpenBaoAdmin

if TYPE_CHECKING:
    from conftest import Postgres  # the fixture's type, from this directory's conftest

MakeBackend = Callable[..., VaultBackend]
LEASE = 60  # seconds: the roles' default TTL


@pytest.fixture(scope="module")
def pki(vault: OpenBaoAdmin) -> str:
    """A PKI mount whose role ``web`` issues 60-second certificates with a lease."""
    mount = vault.unique("pki")
    vault.root.sys.enable_secrets_engine("pki", path=mount, config={"max_lease_ttl": "87600h"})
    vault.root.write_data(
        f"{mount}/root/generate/internal", data={"common_name": "example.com", "ttl": "8760h"}
    )
    vault.root.write_data(
        f"{mount}/roles/web",
        data={
            "allowed_domains": "example.com",
            "allow_subdomains": True,
            "ttl": f"{LEASE}s",
            "max_ttl": "1h",
            "generate_lease": True,
        },
    )
    return mount


def minimal_token(vault: OpenBaoAdmin, path: str, capability: str) -> str:
    """A token with one grant on ``path`` (plus the default policy, which covers lease renewal)."""
    policy = vault.unique("lease-policy")
    vault.root.sys.create_or_update_policy(policy, f'path "{path}" {{ capabilities = ["{capability}"] }}')
    return vault.token([policy])


def serial(secret: Secret[Any]) -> str:
    return str(secret.field("serial_number").reveal())


def test_pki_lease_sets_the_ttl_and_a_new_certificate_comes_before_expiry(
    vault: OpenBaoAdmin, pki: str, make_backend: MakeBackend
) -> None:
    """A leased certificate lives as long as its lease, not the store's TTL; a new one comes before expiry."""
    clock = FakeClock()
    backend = make_backend(
        clock=clock,
        auth=TokenAuth(minimal_token(vault, f"{pki}/issue/web", "update")),
        post_paths={f"{pki}/issue/*": ["common_name"]},
    )
    store = SecretStore([backend], ttl=3600, jitter=0.0, clock=clock)
    name = f"vault://{pki}/issue/web?engine=generic&method=POST&common_name=app.example.com"
    first = store.get(name)
    assert first.version is not None and first.version.startswith(f"{pki}/issue/web/")
    rotations: list[tuple[str, str]] = []
    store.on_rotate(name, lambda old, new: rotations.append((serial(old), serial(new))))

    # Halfway through the lease: the same certificate, even when the store asks again.
    clock.advance(LEASE * 0.5)
    assert serial(store.refresh(name)) == serial(first)
    assert rotations == []

    # Near the end of the lease (past the store's refresh-ahead point, long before its own
    # hour): a background refresh issues a new certificate while the old one is still valid.
    clock.advance(LEASE * 0.45)
    assert serial(store.get(name)) == serial(first)
    assert store.wait_idle(timeout=60)
    second = store.get(name)
    assert serial(second) != serial(first)
    assert second.version != first.version
    assert rotations == [(serial(first), serial(second))]

    # And again, a lease later: each new certificate reaches the subscribers.
    clock.advance(LEASE * 0.85)
    store.get(name)
    assert store.wait_idle(timeout=60)
    third = store.get(name)
    assert serial(third) not in (serial(first), serial(second))
    assert [new for _, new in rotations] == [serial(second), serial(third)]


def test_fetched_ttl_is_the_lease_duration(pki: str, make_backend: MakeBackend) -> None:
    """The backend reports the lease's duration as the value's TTL, and the lease id as its version."""
    fetched = make_backend(post_paths={f"{pki}/issue/*": ["common_name"]}).fetch(
        SecretRef.parse(f"vault://{pki}/issue/web?engine=generic&method=POST&common_name=ttl.example.com")
    )
    assert fetched.ttl is not None and 0 < fetched.ttl <= LEASE
    assert fetched.metadata["lease_id"] == fetched.version
    assert fetched.metadata["renewable"] == "false"


def test_fields_of_one_leased_credential_come_from_the_same_lease(
    pki: str, make_backend: MakeBackend
) -> None:
    """Two #fields of one dynamic reference read the same certificate, not one certificate each."""
    store = SecretStore([make_backend(post_paths={f"{pki}/issue/*": ["common_name"]})])
    base = f"vault://{pki}/issue/web?engine=generic&method=POST&common_name=pair.example.com"
    certificate = store.get(base + "#certificate").reveal()
    chain = json.loads(store.get(base).reveal())
    assert chain["certificate"] == certificate


def test_generic_read_without_a_lease(vault: OpenBaoAdmin, make_backend: MakeBackend) -> None:
    """engine=generic reads any path; a response without a lease has no version and no TTL of its own."""
    vault.root.write_data("cubbyhole/generic-read", data={"token": "cubby-value"})
    fetched = make_backend().fetch(SecretRef.parse("vault://cubbyhole/generic-read?engine=generic"))
    assert json.loads(fetched.value) == {"token": "cubby-value"}
    assert (fetched.version, fetched.ttl) == (None, None)


def test_generic_read_sends_other_options_as_query_parameters(
    vault: OpenBaoAdmin, make_backend: MakeBackend
) -> None:
    """Options other than engine/method/key/encoding/lease go to Vault: KV v2's raw API and ?version=."""
    path = vault.unique("app/raw")
    vault.put(path, {"password": "raw-v1"})
    vault.put(path, {"password": "raw-v2"})
    store = SecretStore([make_backend()])
    base = f"vault://secret/data/{path}?engine=generic"
    assert store.get(base + "&version=1#data.password").reveal() == "raw-v1"
    assert store.get(base + "#data.password").reveal() == "raw-v2"


def test_generic_method_must_be_get_or_post(make_backend: MakeBackend) -> None:
    """Any other method is an InvalidReference naming the allowed ones."""
    with pytest.raises(InvalidReference, match="GET"):
        make_backend().fetch(SecretRef.parse("vault://sys/health?engine=generic&method=DELETE"))


# -- the database engine: renewable leases -----------------------------------------------------


@pytest.fixture(scope="module")
def database(vault: OpenBaoAdmin, postgres: Postgres) -> str:
    """A database mount on the test's PostgreSQL: role ``app`` (60 s leases, renewable for an hour)
    and role ``capped`` (60 s leases that cannot outlive 60 s)."""
    return vault.database_mount(
        postgres.port, {"app": (f"{LEASE}s", "1h"), "capped": (f"{LEASE}s", f"{LEASE}s")}
    )


def user_exists(postgres: Postgres, username: str) -> bool:
    query = f"select count(*) from pg_roles where rolname = '{username}'"  # noqa: S608 - a name Vault made
    return postgres.sql(query) == "1"


def test_renewable_database_lease_is_renewed_not_replaced(
    vault: OpenBaoAdmin, database: str, postgres: Postgres, make_backend: MakeBackend
) -> None:
    """Past 2/3 of its lease a renewable database credential is renewed: same user, no rotation."""
    clock = FakeClock()
    backend = make_backend(clock=clock, auth=TokenAuth(minimal_token(vault, f"{database}/creds/app", "read")))
    store = SecretStore([backend], ttl=3600, jitter=0.0, clock=clock)
    name = f"vault://{database}/creds/app?engine=generic"
    first = store.get(name)
    username = first.field("username").reveal()
    assert user_exists(postgres, username)
    rotations: list[object] = []
    store.on_rotate(name, lambda old, new: rotations.append(new))
    clock.advance(LEASE * 0.85)
    store.get(name)
    assert store.wait_idle(timeout=60)
    again = store.get(name)
    assert again.field("username").reveal() == username
    assert again.version == first.version
    assert rotations == []
    lease = vault.root.sys.read_lease(lease_id=first.version)["data"]
    assert lease["last_renewal"], "the lease should have been renewed on the server"


@pytest.mark.slow
def test_database_lease_at_its_max_ttl_is_replaced_by_a_new_user(
    database: str, postgres: Postgres, make_backend: MakeBackend
) -> None:
    """When renewal would be cut short by max_ttl, a new user is created while the old one still works."""
    clock = FakeClock()
    store = SecretStore([make_backend(clock=clock)], ttl=3600, jitter=0.0, clock=clock)
    name = f"vault://{database}/creds/capped?engine=generic#username"
    first = store.get(name).reveal()
    rotations: list[tuple[str, str]] = []
    store.on_rotate(name, lambda old, new: rotations.append((old.reveal(), new.reveal())))
    # The server measures max_ttl in real time: let a little of it pass, so a renewal now
    # is granted less than a full lease.
    time.sleep(1.5)
    clock.advance(LEASE * 0.85)
    store.get(name)
    assert store.wait_idle(timeout=60)
    second = store.get(name).reveal()
    assert second != first
    assert rotations == [(first, second)]
    assert user_exists(postgres, first) and user_exists(postgres, second)


def test_lease_new_replaces_a_young_lease_for_every_reader(
    vault: OpenBaoAdmin, database: str, postgres: Postgres, make_backend: MakeBackend
) -> None:
    """&lease=new takes a new user at once, and the reference without it hands out that one from then on.

    A young lease is otherwise held for 2/3 of its life, so a credential the database stopped
    accepting early (its lease revoked, its user dropped) would keep coming back until then.
    """
    clock = FakeClock()
    backend = make_backend(clock=clock, auth=TokenAuth(minimal_token(vault, f"{database}/creds/app", "read")))
    store = SecretStore([backend], ttl=3600, jitter=0.0, clock=clock)
    name = f"vault://{database}/creds/app?engine=generic"
    first = store.get(name)
    vault.root.sys.revoke_lease(lease_id=first.version)
    assert not user_exists(postgres, first.field("username").reveal())
    assert store.refresh(name).version == first.version  # still young: held, though revoked

    nxt = store.refresh(name + "&lease=new")
    assert nxt.version != first.version
    assert user_exists(postgres, nxt.field("username").reveal())
    assert store.refresh(name).version == nxt.version


def test_lease_takes_only_new(make_backend: MakeBackend) -> None:
    """Any other lease= value is an InvalidReference before Vault is asked; so is lease= on a KV path."""
    with pytest.raises(InvalidReference, match="lease= takes one value, new"):
        make_backend().fetch(SecretRef.parse("vault://database/creds/app?engine=generic&lease=renew"))
    with pytest.raises(InvalidReference, match="no option 'lease'"):
        make_backend().fetch(SecretRef.parse("vault://secret/app/db?lease=new"))
