"""getenv/environ see the environment as it is now, as os.getenv does; local files follow rotation."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import secretkit
from secretkit import SecretNotFound, SecretStore
from secretkit._redact import MIN_LENGTH
from secretkit.backends import DotenvBackend, EnvBackend, FileBackend
from secretkit.backends.memory import MemoryBackend
from secretkit.testing import CountingBackend, FakeClock


@pytest.fixture
def default(isolated_default: None, no_secretkit_env: None) -> Iterator[SecretStore]:
    """A default store like the real one (environment, ./.env, a secrets directory), long TTLs."""
    store = secretkit.configure(ttl=300, negative_ttl=300)
    yield store


def test_a_changed_variable_is_seen_on_the_next_read(
    default: SecretStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """os.environ set, changed and deleted are seen at once, whatever the TTL."""
    monkeypatch.setenv("SK_LIVE_X", "one")
    assert secretkit.getenv("SK_LIVE_X") == "one"
    monkeypatch.setenv("SK_LIVE_X", "two")
    assert secretkit.getenv("SK_LIVE_X") == "two"
    assert secretkit.environ["SK_LIVE_X"] == "two"
    monkeypatch.delenv("SK_LIVE_X")
    assert secretkit.getenv("SK_LIVE_X") is None
    assert "SK_LIVE_X" not in secretkit.environ


def test_a_missing_variable_is_not_remembered_as_missing(
    default: SecretStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A name first missing, then set, is found on the next read despite negative_ttl."""
    monkeypatch.delenv("SK_LIVE_LATE", raising=False)
    assert secretkit.getenv("SK_LIVE_LATE", "default") == "default"
    monkeypatch.setenv("SK_LIVE_LATE", "now-set")
    assert secretkit.getenv("SK_LIVE_LATE", "default") == "now-set"


@pytest.mark.parametrize("value", ["value-a", "value-b"])
def test_monkeypatch_per_test_behaves_as_os_getenv(
    default: SecretStore, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    """A test suite that sets a variable per test reads its own value in each test."""
    monkeypatch.setenv("SK_LIVE_PER_TEST", value)
    assert secretkit.getenv("SK_LIVE_PER_TEST") == os.getenv("SK_LIVE_PER_TEST") == value


def test_a_variable_holding_a_reference_follows_a_new_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variable is re-read each call; its target is cached, and a new reference is followed."""
    memory = CountingBackend(MemoryBackend({"db-one": "password-one", "db-two": "password-two"}))
    store = SecretStore([EnvBackend()], reference_backends=[memory], ttl=300)
    monkeypatch.setenv("SK_DB_PASSWORD", "memory://db-one")
    assert store.get("SK_DB_PASSWORD").reveal() == "password-one"
    assert store.get("SK_DB_PASSWORD").reveal() == "password-one"
    assert memory.fetch_calls == 1  # the target is cached
    monkeypatch.setenv("SK_DB_PASSWORD", "memory://db-two")
    assert store.get("SK_DB_PASSWORD").reveal() == "password-two"
    assert memory.fetch_calls == 2
    store.close()


def test_a_changed_variable_fires_on_rotate(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable changed in-process is a rotation to its subscribers."""
    store = SecretStore([EnvBackend()])
    monkeypatch.setenv("SK_ROTATED", "before-value")
    seen: list[tuple[str, str]] = []
    store.on_rotate("SK_ROTATED", lambda old, new: seen.append((old.reveal(), new.reveal())))
    store.get("SK_ROTATED")
    monkeypatch.setenv("SK_ROTATED", "after-value")
    assert store.get("SK_ROTATED").reveal() == "after-value"
    assert seen == [("before-value", "after-value")]


def test_a_variable_pointing_into_the_environment_serves_its_target_as_it_is_now(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """VAR=env://OTHER: a changed OTHER is served on the next read and rotates VAR, whatever the TTL."""
    clock = FakeClock()  # time never moves: no re-read after a second can hide a stale value
    store = SecretStore([EnvBackend()], ttl=300, clock=clock)
    monkeypatch.setenv("SK_ALIAS", "env://SK_ALIAS_TARGET")
    monkeypatch.setenv("SK_ALIAS_TARGET", "first-target-value")
    seen: list[tuple[str, str]] = []
    store.on_rotate("SK_ALIAS", lambda old, new: seen.append((old.reveal(), new.reveal())))
    first = store.get("SK_ALIAS")
    assert first.reveal() == "first-target-value"
    assert store.get("SK_ALIAS") is first  # unchanged at both ends: served from the cache
    monkeypatch.setenv("SK_ALIAS_TARGET", "second-target-value")
    assert store.get("SK_ALIAS").reveal() == "second-target-value"
    assert seen == [("first-target-value", "second-target-value")]
    store.close()


def test_a_variable_pointing_to_a_deleted_variable_is_not_found_until_it_is_set_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """VAR=env://OTHER with OTHER deleted raises SecretNotFound; OTHER set again is found at once."""
    store = SecretStore([EnvBackend()], ttl=300, negative_ttl=300, clock=FakeClock())
    monkeypatch.setenv("SK_ALIAS_GONE", "env://SK_ALIAS_GONE_TARGET")
    monkeypatch.setenv("SK_ALIAS_GONE_TARGET", "target-before-deletion")
    assert store.get("SK_ALIAS_GONE").reveal() == "target-before-deletion"
    monkeypatch.delenv("SK_ALIAS_GONE_TARGET")
    with pytest.raises(SecretNotFound):
        store.get("SK_ALIAS_GONE")
    monkeypatch.setenv("SK_ALIAS_GONE_TARGET", "target-set-again")
    assert store.get("SK_ALIAS_GONE").reveal() == "target-set-again"
    store.close()


def test_a_variable_pointing_to_a_secret_file_variable_rereads_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VAR=env://OTHER where OTHER_FILE names the file: the file is re-read after a second."""
    clock = FakeClock()
    secret_file = tmp_path / "other"
    secret_file.write_text("file-value-one")
    store = SecretStore([EnvBackend()], ttl=300, clock=clock)
    monkeypatch.setenv("SK_VIA_FILE", "env://SK_VIA_FILE_TARGET")
    monkeypatch.delenv("SK_VIA_FILE_TARGET", raising=False)
    monkeypatch.setenv("SK_VIA_FILE_TARGET_FILE", str(secret_file))
    assert store.get("SK_VIA_FILE").reveal() == "file-value-one"
    secret_file.write_text("file-value-two")
    clock.advance(1.01)
    assert store.get("SK_VIA_FILE").reveal() == "file-value-two"
    store.close()


def test_a_secret_file_rewritten_in_place_is_served_within_a_second(tmp_path: Path) -> None:
    """A file under the secrets directory rewritten in place is read again after LOCAL_RECHECK (1 s)."""
    clock = FakeClock()
    (tmp_path / "db_password").write_text("first-password\n")
    store = SecretStore([FileBackend(tmp_path)], ttl=300, clock=clock)
    assert store.get("DB_PASSWORD").reveal() == "first-password"
    (tmp_path / "db_password").write_text("second-password\n")
    assert store.get("DB_PASSWORD").reveal() == "first-password"  # within the second: no re-read
    clock.advance(1.01)
    assert store.get("DB_PASSWORD").reveal() == "second-password"


def test_a_kubernetes_style_symlink_swap_is_followed(tmp_path: Path) -> None:
    """A secret volume updated by swapping its ..data symlink serves the new value after a second."""
    clock = FakeClock()
    for version, value in (("v1", "volume-value-one"), ("v2", "volume-value-two")):
        (tmp_path / version).mkdir()
        (tmp_path / version / "api_token").write_text(value)
    (tmp_path / "..data").symlink_to("v1")
    (tmp_path / "api_token").symlink_to("..data/api_token")
    store = SecretStore([FileBackend(tmp_path)], clock=clock)
    assert store.get("API_TOKEN").reveal() == "volume-value-one"
    (tmp_path / "..data_tmp").symlink_to("v2")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")  # atomic, as the kubelet does
    clock.advance(1.01)
    assert store.get("API_TOKEN").reveal() == "volume-value-two"


def test_a_dotenv_file_edited_is_read_again(tmp_path: Path) -> None:
    """A .env edited on disk is seen after a second, and a key added to it too."""
    clock = FakeClock()
    env_file = tmp_path / ".env"
    env_file.write_text("SK_FROM_DOTENV=first\n")
    store = SecretStore([DotenvBackend(env_file)], clock=clock, negative_ttl=300)
    assert store.get("SK_FROM_DOTENV").reveal() == "first"
    with pytest.raises(SecretNotFound):
        store.get("SK_ADDED_LATER")
    env_file.write_text("SK_FROM_DOTENV=second\nSK_ADDED_LATER=here\n")
    clock.advance(1.01)
    assert store.get("SK_FROM_DOTENV").reveal() == "second"
    assert store.get("SK_ADDED_LATER").reveal() == "here"


def test_the_environment_outranks_a_dotenv_value_set_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A variable exported after a .env value was cached takes over on the next read, as in the chain."""
    env_file = tmp_path / ".env"
    env_file.write_text("SK_BOTH=from-dotenv\n")
    monkeypatch.delenv("SK_BOTH", raising=False)
    store = SecretStore([EnvBackend(), DotenvBackend(env_file)], ttl=300)
    assert store.get("SK_BOTH").reveal() == "from-dotenv"
    monkeypatch.setenv("SK_BOTH", "from-environment")
    assert store.get("SK_BOTH").reveal() == "from-environment"
    monkeypatch.delenv("SK_BOTH")
    assert store.get("SK_BOTH").reveal() == "from-dotenv"


# -- what is remembered for log redaction ------------------------------------------------


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    secretkit.redact_logs()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("sk-env-live")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def test_configuration_read_by_getenv_stays_readable_in_logs(
    default: SecretStore, monkeypatch: pytest.MonkeyPatch, log_output: io.StringIO
) -> None:
    """getenv("APP_ENV") and environ["PORT"] leave configuration readable in log lines."""
    # Values no other test registers: a port such as 8080 may be a JSON leaf of some secret.
    monkeypatch.setenv("SK_APP_ENV", "staging-zeta-41")
    monkeypatch.setenv("SK_PORT", "47391")
    env, port = secretkit.getenv("SK_APP_ENV"), secretkit.environ["SK_PORT"]
    logging.getLogger("sk-env-live").info("starting in %s mode on port %s", env, port)
    assert "starting in staging-zeta-41 mode on port 47391" in log_output.getvalue()


def test_a_variable_named_like_a_secret_is_masked(
    default: SecretStore, monkeypatch: pytest.MonkeyPatch, log_output: io.StringIO
) -> None:
    """getenv("API_TOKEN") registers the token, so a log line that shows it is masked."""
    monkeypatch.setenv("SK_API_TOKEN", "tok-abcdef-123456")
    token = secretkit.getenv("SK_API_TOKEN")
    logging.getLogger("sk-env-live").info("calling with %s", token)
    assert "tok-abcdef-123456" not in log_output.getvalue()


def test_get_secret_registers_even_configuration(
    default: SecretStore, monkeypatch: pytest.MonkeyPatch, log_output: io.StringIO
) -> None:
    """What is asked for as a secret is masked, whatever its name."""
    monkeypatch.setenv("SK_PLAIN_NAME", "asked-for-as-secret")
    secretkit.get_secret("SK_PLAIN_NAME")
    logging.getLogger("sk-env-live").info("value %s", "asked-for-as-secret")
    assert "asked-for-as-secret" not in log_output.getvalue()


def test_a_value_through_a_reference_is_masked_whatever_the_name(
    monkeypatch: pytest.MonkeyPatch, log_output: io.StringIO, isolated_default: None
) -> None:
    """A variable holding a reference yields a secret: getenv registers it."""
    secretkit.configure(
        backends=[EnvBackend()], reference_backends=[MemoryBackend({"db": "through-a-reference-1"})]
    )
    monkeypatch.setenv("SK_DATABASE_HOST_SETTING", "memory://db")
    value = secretkit.getenv("SK_DATABASE_HOST_SETTING")
    logging.getLogger("sk-env-live").info("value %s", value)
    assert "through-a-reference-1" not in log_output.getvalue()


def test_the_secret_name_markers_can_be_replaced(
    default: SecretStore, monkeypatch: pytest.MonkeyPatch, log_output: io.StringIO
) -> None:
    """set_secret_name_markers adds words that mark a name as secret."""
    monkeypatch.setenv("SK_DATABASE_URL", "postgres://u@db-host-77/app")
    try:
        secretkit.set_secret_name_markers([*secretkit.SECRET_NAME_MARKERS, "DATABASE_URL"])
        url = secretkit.getenv("SK_DATABASE_URL")
    finally:
        secretkit.set_secret_name_markers(secretkit.SECRET_NAME_MARKERS)
    logging.getLogger("sk-env-live").info("db %s", url)
    assert "db-host-77" not in log_output.getvalue()
    assert len("db-host-77") >= MIN_LENGTH


# -- the os.environ read API ---------------------------------------------------------------


def test_environ_keeps_the_os_environ_read_api(default: SecretStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """[], get with and without default, in, iteration, len, keys/items/values, copy and == work."""
    monkeypatch.setenv("SK_API_ONE", "1st")
    env = secretkit.environ
    assert env["SK_API_ONE"] == "1st"
    assert env.get("SK_API_ONE") == "1st"
    assert env.get("SK_API_MISSING") is None
    assert env.get("SK_API_MISSING", "fallback") == "fallback"
    with pytest.raises(KeyError):
        env["SK_API_MISSING"]
    assert "SK_API_ONE" in env and "SK_API_MISSING" not in env
    assert "SK_API_ONE" in list(env) and "SK_API_ONE" in env.keys()
    assert ("SK_API_ONE", "1st") in env.items() and "1st" in env.values()
    assert len(env) == len(os.environ)
    copied = env.copy()  # type: ignore[attr-defined]
    assert type(copied) is dict and copied == dict(os.environ)
    assert env == dict(os.environ)


def test_environ_copy_resolves_references(isolated_default: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """copy() gives a plain dict with references resolved, as a child process would need them."""
    secretkit.configure(backends=[EnvBackend()], reference_backends=[MemoryBackend({"k": "resolved-value"})])
    monkeypatch.setenv("SK_REF_IN_COPY", "memory://k")
    assert secretkit.environ.copy()["SK_REF_IN_COPY"] == "resolved-value"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "write",
    [
        lambda env: env.__setitem__("SK_X", "1"),
        lambda env: env.__delitem__("SK_X"),
        lambda env: env.update({"SK_X": "1"}),
        lambda env: env.pop("SK_X"),
        lambda env: env.setdefault("SK_X", "1"),
        lambda env: env.clear(),
    ],
)
def test_environ_refuses_writes_and_says_where_to_write(write: object) -> None:
    """Writes raise TypeError naming os.environ."""
    with pytest.raises(TypeError, match=r"os\.environ"):
        write(secretkit.environ)  # type: ignore[operator]
