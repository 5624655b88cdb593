"""A SOPS file is parsed in bounded time and space, whatever it holds: attacks on the parsers.

Someone who can edit a SOPS file but holds no key can still make it hold anything. Each test
starts from a file the real ``sops`` binary wrote, makes one hostile edit, and reads it through
a store whose deadline is generous: the read must end with a clean, documented refusal
(never the deadline, never a crash) and leave the store's SOPS workers free. Before the fix,
the crafted ``ENC[...]`` value took ~120 s per read, and the alias bomb grew a 10^9-node tree.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from secretkit import AccessDenied, BackendUnavailable, ConfigurationError, SecretkitError, SecretStore
from secretkit.backends._sops.formats import MAX_ALIASES, MAX_DEPTH, MAX_NODES
from secretkit.backends.sops import SopsBackend
from sops import conftest as sops_suite

pytest.importorskip("pyrage")
pytest.importorskip("yaml")

# The SOPS suite's fixtures: the real sops binary and this test's own age key.
sops_env = sops_suite.sops_env  # autouse: only this test's age key is visible
age_key, age_flags, key_file, sops = (
    sops_suite.age_key,
    sops_suite.age_flags,
    sops_suite.key_file,
    sops_suite.sops,
)

TOKEN = "parse-test-token-7Hd2"
# Every refusal here takes well under a second; a read still running after this is a hang.
BLOCKED = 20.0


def read(path: Path, field: str = "token") -> BaseException | str:
    """The store's answer for ``sops://path#field``: the value, or the error it raised.

    Run on a thread with a generous wait, so a parser that hangs fails the test instead of the run.
    """
    store = SecretStore([], reference_backends=[SopsBackend()], deadline=BLOCKED, negative_ttl=0)
    box: list[BaseException | str] = []

    def run() -> None:
        try:
            box.append(str(store.get(f"sops://{path}#{field}").reveal()))
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BLOCKED + 5)
    assert not thread.is_alive(), "the read outlived the store's deadline"
    return box[0]


def refused(path: Path, expected: type[SecretkitError], fragment: str) -> None:
    result = read(path)
    assert isinstance(result, expected), result
    # The deadline would be a BackendUnavailable: the refusal must come from the parser instead.
    assert not isinstance(result, BackendUnavailable), result
    assert fragment in str(result), str(result)
    assert TOKEN not in str(result)


def written(sops: Any, age_flags: list[str], tmp_path: Path, fmt: str) -> Path:
    plain = {
        "yaml": f"token: {TOKEN}\ndb:\n    password: nested-pw\n",
        "json": json.dumps({"token": TOKEN, "db": {"password": "nested-pw"}}),
        "dotenv": f"token={TOKEN}\n",
        "ini": f"[app]\nkey = v\n[secrets]\ntoken = {TOKEN}\n",
    }[fmt]
    return sops.encrypt(tmp_path / f"secrets.enc.{fmt}", plain, fmt=fmt, keys=age_flags)


@pytest.mark.parametrize("fmt", ["yaml", "json", "dotenv"])
def test_the_untouched_files_read(sops, age_flags, tmp_path, fmt) -> None:
    """The control: each file, as sops wrote it, reads within the limits."""
    assert read(written(sops, age_flags, tmp_path, fmt)) == TOKEN


def test_a_crafted_enc_value_is_refused_without_backtracking(sops, age_flags, tmp_path) -> None:
    """A 6 KB ``ENC[AES256_GCM,data:,iv:,tag:,type:...`` value is refused at once.

    The pattern ``data:(.+),iv:(.+),tag:(.+),type:(.+)`` backtracked ~n^4: 3.3 KB took ~7 s,
    6 KB ~120 s, per read, holding a worker the whole time.
    """
    path = written(sops, age_flags, tmp_path, "yaml")
    crafted = "ENC[AES256_GCM,data:" + ",iv:,tag:,type:" * 400
    text = re.sub(r"^token: ENC\[.*\]$", f'token: "{crafted}"', path.read_text(), flags=re.M)
    path.write_text(text)
    refused(path, AccessDenied, "is not in sops's ENC[AES256_GCM,...] form")


def test_a_crafted_mac_is_refused_without_backtracking(sops, age_flags, tmp_path) -> None:
    """The MAC goes through the same pattern: a crafted one is refused at once too."""
    path = written(sops, age_flags, tmp_path, "yaml")
    crafted = "ENC[AES256_GCM,data:" + ",iv:,tag:,type:" * 400
    path.write_text(re.sub(r"^(\s+mac: ).*$", rf'\g<1>"{crafted}"', path.read_text(), flags=re.M))
    refused(path, AccessDenied, "MAC")


def _alias_bomb(levels: int = 10) -> str:
    # ~1.5 KB: each level is a list of ten aliases of the level below, 10^10 nodes at the top.
    lines = ['laughs0: &laughs0 "lol-lol-lol-lol-lol-lol-lol-lol-lol-lol"']
    for level in range(1, levels + 1):
        lines.append(f"laughs{level}: &laughs{level} [" + ", ".join([f"*laughs{level - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_at_once(sops, age_flags, tmp_path) -> None:
    """A 1.5 KB billion-laughs edit is refused from the parser's events, before any tree is walked."""
    path = written(sops, age_flags, tmp_path, "yaml")
    bomb = _alias_bomb()
    assert len(bomb) < 2000
    path.write_text(bomb + path.read_text())
    refused(path, ConfigurationError, f"more than {MAX_NODES} values (aliases expanded)")


def test_a_recursive_yaml_alias_is_refused(sops, age_flags, tmp_path) -> None:
    """``a: &a [*a]`` would build a cycle that every walk follows forever."""
    path = written(sops, age_flags, tmp_path, "yaml")
    path.write_text("loop: &loop [*loop]\n" + path.read_text())
    refused(path, ConfigurationError, "an alias refers to an anchor not complete before it")


def test_too_many_yaml_aliases_are_refused(sops, age_flags, tmp_path) -> None:
    """Aliases are counted even when each names something small."""
    path = written(sops, age_flags, tmp_path, "yaml")
    many = "one: &one x\nmany: [" + ", ".join(["*one"] * (MAX_ALIASES + 1)) + "]\n"
    path.write_text(many + path.read_text())
    refused(path, ConfigurationError, f"more than {MAX_ALIASES} aliases")


def test_a_deep_alias_is_counted_as_deep_as_it_expands(sops, age_flags, tmp_path) -> None:
    """Two 40-level lists, one aliased inside the other, nest 80 levels once expanded."""
    path = written(sops, age_flags, tmp_path, "yaml")
    deep = "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 40 + "*a" + "]" * 40 + "\n"
    path.write_text(deep + path.read_text())
    refused(path, ConfigurationError, f"deeper than {MAX_DEPTH} levels")


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_a_deeply_nested_value_is_refused(sops, age_flags, tmp_path, fmt) -> None:
    """Nesting past MAX_DEPTH is refused before the MAC walk recurses into it (JSON: 100,000 levels)."""
    path = written(sops, age_flags, tmp_path, fmt)
    text = path.read_text()
    if fmt == "yaml":
        path.write_text("deep: " + "[" * 900 + "]" * 900 + "\n" + text)
    else:
        path.write_text('{"deep": ' + "[" * 100_000 + "]" * 100_000 + ", " + text.lstrip()[1:])
    refused(path, ConfigurationError, f"deeper than {MAX_DEPTH} levels")


def test_a_json_file_of_too_many_values_is_refused(sops, age_flags, tmp_path) -> None:
    """A JSON list of 200,000 numbers (400 KB) is refused before it is walked."""
    path = written(sops, age_flags, tmp_path, "json")
    path.write_text('{"many": [' + ",".join(["1"] * 200_000) + "], " + path.read_text().lstrip()[1:])
    refused(path, ConfigurationError, f"more than {MAX_NODES} values")


def test_a_dotenv_metadata_list_index_cannot_fill_memory(sops, age_flags, tmp_path) -> None:
    """``sops_age__list_999999999__map_enc=x`` would have appended a billion empty slots."""
    path = written(sops, age_flags, tmp_path, "dotenv")
    path.write_text(path.read_text() + "sops_age__list_999999999__map_enc=x\n")
    refused(path, ConfigurationError, "its sops metadata entries do not form one tree")


def test_conflicting_dotenv_metadata_entries_are_refused_not_crashed(sops, age_flags, tmp_path) -> None:
    """A metadata key both a list and a map (``age__list_0`` and ``age__map_x``) is a clean refusal."""
    path = written(sops, age_flags, tmp_path, "dotenv")
    path.write_text(path.read_text() + "sops_age__map_x=y\n")
    refused(path, ConfigurationError, "its sops metadata entries do not form one tree")


def test_an_ini_run_of_spaces_cannot_make_configparser_quadratic(sops, age_flags, tmp_path) -> None:
    """A 500 KB run of spaces in an INI line is refused: configparser's option pattern took 8 s on 40 KB."""
    path = written(sops, age_flags, tmp_path, "ini")
    path.write_text(path.read_text() + "[x]\na" + " " * 500_000 + "b\n")
    refused(path, ConfigurationError, "runs of spaces too long")


@pytest.mark.parametrize(
    ("value", "expected", "fragment"),
    [
        # Plain text in YAML 1.2 (as sops reads it): read at once, then refused as unencrypted.
        (":".join(["1"] + ["2"] * 300_000), AccessDenied, "is not in sops's ENC[AES256_GCM,...] form"),
        ("!!int " + ":".join(["1"] + ["2"] * 300_000), ConfigurationError, "not valid YAML"),
        ("1" * 5000, ConfigurationError, "a number too long to read"),
    ],
    ids=["base-60", "tagged base-60", "5000 digits"],
)
def test_a_yaml_number_is_read_in_linear_time(sops, age_flags, tmp_path, value, expected, fragment) -> None:
    """YAML 1.1 base-60 integers (``1:2:2:...``) cost PyYAML quadratic time; 900 KB would take minutes."""
    path = written(sops, age_flags, tmp_path, "yaml")
    path.write_text(f"number: {value}\n" + path.read_text())
    refused(path, expected, fragment)


def test_no_hostile_edit_blocks_the_next_read(sops, age_flags, tmp_path) -> None:
    """After the hostile files above, the same store still reads a good file: no worker was left busy."""
    good = written(sops, age_flags, tmp_path, "yaml")
    hostile = tmp_path / "hostile.enc.yaml"
    hostile.write_text(_alias_bomb() + good.read_text())
    store = SecretStore([], reference_backends=[SopsBackend()], deadline=BLOCKED, negative_ttl=0)
    attempts: list[Callable[[], Any]] = [
        lambda i=i: store.get(f"sops://{hostile}#token{i}") for i in range(12)
    ]
    for attempt in attempts:
        with pytest.raises(ConfigurationError):
            attempt()
    assert store.get(f"sops://{good}#token").reveal() == TOKEN
