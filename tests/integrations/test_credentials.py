"""The credential rules every consumer shares: what to try after a refusal, and in which order."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import threading
from typing import Any

import psycopg
import pytest

from secretkit import ConfigurationError, SecretStore
from secretkit.backends.memory import MemoryBackend
from secretkit.integrations import Login, database_login, is_auth_error, pending_reference

CURRENT, PENDING = "memory://db", "memory://db-pending"


def login_doc(user: str, password: str) -> str:
    return json.dumps({"username": user, "password": password, "host": "db.internal", "port": "5432"})


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend({"db": login_doc("app", "pw-one-0001")})


@pytest.fixture
def store(backend: MemoryBackend) -> Any:
    with SecretStore([], reference_backends=[backend], ttl=3600) as store:
        yield store


def fetched(backend: MemoryBackend, path: str) -> int:
    return sum(1 for ref in backend.fetched if ref.path == path)


def test_login_from_a_json_secret(store: SecretStore) -> None:
    """A JSON secret in the RDS rotation shape gives user, password, host and port (as an int)."""
    login = database_login(CURRENT, store=store).current()
    assert (login.user, login.password, login.host, login.port, login.dbname) == (
        "app",
        "pw-one-0001",
        "db.internal",
        5432,
        None,
    )
    assert login.params("database") == {
        "user": "app",
        "password": "pw-one-0001",
        "host": "db.internal",
        "port": 5432,
    }


def test_current_is_the_same_object_while_the_secret_is_unchanged(store: SecretStore) -> None:
    """Checking a pooled connection is an identity comparison: no rebuild while nothing rotated."""
    credential = database_login(CURRENT, store=store)
    first = credential.current()
    store.refresh(CURRENT)  # a refetch of the same value
    assert credential.current() is first
    assert credential.is_current(first)


def test_recover_prefers_the_refreshed_current_value(store: SecretStore, backend: MemoryBackend) -> None:
    """After a refusal the current value is fetched again; the pending one is not asked for if that helps."""
    credential = database_login(CURRENT, store=store, pending=[PENDING])
    old = credential.current()
    backend.set("db", login_doc("app", "pw-two-0002"))
    backend.set("db-pending", login_doc("app", "pw-three-0003"))
    new = credential.recover(old)
    assert new is not None and new.password == "pw-two-0002"
    assert fetched(backend, "db-pending") == 0
    assert not credential.is_current(old)


def test_recover_falls_back_to_the_pending_value_and_keeps_it(
    store: SecretStore, backend: MemoryBackend
) -> None:
    """In a single-user rotation's window the pending value is used until the store's current one moves."""
    credential = database_login(CURRENT, store=store, pending=[PENDING])
    old = credential.current()
    backend.set("db-pending", login_doc("app", "pw-pending-0004"))
    pending = credential.recover(old, server_authenticated=True)
    assert pending is not None and pending.password == "pw-pending-0004"
    assert credential.current() is pending  # every thread uses it, without asking the store again
    backend.set("db", login_doc("app", "pw-pending-0004"))  # finishSecret, seen by the store
    store.refresh(CURRENT)
    assert credential.current().password == "pw-pending-0004"
    assert credential.is_current(pending)


def test_recover_asks_for_no_pending_value_for_a_server_that_did_not_prove_itself(
    store: SecretStore, backend: MemoryBackend
) -> None:
    """A refusal from a server of unknown identity gets no pending value, unless the credential opted in."""
    backend.set("db-pending", login_doc("app", "pw-pending-0008"))
    credential = database_login(CURRENT, store=store, pending=[PENDING])
    assert credential.recover(credential.current()) is None
    assert fetched(backend, "db-pending") == 0
    opted_in = database_login(
        CURRENT, store=store, pending=[PENDING], offer_pending_to_unverified_server=True
    )
    recovered = opted_in.recover(opted_in.current())
    assert recovered is not None and recovered.password == "pw-pending-0008"


def test_recover_gives_up_when_nothing_new_exists(store: SecretStore, backend: MemoryBackend) -> None:
    """No new current value and no pending one: None, so the caller raises the database's error."""
    credential = database_login(CURRENT, store=store, pending=[PENDING])
    assert credential.recover(credential.current(), server_authenticated=True) is None


def test_a_refused_value_is_never_offered_again(store: SecretStore, backend: MemoryBackend) -> None:
    """When the store hands back a value that was refused before, recover does not return it."""
    credential = database_login(CURRENT, store=store, pending=[PENDING])
    first = credential.current()
    backend.set("db", login_doc("app", "pw-two-0002"))
    second = credential.recover(first)
    assert second is not None
    backend.set("db", login_doc("app", "pw-one-0001"))  # a stale read brings the first value back
    assert credential.recover(second, server_authenticated=True) is None


def test_concurrent_refusals_ask_the_store_once(store: SecretStore, backend: MemoryBackend) -> None:
    """Eight threads refused with the same login cause one recovery, not eight."""
    credential = database_login(CURRENT, store=store, pending=[PENDING])
    old = credential.current()
    backend.set("db", login_doc("app", "pw-two-0002"))
    before = backend.calls
    results: list[Login | None] = []
    threads = [threading.Thread(target=lambda: results.append(credential.recover(old))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert {r.password for r in results if r is not None} == {"pw-two-0002"} and len(results) == 8
    assert credential.recoveries == 1
    assert backend.calls - before == 1


def test_separate_password_and_username_secrets(backend: MemoryBackend) -> None:
    """password= and username_secret= name two secrets; username= is a plain user name."""
    backend.set("pw", "pw-plain-0005")
    backend.set("user", "svc")
    with SecretStore([], reference_backends=[backend]) as store:
        login = database_login(password="memory://pw", username_secret="memory://user", store=store).current()
        assert (login.user, login.password) == ("svc", "pw-plain-0005")
        login = database_login(password="memory://pw", username="app", store=store).current()
        assert (login.user, login.password) == ("app", "pw-plain-0005")


def test_a_secret_that_is_not_a_login_is_a_configuration_error(backend: MemoryBackend) -> None:
    """A plain string given as secret= is refused with advice, and without the value in the message."""
    backend.set("plain", "pw-plain-0006")
    with SecretStore([], reference_backends=[backend]) as store:
        with pytest.raises(ConfigurationError, match="password=") as caught:
            database_login("memory://plain", store=store).current()
    assert "pw-plain-0006" not in str(caught.value)
    with pytest.raises(ConfigurationError):
        database_login()


def test_login_never_shows_its_password() -> None:
    """repr shows user and host only; pickling is refused."""
    login = Login("app", "pw-hidden-0007", "db.internal", 5432, "app")
    assert "pw-hidden-0007" not in repr(login)
    assert "app" in repr(login)
    with pytest.raises(TypeError):
        pickle.dumps(login)


@pytest.mark.parametrize(
    ("name", "pending"),
    [
        ("aws-sm://prod/db", "aws-sm://prod/db?stage=AWSPENDING"),
        (
            "aws-sm://prod/db#password?region=eu-west-1",
            "aws-sm://prod/db#password?region=eu-west-1&stage=AWSPENDING",
        ),
        ("aws-sm://prod/db?stage=AWSPREVIOUS", None),
        ("aws-sm://prod/db?version=abc", None),
        ("vault://secret/app/db#password", None),
        (
            "vault://database/creds/app#password?engine=generic",
            "vault://database/creds/app#password?engine=generic&lease=new",
        ),
        ("vault://database/creds/app?engine=generic&lease=new", None),
        ("DB_PASSWORD", None),
    ],
)
def test_pending_reference(name: str, pending: str | None) -> None:
    """The current AWS version has a pending stage; a leased Vault credential has a next lease."""
    assert pending_reference(name) == pending


def test_auth_errors_are_recognised() -> None:
    """SQLSTATE 28P01/28000, libpq's refusal messages and MySQL's 1045 are auth errors; others are not."""

    class Refused(Exception):
        sqlstate = "28P01"

    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = Refused()
    message = 'connection failed: FATAL:  password authentication failed for user "app"'
    assert is_auth_error(Refused())
    assert is_auth_error(wrapped)
    assert is_auth_error(psycopg.OperationalError(message))
    assert is_auth_error(Exception(1045, "Access denied for user"))
    assert not is_auth_error(psycopg.OperationalError("connection failed: Connection refused"))
    assert not is_auth_error(TimeoutError())


def test_importing_the_integrations_package_imports_no_library() -> None:
    """``import secretkit.integrations`` pulls in none of SQLAlchemy, psycopg, asyncpg, httpx, requests."""
    heavy = ["sqlalchemy", "psycopg", "psycopg_pool", "asyncpg", "httpx", "requests"]
    code = (
        "import sys, secretkit, secretkit.integrations;"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("module", "library", "use"),
    [
        ("sqlalchemy", "sqlalchemy", "m.create_engine('postgresql://', password='X')"),
        ("psycopg", "psycopg", ""),
        ("asyncpg", "asyncpg", ""),
        ("httpx", "httpx", ""),
        ("requests", "requests", ""),
    ],
)
def test_a_missing_library_names_its_extra(module: str, library: str, use: str) -> None:
    """Without its library, an integration raises MissingDependency with the pip command for its extra."""
    code = (
        f"import sys; sys.modules[{library!r}] = None\n"
        "from secretkit import MissingDependency\n"
        "try:\n"
        f"    import secretkit.integrations.{module} as m\n"
        f"    {use or 'pass'}\n"
        "except MissingDependency as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert f'pip install "secretkit[{module}]"' in result.stdout


def test_an_unreachable_store_does_not_retire_connections(backend: MemoryBackend) -> None:
    """If the store cannot answer, a pooled connection's login counts as current: an outage retires none."""
    with SecretStore([], reference_backends=[backend], ttl=0.01, max_stale=0.0) as store:
        credential = database_login(CURRENT, store=store)
        login = credential.current()
        backend.fail(ConnectionError("secret store down"))
        store.invalidate(CURRENT)
        assert credential.is_current(login)
