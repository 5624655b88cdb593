"""Reference parsing: ``scheme://path#field?options``."""

from __future__ import annotations

import pytest

from secretkit import InvalidReference, SecretRef
from secretkit._refs import parse_reference, reference_scheme


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


def test_reference_scheme_checks_shape_only() -> None:
    """postgres:// URLs are reference-shaped; whether the scheme is known is decided elsewhere."""
    assert reference_scheme("vault://x") == "vault"
    assert reference_scheme("postgres://u:p@h/db") == "postgres"
    assert reference_scheme("plain value") is None


def test_one_argument_parses_a_whole_reference() -> None:
    """SecretRef("scheme://path#field?opts") equals the reference built from parts."""
    assert SecretRef("aws-sm://prod/stripe#api_key?stage=AWSCURRENT") == SecretRef(
        "aws-sm", "prod/stripe", "api_key", {"stage": "AWSCURRENT"}
    )
    with pytest.raises(InvalidReference):
        SecretRef("not a reference")
    with pytest.raises(TypeError):
        SecretRef("vault://x", field="y")


@pytest.mark.parametrize(
    ("path", "field", "text"),
    [
        ("/srv/app#2/.env", "API_KEY", "dotenv:///srv/app%232/.env#API_KEY"),
        ("secret/a?b", "x?", "vault://secret/a%3Fb#x%3F"),
        ("secret/100%23", None, "vault://secret/100%2523"),
        ("/run/secrets/a%20b", None, "file:///run/secrets/a%20b"),
        ("secret/a%2fb", "50%", "vault://secret/a%2fb#50%"),
    ],
)
def test_str_escapes_only_what_would_split_the_reference(path: str, field: str | None, text: str) -> None:
    """'#', '?' (and '%' before 23, 25, 3F) are escaped in str(ref); every other %xx reads as written."""
    ref = SecretRef("x", path, field)
    assert str(ref) == f"x://{text.split('://', 1)[1]}"
    assert parse_reference(text) == ref.replace(scheme=text.split("://", 1)[0])


def test_an_escaped_parent_segment_is_still_refused() -> None:
    """'%25' now reads as '%', so '%252e%252e' is '%2e%2e' once read: still a '..' a server decodes."""
    for text in ("vault://secret/%252e%252e/admin", "vault://secret/%25252e%25252e/admin"):
        with pytest.raises(InvalidReference, match=r"'\.\.' segment"):
            parse_reference(text)


@pytest.mark.parametrize(
    "text",
    [
        "vault://secret/app?token=hunter2-opt&",
        "vault://secret/app?token=hunter2-opt&junk",
        "vault://secret/app#f?token=hunter2-opt&&",
        "token=hunter2-opt://x",
        "a:hunter2-opt@h://x",
    ],
)
def test_an_invalid_reference_error_never_shows_an_option_value_or_a_pasted_secret(text: str) -> None:
    """The error about a malformed reference names what is wrong, never the values it holds."""
    with pytest.raises(InvalidReference) as info:
        parse_reference(text)
    assert "hunter2" not in str(info.value) and "hunter2" not in repr(info.value.args)


def test_a_mistyped_scheme_is_named() -> None:
    """A scheme-shaped word before '://' is shown, so the typo is plain."""
    with pytest.raises(InvalidReference, match="the scheme 'AWS_SM'"):
        parse_reference("AWS_SM://prod/db")
