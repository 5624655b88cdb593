"""The store against an attacker: escapes from the allow-list, hostile names and files, leaks, growth.

Each test is named after what it protects (issue 10, items 2, 8, 9, 11, 12, 14, 15, 16).
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from pathlib import Path

import pytest

import secretkit
from _batching import BatchMemoryBackend
from secretkit import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    Fetched,
    InvalidReference,
    SecretkitError,
    SecretNotFound,
    SecretRef,
    SecretStore,
)
from secretkit.backends import EnvBackend, FileBackend
from secretkit.backends.memory import MemoryBackend
from secretkit.testing import CountingBackend

PASSWORD = "pw-recognisable-7c1d9e"
OTHER = "other-recognisable-55aa"


def _everything_shown(exc: BaseException) -> str:
    """What an error reporter capturing locals would send: messages, causes and every frame's locals."""
    rendered = traceback.TracebackException.from_exception(exc, capture_locals=True)
    return "".join(rendered.format())


# -- escapes ---------------------------------------------------------------------------------


def test_dot_dot_cannot_walk_out_of_an_allowed_directory(tmp_path: Path) -> None:
    """file://<allowed>/../outside is refused before any file is read."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "outside.txt").write_text(PASSWORD)
    store = SecretStore([], allow=[f"{tmp_path}/secrets/*"])
    with pytest.raises(InvalidReference) as info:
        store.get(f"file://{tmp_path}/secrets/../outside.txt")
    assert PASSWORD not in _everything_shown(info.value)


@pytest.mark.parametrize(
    "reference",
    [
        "vault://secret/app/../admin/root#password",
        "vault://secret/app/../../sys/policy/root?engine=generic",
        "vault://secret/app/%2e%2e/admin/root",
        "vault://secret/app/%252e%252e/admin/root",
        "vault://secret/app/..%5cadmin",
    ],
)
def test_dot_dot_never_reaches_a_backend(reference: str) -> None:
    """A reference with a '..' segment (encoded or not) is refused and no backend is asked."""
    vault = CountingBackend(MemoryBackend(scheme="vault"))
    store = SecretStore([], reference_backends=[vault], allow=["secret/app/*"])
    with pytest.raises(InvalidReference):
        store.get(reference)
    assert vault.fetch_calls == 0


def test_an_ignored_option_cannot_satisfy_a_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    """allow=["*_KEY"] does not grant env://ADMIN_TOKEN?x=_KEY: options and #field are not matched."""
    monkeypatch.setenv("ADMIN_TOKEN", PASSWORD)
    store = SecretStore([EnvBackend()], allow=["*_KEY"])
    for sneaky in ("env://ADMIN_TOKEN?x=_KEY", "env://ADMIN_TOKEN#_KEY"):
        with pytest.raises(AccessDenied) as info:
            store.get(sneaky)
        assert PASSWORD not in _everything_shown(info.value)


def test_an_unknown_option_is_refused_before_the_backend_is_asked() -> None:
    """A backend that declares its options never sees one it does not know."""
    memory = MemoryBackend({"db": PASSWORD})
    store = SecretStore([], reference_backends=[memory])
    with pytest.raises(InvalidReference, match="no option 'method'"):
        store.get("memory://db?method=POST")
    assert memory.calls == 0
    assert store.get("memory://db?version=1").reveal() == PASSWORD


def test_the_allow_list_matches_the_normalised_path(tmp_path: Path) -> None:
    """Doubled slashes and ./ segments do not dodge a pattern, and the pattern still grants the file."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "db").write_text(PASSWORD)
    store = SecretStore([], allow=[f"{tmp_path}/secrets/*"])
    assert store.get(f"file://{tmp_path}//secrets/./db").reveal() == PASSWORD
    with pytest.raises(AccessDenied):
        store.get(f"file://{tmp_path}/elsewhere/db")


# -- hostile files -----------------------------------------------------------------------------


def test_dev_zero_is_refused_fast_not_read_until_memory_runs_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """file:///dev/zero and X_FILE=/dev/zero fail with ConfigurationError, at once."""
    store = SecretStore([EnvBackend()])
    started = time.monotonic()
    with pytest.raises(ConfigurationError, match="not a regular file"):
        store.get("file:///dev/zero")
    monkeypatch.setenv("SK_ZERO_FILE", "/dev/zero")
    with pytest.raises(ConfigurationError, match="not a regular file"):
        store.get("SK_ZERO")
    assert time.monotonic() - started < 5


def test_a_fifo_does_not_block_its_readers(tmp_path: Path) -> None:
    """A FIFO in place of a secret file is refused instead of blocking every reader of the key."""
    fifo = tmp_path / "db_password"
    os.mkfifo(fifo)
    store = SecretStore([FileBackend(tmp_path)])
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            store.get("DB_PASSWORD")
        except BaseException as exc:
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "the read blocked on a FIFO"
    assert isinstance(outcome[0], ConfigurationError)


def test_an_oversized_secret_file_is_refused(tmp_path: Path) -> None:
    """Secret files over the size cap (1 MiB by default, configurable) are refused with a clear error."""
    (tmp_path / "big").write_bytes(b"x" * 2048)
    with pytest.raises(ConfigurationError, match="1024-byte limit"):
        SecretStore([FileBackend(tmp_path, max_bytes=1024)]).get("big")
    assert len(SecretStore([FileBackend(tmp_path, max_bytes=4096)]).get("big").reveal()) == 2048


def test_a_symlinked_secret_file_is_still_read(tmp_path: Path) -> None:
    """Symlinks to regular files are fine: Kubernetes mounts secrets through them."""
    (tmp_path / "real").write_text(PASSWORD)
    (tmp_path / "db").symlink_to(tmp_path / "real")
    assert SecretStore([FileBackend(tmp_path)]).get("db").reveal() == PASSWORD


# -- hostile names -----------------------------------------------------------------------------


@pytest.fixture
def default_with_secrets_dir(isolated_default: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run-secrets").mkdir()
    secretkit.configure(backends=[EnvBackend(), FileBackend(tmp_path / "run-secrets")])


@pytest.mark.parametrize("name", ["A\0B", "A" * 300, "A" * 5000, "A/../../etc/passwd", "\udcff-name"])
def test_a_bad_name_is_not_found_not_an_outage(default_with_secrets_dir: None, name: str) -> None:
    """getenv gives the default and `in` is False for names no variable or file can have (os.getenv too)."""
    assert secretkit.getenv(name, "d") == "d"
    assert name not in secretkit.environ


def test_a_huge_name_is_cut_in_messages() -> None:
    """A 1 MB name does not make a 1 MB error message."""
    with pytest.raises(SecretNotFound) as info:
        SecretStore([MemoryBackend()]).get("N" * 1_000_000)
    assert len(str(info.value)) < 500


def _messages(exc: BaseException) -> str:
    """The error as a report shows it without locals: messages and causes (the caller's own
    argument is in its frame whatever secretkit does)."""
    return "".join(traceback.TracebackException.from_exception(exc).format())


def test_a_url_with_a_password_is_not_echoed_in_errors() -> None:
    """InvalidReference for postgres://admin:PASSWORD@db/app# does not show the password."""
    with pytest.raises(SecretkitError) as info:
        secretkit.get_secret(f"postgres://admin:{PASSWORD}@db/app#")
    assert PASSWORD not in _messages(info.value)
    with pytest.raises(SecretkitError) as again:
        SecretStore([]).get(f"vault://secret/app?token={PASSWORD}")
    assert PASSWORD not in _messages(again.value)


# -- leaks through tracebacks and causes ---------------------------------------------------------


def test_a_batched_failure_carries_no_other_items_value() -> None:
    """prefetch of db#password and db#usernme: the second failure's traceback holds no password."""
    backend = BatchMemoryBackend({"prod/db": f'{{"password": "{PASSWORD}", "username": "{OTHER}"}}'})
    store = SecretStore([], reference_backends=[backend])
    failures = store.prefetch(["memory://prod/db#password", "memory://prod/db#usernme"])
    assert set(failures) == {"memory://prod/db#usernme"}
    shown = _everything_shown(failures["memory://prod/db#usernme"])
    assert PASSWORD not in shown and OTHER not in shown
    with pytest.raises(SecretNotFound) as info:
        store.get("memory://prod/db#usernme")
    assert PASSWORD not in _everything_shown(info.value)


def test_a_missing_field_error_carries_no_part_of_the_document() -> None:
    """get("ref#missing") fails without the parsed JSON document in any frame of its traceback."""
    store = SecretStore([], reference_backends=[MemoryBackend({"db": f'{{"password": "{PASSWORD}"}}'})])
    with pytest.raises(SecretNotFound) as info:
        store.get("memory://db#passwd")
    assert PASSWORD not in _everything_shown(info.value)


class _EchoingBackend:
    """A backend whose SDK error echoes the request back, value included (as some servers do)."""

    scheme = "echo"

    def fetch(self, ref: SecretRef) -> Fetched:
        raise RuntimeError(f"server said: bad request body token={PASSWORD}")

    def close(self) -> None:
        pass


def test_a_vendor_cause_that_echoes_a_value_is_scrubbed() -> None:
    """The chained vendor exception's message shows no registered value, and its type is kept."""
    secretkit.Secret("REGISTERED", PASSWORD)  # the value is known to the redactor
    store = SecretStore([_EchoingBackend()])
    with pytest.raises(BackendUnavailable) as info:
        store.get("ANY")
    assert PASSWORD not in _everything_shown(info.value)
    assert isinstance(info.value.__cause__, RuntimeError)


# -- exhaustion --------------------------------------------------------------------------------


def test_names_an_attacker_chooses_cannot_grow_memory() -> None:
    """20,000 distinct missing names leave at most max_size (1,000) failures; invalidate adds none."""
    store = SecretStore([MemoryBackend()], max_size=1000, negative_ttl=300)
    for i in range(20_000):
        with pytest.raises(SecretNotFound):
            store.get(f"missing-{i}")
        store.invalidate(f"other-{i}")
    stats = store.stats()
    assert stats["negative"] <= 1000
    assert store._resolver.memo_size() <= 1000  # the parsed-name memo
    assert not hasattr(store, "_key_generation")


def test_expired_failures_are_purged() -> None:
    """Remembered not-found entries past negative_ttl are dropped as new ones arrive."""
    from secretkit.testing import FakeClock

    clock = FakeClock()
    store = SecretStore([MemoryBackend()], negative_ttl=5, clock=clock)
    for i in range(100):
        with pytest.raises(SecretNotFound):
            store.get(f"early-{i}")
    clock.advance(10)
    for i in range(100):
        with pytest.raises(SecretNotFound):
            store.get(f"late-{i}")
    assert store.stats()["negative"] < 200


class _AddressQuotingBackend:
    """A backend whose errors quote the address it was configured with, token in the user-info."""

    scheme = "quoting"

    def __init__(self, error: type[Exception]) -> None:
        self.error = error

    def fetch(self, ref: SecretRef) -> Fetched:
        raise self.error(f"could not log in to https://{PASSWORD}@vault.internal:8200/v1/auth")

    def close(self) -> None:
        pass


@pytest.mark.parametrize("error", [ConfigurationError, RuntimeError])
def test_an_address_with_user_info_in_a_backend_error_is_not_echoed(error: type[Exception]) -> None:
    """A token in a URL's user-info, quoted by a backend or its SDK, is not in the error or its cause."""
    with pytest.raises(SecretkitError) as info:
        SecretStore([_AddressQuotingBackend(error)]).get("ANY_NAME")
    shown = "".join(traceback.TracebackException.from_exception(info.value).format())
    assert PASSWORD not in shown
    assert "vault.internal:8200" in shown  # the address itself still says where
