"""Property-based fuzzing of the ``.env`` reader (``DotenvBackend``, on python-dotenv) with hypothesis.

A ``.env`` file is a local file an attacker may be able to write (a shared checkout, a
mounted volume). Whatever bytes it holds, reading it gives the keys it defines or a
``ConfigurationError`` that names the file and the line - never another exception, never a
value in the message, never a read that outlives its deadline - and a value written quoted
reads back exactly. Budgets: ``fuzzing.budget``; ``SECRETKIT_FUZZ=long`` for the long run.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzzing import bounded, budget
from hypothesis import example, given, settings
from hypothesis import strategies as st

from secretkit import ConfigurationError, SecretNotFound, SecretRef
from secretkit.backends import DotenvBackend

# A value planted in the files: it must never show in an error.
PLANTED = "Zq7PlantedDotenv9Xk"
# What the .env grammar (and python-dotenv's interpolation) gives a meaning to.
ATOMS = [
    "KEY",
    "K_2",
    "export ",
    "=",
    " ",
    "\t",
    "'",
    '"',
    "\\",
    "\\'",
    '\\"',
    "\\n",
    "#",
    " #",
    "${KEY}",
    "${",
    "}",
    ":-",
    "$",
    "\n",
    "\r\n",
    "\r",
    "\x00",
    "\ufeff",
    "\x1b[2K",
    "é",
    "a",
    "1",
    PLANTED,
]
lines = st.lists(st.sampled_from(ATOMS), max_size=12).map("".join)
texts = st.lists(lines, max_size=8).map("\n".join) | st.text(max_size=80)
contents = texts.map(lambda t: t.encode("utf-8", "surrogatepass")) | st.binary(max_size=80)
keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True)
_serial = itertools.count()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield tmp_path_factory.mktemp("fuzz-dotenv")


def env_file(workdir: Path, content: bytes) -> Path:
    # A new file (and a new backend) per example: the backend's parse cache keys on size and mtime.
    path = workdir / f"{next(_serial)}.env"
    path.write_bytes(content)
    return path


def read_all(path: Path) -> dict[str, str]:
    """Every key of the file, read the way an application reads them (one fetch each)."""
    backend = DotenvBackend(path)
    values = backend.values()
    for key, value in values.items():
        assert isinstance(key, str) and isinstance(value, str)
        assert backend.fetch(SecretRef("dotenv", key)).value == value
    try:
        backend.fetch(SecretRef("dotenv", "NO_SUCH_KEY_IN_ANY_FUZZ_FILE"))
    except SecretNotFound:
        pass
    else:
        raise AssertionError("a key the file does not hold was found")
    return values


@settings(max_examples=budget(120))
@given(contents)
@example(b"KEY='unterminated\nOTHER=" + PLANTED.encode())
@example(b"\xff\xfeKEY=" + PLANTED.encode())
@example(b"KEY=" + PLANTED.encode() + b"\n  'broken line " + PLANTED.encode())
def test_any_dotenv_file_is_read_or_refused_as_misconfigured_never_a_crash(
    workdir: Path, content: bytes
) -> None:
    """Whatever a .env file holds, it is read, or refused with a ConfigurationError that shows no value."""
    path = env_file(workdir, content)
    with bounded(f"reading a {len(content)}-byte .env file"):
        try:
            read_all(path)
        except ConfigurationError as exc:
            assert PLANTED not in str(exc) and PLANTED not in repr(exc.args)
            assert "\x1b" not in str(exc)


def single_quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def double_quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@settings(max_examples=budget(80))
@given(
    st.dictionaries(
        keys,
        st.tuples(
            # '\r' is a line ending to python-dotenv; '$' starts an interpolation in double quotes.
            st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=24),
            st.booleans(),
            st.sampled_from(["", "export "]),
            st.sampled_from(["=", " = ", "=\t"]),
        ),
        max_size=6,
    ),
    st.booleans(),
)
def test_a_quoted_value_reads_back_exactly_as_written(
    workdir: Path, entries: dict[str, tuple[str, bool, str, str]], comments: bool
) -> None:
    """Quotes, backslashes, newlines, '#' and non-ASCII in a quoted value come back as written."""
    written = []
    for key, (value, double, export, equals) in entries.items():
        quoted = double_quoted(value) if double and "$" not in value else single_quoted(value)
        if comments:
            written.append(f"# {key} below")
        written.append(f"{export}{key}{equals}{quoted}")
    path = env_file(workdir, "\n".join(written).encode())
    with bounded("reading a .env file"):
        values = read_all(path)
    assert values == {key: value for key, (value, *_) in entries.items()}


@settings(max_examples=budget(30))
@given(
    st.sampled_from([atom for atom in ATOMS if atom != PLANTED]),
    st.integers(2_000, 16_000),
    st.sampled_from(["{}", "K={}", "K='{}'", 'K="{}"', "K=a{}b", "{}=v"]),
)
def test_a_dotenv_file_of_repeated_constructs_is_read_in_time(
    workdir: Path, atom: str, count: int, template: str
) -> None:
    """Thousands of repeats of one construct (a quote, an escape, '${') are read well within the bound."""
    path = env_file(workdir, template.format(atom * count).encode())
    with bounded(f"reading {atom!r} x {count}", seconds=3):
        try:
            read_all(path)
        except ConfigurationError:
            pass


@pytest.mark.parametrize(
    "content",
    [
        pytest.param("K=" + "${" * 20_000 + "\n", id="interpolation-of-20000-openers"),
        # Found by fuzzing: python-dotenv strips an inline comment with r'\s+#.*', quadratic in a
        # run of spaces (parser.parse_unquoted_value); DotenvBackend refuses long runs first.
        pytest.param("K=a" + " " * 200_000 + "b\n", id="unquoted-value-with-200000-spaces"),
    ],
)
def test_a_crafted_dotenv_line_is_read_in_time(workdir: Path, content: str) -> None:
    """A 40-200 KB line (under the 1 MB file cap) is read, or refused, in milliseconds, not minutes."""
    path = env_file(workdir, content.encode())
    with bounded(f"reading a crafted {len(content)}-byte .env file", seconds=3):
        try:
            read_all(path)
        except ConfigurationError:
            pass
