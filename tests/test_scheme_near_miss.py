"""The near-miss helpers of _refs: which scheme a mistyped reference meant, and what is no reference."""

from __future__ import annotations

import pytest

from secretkit._refs import closest_scheme, near_miss
from secretkit._registry import known_schemes


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
