"""The near-miss helpers of _refs: which scheme a mistyped reference meant, and what is no reference."""

from __future__ import annotations

from pathlib import Path

import pytest

from secretkit import InvalidReference, SecretNotFound, SecretStore
from secretkit._refs import closest_scheme, near_miss
from secretkit._registry import known_schemes
from secretkit.backends import EnvBackend
from test_cli import clean_env, run_cli


@pytest.mark.parametrize(
    ("value", "written", "meant"),
    [
        ("aws-sn://prod/db#password", "aws-sn", "aws-sm"),
        ("AWS-SM://prod/db", "AWS-SM", "aws-sm"),
        ("aws_sm://prod/db", "aws_sm", "aws-sm"),
        ("aws-sm:/prod/db", "aws-sm", "aws-sm"),
        ("Vault://secret/app#token", "Vault", "vault"),
        ("vualt://secret/app#token", "vualt", "vault"),
    ],
)
def test_a_mistyped_scheme_is_a_near_miss_naming_the_scheme_meant(
    value: str, written: str, meant: str
) -> None:
    """Case, '_' for '-', one letter off, a slash missing: each names the scheme it was meant to be."""
    assert near_miss(value, known_schemes()) == (written, meant)


@pytest.mark.parametrize(
    "value",
    [
        "aws-sm://prod/db#password",
        "postgres://app:pw@db/app",
        "https://example.com/x",
        "redis://cache:6379",
        "host:5432",
        "env:production",
        "note:/tmp/x",
        "plain-value",
    ],
)
def test_a_reference_or_a_plain_value_is_no_near_miss(value: str) -> None:
    """A well-formed reference, another protocol's URL or a value with a colon is left alone."""
    assert near_miss(value, known_schemes()) is None


def test_closest_scheme_compares_case_insensitively_and_refuses_far_guesses() -> None:
    """AWS-SM is aws-sm; postgres is nothing secretkit serves."""
    assert closest_scheme("AWS-SM", ["aws-sm", "vault"]) == "aws-sm"
    assert closest_scheme("postgres", ["aws-sm", "vault"]) is None


@pytest.mark.parametrize("value", ["aws-sn://prod/db#password", "AWS-SM://prod/db", "aws-sm:/prod/db"])
def test_a_variable_holding_a_mistyped_reference_is_an_error_not_the_value(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`DB_PASSWORD=aws-sn://...` is refused naming the scheme meant, never served as the password."""
    monkeypatch.setenv("SK_NEAR_MISS_PASSWORD", value)
    store = SecretStore(backends=[EnvBackend()])
    with pytest.raises(InvalidReference, match="aws-sm://") as caught:
        store.get("SK_NEAR_MISS_PASSWORD")
    assert "prod/db" not in str(caught.value)
    assert caught.value.name == "SK_NEAR_MISS_PASSWORD"


def test_a_url_or_a_reference_in_a_variable_is_still_served(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SK_NEAR_MISS_URL", "postgres://app:pw@db/app")
    monkeypatch.setenv("SK_NEAR_MISS_TARGET", "the-target-value")
    monkeypatch.setenv("SK_NEAR_MISS_REF", "env://SK_NEAR_MISS_TARGET")
    store = SecretStore(backends=[EnvBackend()])
    assert store.get("SK_NEAR_MISS_URL").reveal() == "postgres://app:pw@db/app"
    assert store.get("SK_NEAR_MISS_REF").reveal() == "the-target-value"


def test_a_variable_whose_reference_is_not_found_names_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """ "DB_PASSWORD not found" misleads when the variable is set: the message says what it holds."""
    monkeypatch.setenv("SK_NEAR_MISS_HOLDER", "env://SK_NEAR_MISS_NOWHERE")
    monkeypatch.delenv("SK_NEAR_MISS_NOWHERE", raising=False)
    store = SecretStore(backends=[EnvBackend()])
    with pytest.raises(SecretNotFound, match="env://SK_NEAR_MISS_NOWHERE"):
        store.get("SK_NEAR_MISS_HOLDER")


def test_run_refuses_a_mistyped_reference_instead_of_passing_it_on(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home", DB_PASSWORD="aws-sn://prod/app/db#password")
    result = run_cli("run", "--", "sh", "-c", "echo started", env=env, cwd=tmp_path)
    assert result.code == 5, result.describe()
    assert "started" not in result.out
    assert "aws-sm://" in result.err
