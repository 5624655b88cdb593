"""Reference parsing: ``scheme://path#field?options``."""

from __future__ import annotations

import pytest

from secretkit import InvalidReference, SecretRef
from secretkit._refs import looks_like_reference, parse_reference


@pytest.mark.parametrize(
    ("text", "scheme", "path", "field", "options"),
    [
        ("env://API_KEY", "env", "API_KEY", None, {}),
        ("aws-sm://prod/db#password", "aws-sm", "prod/db", "password", {}),
        (
            "vault://secret/app/github#token?version=3",
            "vault",
            "secret/app/github",
            "token",
            {"version": "3"},
        ),
        (
            "aws-sm://prod/db?stage=AWSPREVIOUS&region=eu-west-1#password",
            "aws-sm",
            "prod/db",
            "password",
            {"stage": "AWSPREVIOUS", "region": "eu-west-1"},
        ),
        ("file:///run/secrets/db_password", "file", "/run/secrets/db_password", None, {}),
        ("gcp-sm://projects/p/secrets/s/versions/5", "gcp-sm", "projects/p/secrets/s/versions/5", None, {}),
        (
            "aws-sm://arn:aws:secretsmanager:eu-west-1:123:secret:db-AbC#a.b",
            "aws-sm",
            "arn:aws:secretsmanager:eu-west-1:123:secret:db-AbC",
            "a.b",
            {},
        ),
        (
            "azure-kv://my-vault/db-password?version=abc%20123",
            "azure-kv",
            "my-vault/db-password",
            None,
            {"version": "abc 123"},
        ),
    ],
)
def test_parse(text: str, scheme: str, path: str, field: str | None, options: dict[str, str]) -> None:
    """Each part of a reference lands in its attribute."""
    ref = parse_reference(text)
    assert (ref.scheme, ref.path, ref.field, dict(ref.options)) == (scheme, path, field, options)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("API_KEY", "not a reference"),
        ("AWS-SM://x", "scheme"),
        ("vault://", "path is empty"),
        ("vault://secret/x#", "no field name"),
        ("vault://secret/x#a..b", "empty part"),
        ("vault://secret/x?version", "key=value"),
        ("vault://secret/x?version=1&version=2", "given twice"),
    ],
)
def test_bad_references_say_what_is_wrong(text: str, message: str) -> None:
    """A malformed reference raises InvalidReference that says what to fix."""
    with pytest.raises(InvalidReference, match=message):
        parse_reference(text)


def test_a_non_reference_value_is_not_echoed() -> None:
    """Text that is not shaped like a reference (perhaps a pasted secret) is not shown in the error."""
    with pytest.raises(InvalidReference) as info:
        parse_reference("hunter2-password")
    assert "hunter2" not in str(info.value)


def test_refs_are_hashable_and_immutable() -> None:
    """Equal references hash equal and cannot be changed."""
    a = SecretRef("aws-sm", "prod/db", "password", {"stage": "X"})
    b = parse_reference("aws-sm://prod/db#password?stage=X")
    assert a == b and hash(a) == hash(b)
    assert {a: 1}[b] == 1
    with pytest.raises(AttributeError):
        a.path = "other"  # type: ignore[misc]
    assert a.base == SecretRef("aws-sm", "prod/db", None, {"stage": "X"})


def test_str_round_trips() -> None:
    """str(ref) parses back to the same reference."""
    ref = SecretRef("vault", "secret/app", "a.b", {"version": "3", "x": "a b"})
    assert parse_reference(str(ref)) == ref


def test_looks_like_reference_checks_shape_only() -> None:
    """postgres:// URLs are reference-shaped; whether the scheme is known is decided elsewhere."""
    assert looks_like_reference("vault://x") == "vault"
    assert looks_like_reference("postgres://u:p@h/db") == "postgres"
    assert looks_like_reference("plain value") is None


def test_one_argument_parses_a_whole_reference() -> None:
    """SecretRef("scheme://path#field?opts") equals the reference built from parts."""
    assert SecretRef("aws-sm://prod/stripe#api_key?stage=AWSCURRENT") == SecretRef(
        "aws-sm", "prod/stripe", "api_key", {"stage": "AWSCURRENT"}
    )
    with pytest.raises(InvalidReference):
        SecretRef("not a reference")
    with pytest.raises(TypeError):
        SecretRef("vault://x", field="y")
