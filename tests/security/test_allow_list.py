"""One allow-list, one answer (issue 22, item 18): the store, the settings sources and the CLI agree.

The attack: a reference written another way (``./`` and ``//`` segments, ``..``, percent-encoding,
an upper-case scheme) is tried on each path that checks the allow-list, hoping one of them
admits what another refuses. Each path is driven through its public entry: ``store.get``, a
``SecretkitSettings`` class (a ``Ref`` marker, a variable holding the reference, the plan of
its ``env_file``), ``secretkit get`` and the resolution behind ``secretkit run``/``check``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import pytest
from pydantic_settings import SettingsConfigDict

import secretkit
from secretkit import AccessDenied, ConfigurationError, InvalidReference, SecretRef, SecretStore
from secretkit.backends.env import EnvBackend
from secretkit.backends.memory import MemoryBackend
from secretkit.cli import main
from secretkit.cli._resolve import resolve_all
from secretkit.pydantic import Ref, SecretkitSettings, SecretkitSettingsError, declared_secrets
from secretkit.testing import CountingBackend

VALUE = "allow-list-probe-value-5e21"
ENCODED_VALUE = "allow-list-encoded-dir-value-77c0"
VARIABLE = "SK_ALLOW_PROBE"

Answer = str  # "admitted", "refused" (AccessDenied) or "invalid" (InvalidReference)


def _answer(exc: BaseException | None) -> Answer:
    if isinstance(exc, SecretkitSettingsError):
        exc = next(iter(exc.errors.values()))
    if isinstance(exc, AccessDenied):
        return "refused"
    if isinstance(exc, InvalidReference):
        return "invalid"
    return "admitted"  # a value, or any later failure: the allow-list let it through


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """``app/.env`` holding API_KEY, and a directory literally named ``%61pp`` (``app``, encoded)."""
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "x").mkdir()
    (tmp_path / "app" / ".env").write_text(f"API_KEY={VALUE}\n")
    (tmp_path / "%61pp").mkdir()
    (tmp_path / "%61pp" / ".env").write_text(f"API_KEY={ENCODED_VALUE}\n")
    return tmp_path


@pytest.fixture
def default_store(isolated_default: None) -> Iterator[Callable[[SecretStore], None]]:
    yield secretkit.configure


# -- the four paths --------------------------------------------------------------------------


def via_store(store: SecretStore, key: str) -> Answer:
    try:
        store.get(key)
    except Exception as exc:
        return _answer(exc)
    return "admitted"


def via_settings(store: SecretStore, key: str) -> Answer:
    try:

        class Probe(SecretkitSettings):
            probe: Annotated[str, Ref(key)]

        Probe.from_store(store)
    except Exception as exc:
        return _answer(exc)
    return "admitted"


def via_cli_get(store: SecretStore, key: str) -> Answer:
    secretkit.configure(store)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["get", key])
    return {4: "refused", 2: "invalid"}.get(code, "admitted")


def via_cli_run(store: SecretStore, key: str) -> Answer:
    _, failures = resolve_all(store, [key])
    return _answer(failures.get(key))


PATHS = {"store": via_store, "settings": via_settings, "cli get": via_cli_get, "cli run": via_cli_run}


def _variants(root: Path) -> dict[str, Answer]:
    """References to ``<root>/app/.env#API_KEY`` written other ways, and the one answer each must get."""
    return {
        f"dotenv://{root}/app/.env#API_KEY": "admitted",
        f"dotenv://{root}/./app/.env#API_KEY": "admitted",
        f"dotenv://{root}//app//.env#API_KEY": "admitted",
        f"dotenv://{root}/app/./.env#API_KEY": "admitted",
        # Another file as written (a directory named %61pp), app/.env once decoded: granted only
        # if both are, so a backend that decodes cannot read past the pattern.
        f"dotenv://{root}/%61pp/.env#API_KEY": "refused",
        f"dotenv://{root}/app/x/../.env#API_KEY": "invalid",
        f"dotenv://{root}/app/x/%2e%2e/.env#API_KEY": "invalid",
        # Not a reference (schemes are lower-case): a plain name, which no pattern grants.
        f"DOTENV://{root}/app/.env#API_KEY": "invalid",  # a mistyped scheme, named, on every path
    }


def _patterns(root: Path) -> list[str]:
    """One grant of ``<root>/app/.env`` written five ways: every one must grant the same."""
    return [
        f"dotenv://{root}/app/.env",
        f"dotenv://{root}/./app/.env",
        f"dotenv://{root}//app/.env",
        f"DOTENV://{root}/app/.env",
        f"{root}/app/.env",
    ]


@pytest.mark.parametrize("pattern_at", range(5))
def test_a_reference_written_another_way_gets_one_answer_on_every_path(
    tree: Path, pattern_at: int, default_store: Callable[[SecretStore], None]
) -> None:
    """Each way of writing a reference is admitted, refused or invalid alike by store, settings and CLI."""
    allow = [_patterns(tree)[pattern_at]]
    got = {
        reference: {
            name: path(SecretStore([EnvBackend()], allow=allow), reference) for name, path in PATHS.items()
        }
        for reference in _variants(tree)
    }
    expected = {reference: dict.fromkeys(PATHS, answer) for reference, answer in _variants(tree).items()}
    assert got == expected


@pytest.mark.parametrize("pattern_at", range(5))
def test_a_variable_holding_a_reference_written_another_way_gets_one_answer_on_every_path(
    tree: Path, pattern_at: int, monkeypatch: pytest.MonkeyPatch, default_store: Callable[[SecretStore], None]
) -> None:
    """A variable the allow-list grants cannot widen it, however the reference in it is written."""
    allow = [VARIABLE, _patterns(tree)[pattern_at]]
    got: dict[str, dict[str, Answer]] = {}
    for reference in _variants(tree):
        monkeypatch.setenv(VARIABLE, reference)
        got[reference] = {
            name: path(SecretStore([EnvBackend()], allow=allow), VARIABLE) for name, path in PATHS.items()
        }
    expected = {
        # An upper-case scheme is a mistyped reference: refused as invalid on every path.
        reference: dict.fromkeys(PATHS, answer)
        for reference, answer in _variants(tree).items()
    }
    assert got == expected


@pytest.mark.parametrize(
    "env_file", ["{root}/app/.env", "{root}/./app/.env", "{root}//app/.env", "{root}/%61pp/.env"]
)
@pytest.mark.parametrize("pattern_at", range(5))
def test_the_settings_plan_of_an_env_file_agrees_with_the_store(
    tree: Path, env_file: str, pattern_at: int
) -> None:
    """A settings class plans its env_file's dotenv references exactly when the store admits them."""
    store = SecretStore([EnvBackend()], allow=[_patterns(tree)[pattern_at]])

    class Settings(SecretkitSettings):
        model_config = SettingsConfigDict(env_file=env_file.format(root=tree))
        api_key: str = "default"

    planned = {key for key in declared_secrets(Settings, store)["api_key"] if key.startswith("dotenv://")}
    file = Path(env_file.format(root=tree)).absolute()
    spellings = {str(SecretRef("dotenv", str(file), field=f)) for f in ("API_KEY", "api_key")}
    assert planned in (set(), spellings)
    for reference in spellings:
        assert via_store(store, reference) == ("admitted" if planned else "refused")
    assert ("%61pp" in env_file) == (not planned)


def test_the_issue_example_gets_one_answer() -> None:
    """allow=["vault://secret/./app"] grants vault://secret/app on every path; a #field pattern is refused."""
    vault = CountingBackend(MemoryBackend({"secret/app": VALUE}, scheme="vault"))
    store = SecretStore([], reference_backends=[vault], allow=["vault://secret/./app"])
    assert store.get("vault://secret/app").reveal() == VALUE
    assert via_settings(store, "vault://secret/app") == "admitted"
    assert via_cli_run(store, "vault://secret/app") == "admitted"
    assert via_store(store, "vault://secret/application") == "refused"
    # A pattern naming a #field could match nothing (fields are never matched): refused when
    # the store is built, rather than silently refusing what it meant to grant.
    with pytest.raises(ConfigurationError, match="#field") as info:
        SecretStore([], allow=["dotenv:///app/.env#API_KEY"])
    assert "API_KEY" in str(info.value)
    with pytest.raises(ConfigurationError, match=r"'\.\.'"):
        SecretStore([], allow=["secret/app/../admin/*"])
    with pytest.raises(ConfigurationError, match="list of patterns"):
        SecretStore([], allow="secret/app/*")  # type: ignore[arg-type]


def test_a_refused_reference_builds_no_backend_in_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI asks the allow-list before it builds a reference's backend (and imports its SDK).

    Building the azure-kv backend from this environment fails; a refusal must come first.
    """
    monkeypatch.setenv("AZURE_KEYVAULT_URL", "http://not-https.example")
    store = SecretStore([], allow=["secret/app/*"])
    _, failures = resolve_all(store, ["azure-kv://admin-vault/root"])
    assert isinstance(failures["azure-kv://admin-vault/root"], AccessDenied)
    with pytest.raises(ConfigurationError):
        store.backend_for("azure-kv")
