"""Property-based fuzzing of the reference parser (``secretkit._refs``) with hypothesis.

A reference arrives from configuration an attacker may write (an environment variable, a
``.env`` line, a settings default). Whatever text it is, parsing gives a ``SecretRef`` or
raises ``InvalidReference`` - never another exception, never a hang - a parsed path never
walks up with ``..`` however it is encoded, and the error never shows a password or an option
value the text held. Budgets: ``fuzzing.budget``; ``SECRETKIT_FUZZ=long`` for the long run.
"""

from __future__ import annotations

import pickle
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest
from fuzzing import bounded, budget
from hypothesis import example, given, settings
from hypothesis import strategies as st

from secretkit import InvalidReference, SecretRef
from secretkit._refs import parse_reference, reference_scheme

# Pieces that mean something to the parser or to a server that later decodes the path.
ATOMS = [
    *"abcXYZ019_-~",
    "/",
    ".",
    "..",
    "%2e",
    "%2E",
    "%252e",
    "%2f",
    "%5c",
    "%25",
    "%",
    "%zz",
    "\\",
    "#",
    "?",
    "&",
    "=",
    ";",
    "@",
    ":",
    "://",
    "+",
    " ",
    "\t",
    "\n",
    "\x00",
    "\x1b[2K",
    "\u202e",
    "é",
    "😀",
]
SCHEMES = st.sampled_from(["env", "dotenv", "file", "aws-sm", "vault", "gcp-sm", "azure-kv", "sops"]) | (
    st.from_regex(r"[a-z][a-z0-9+.-]{0,8}", fullmatch=True)
)
pieces = st.lists(st.sampled_from(ATOMS), max_size=24).map("".join)
rests = pieces | st.text(max_size=40)
references = st.builds(lambda scheme, rest: f"{scheme}://{rest}", SCHEMES | st.text(max_size=6), rests)
texts = references | st.text(max_size=60)

# A password or option value planted in a reference: alphanumeric, so no parser splits it.
PLANTED = "Zq7PlantedPw9Xk"


def parent_segment_after_decoding(path: str, times: int) -> bool:
    for _ in range(times):
        path = unquote(path)
    return ".." in path.replace("\\", "/").split("/")


def check_parsed(text: str, ref: SecretRef) -> None:
    assert reference_scheme(text) == ref.scheme
    assert ref.path
    # A server decodes a path once, a proxy in front of it maybe once more.
    for times in range(3):
        assert not parent_segment_after_decoding(ref.path, times)
    normalized = ref.normalized_path.split("/")
    assert ".." not in normalized and "." not in normalized
    assert "" not in normalized[1:] or ref.normalized_path in ("", "/")
    if ref.field is not None:
        assert all(ref.field.split("."))
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in ref.options.items())
    assert SecretRef(text) == ref and hash(SecretRef(text)) == hash(ref)
    assert pickle.loads(pickle.dumps(ref)) == ref  # noqa: S301  (our own bytes)


def check_refused(text: str, exc: InvalidReference) -> None:
    message = str(exc)
    # One line, nothing a terminal would act on: the CLI prints this message as it is.
    assert not any(unicodedata.category(c) == "Cc" for c in message), repr(message)
    assert "\u202e" not in message


@settings(max_examples=budget(300))
@given(texts)
@example("vault://secret/%252e%252e/admin")
@example("vault://secret/app/..%5cadmin")
@example("file:///run/secrets/\\..\\etc")
def test_any_text_is_a_reference_or_an_invalid_reference_never_a_crash(text: str) -> None:
    """Whatever text arrives as a reference, parsing gives a sound SecretRef or InvalidReference."""
    with bounded(f"parsing {len(text)} characters"):
        try:
            ref = parse_reference(text)
        except InvalidReference as exc:
            check_refused(text, exc)
        else:
            check_parsed(text, ref)


@settings(max_examples=budget(40))
@given(st.sampled_from(ATOMS), st.integers(1_000, 20_000), SCHEMES)
def test_a_long_reference_is_parsed_in_time_linear_in_its_length(atom: str, count: int, scheme: str) -> None:
    """A reference of thousands of repeated pieces (encodings, separators) is parsed at once."""
    for text in (
        f"{scheme}://{atom * count}",
        f"{scheme}://p?a={atom * count}",
        f"{scheme}://p#{atom * count}",
    ):
        with bounded(f"parsing {atom!r} x {count}"):
            try:
                check_parsed(text, parse_reference(text))
            except InvalidReference as exc:
                check_refused(text, exc)


@settings(max_examples=budget(150))
@given(
    scheme=SCHEMES,
    with_user=st.booleans(),
    path=st.lists(st.sampled_from([a for a in ATOMS if a not in ("#", "?", "://")]), max_size=8).map("".join),
    field=st.none() | st.lists(st.sampled_from([*"ab.", "", "é"]), max_size=4).map("".join),
    options=st.lists(
        st.tuples(
            st.sampled_from(["token", "version", "a", ""]),
            st.booleans(),
            st.sampled_from(["", "&", ";", "=", "%zz"]),
        ),
        min_size=1,
        max_size=4,
    ),
)
@example(scheme="vault", with_user=False, path="secret/app", field=None, options=[("token", True, "&")])
def test_a_malformed_reference_never_shows_a_password_or_option_value_it_holds(
    scheme: str, with_user: bool, path: str, field: str | None, options: list[tuple[str, bool, str]]
) -> None:
    """A credential pasted into a reference's user-info or options stays out of the error about it."""
    user = f"admin:{PLANTED}@" if with_user else ""
    query = "".join(f"{key}={PLANTED if planted else 'v'}{junk}" for key, planted, junk in options)
    text = f"{scheme}://{user}{path}{'' if field is None else '#' + field}?{query}"
    with bounded("parsing a reference"):
        try:
            parse_reference(text)
        except InvalidReference as exc:
            assert PLANTED not in str(exc) and PLANTED not in repr(exc) and PLANTED not in repr(exc.args)


@settings(max_examples=budget(300))
@given(texts)
@example("c://a?#a?")
def test_a_parsed_reference_reads_back_from_its_text_as_the_same_reference(text: str) -> None:
    """``str(ref)`` names the same secret: caches, allow-lists and settings sources re-parse it."""
    try:
        ref = parse_reference(text)
    except InvalidReference:
        return
    assert parse_reference(str(ref)) == ref


segments = st.lists(
    st.sampled_from([*"abcAZ09._- ", "#", "?", "%", "&", "=", "é", "@"]), min_size=1, max_size=6
).map("".join)


@settings(max_examples=budget(200))
@given(
    st.lists(segments, min_size=1, max_size=4),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,12}", fullmatch=True),
)
@example(["srv", "app#2", ".env"], "API_KEY")
def test_a_reference_to_a_dotenv_file_reads_back_as_that_file_and_key(parts: list[str], key: str) -> None:
    """The settings sources build ``dotenv://<file>#KEY`` from a real path: it must name that file."""
    path = "/" + "/".join(parts)
    if any(parent_segment_after_decoding(path, times) for times in range(3)):
        return  # a path that spells '..' is refused on purpose, whatever made it
    ref = SecretRef("dotenv", path, field=key)
    assert parse_reference(str(ref)) == ref


def test_a_secret_from_an_env_file_in_a_directory_named_app_hash_2_is_read_from_that_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_default: None
) -> None:
    """End to end: a settings field read from ``/.../app#2/.env`` names and reads that file.

    The settings source hands the store ``str(SecretRef("dotenv", file, field=KEY))``; written
    unescaped, it re-parsed as the file ``/.../app`` and the field ``2/.env#API_KEY``.
    """
    pytest.importorskip("pydantic_settings")
    from pydantic_settings import SettingsConfigDict

    import secretkit
    from secretkit import Secret
    from secretkit.pydantic import SecretkitSettings

    app = tmp_path / "app#2"
    app.mkdir()
    (app / ".env").write_text(f"API_KEY={PLANTED}\n")
    monkeypatch.delenv("API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    secretkit.configure()

    class Settings(SecretkitSettings):
        model_config = SettingsConfigDict(env_file=app / ".env")
        api_key: Secret[str]

    key = Settings().api_key
    assert key.reveal() == PLANTED
    read_from = parse_reference(key.name)
    assert (read_from.path, read_from.field) == (str(app / ".env"), "API_KEY")
