"""The ``secretkit`` command end to end, in a subprocess: usage, ``get`` and ``check``.

Every test runs ``python -m secretkit`` (or the console script) in a clean environment
and a temporary directory, and checks that no secret value shows in any output unless
``--reveal`` asked for it. ``run`` and ``doctor`` are in test_cli_run.py and test_cli_doctor.py;
the helpers here are shared with them.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from servers.moto_server import free_port
from servers.openbao_server import ROOT_TOKEN, OpenBaoServer

# -- helpers shared by the CLI tests ---------------------------------------------------------

BIN = Path(sys.executable).parent


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """A minimal environment: no cloud or Vault settings of the machine leak into a test."""
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT"}}
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        AWS_CONFIG_FILE=str(home / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(extra)
    return env


def blocker(directory: Path, *modules: str) -> Path:
    """A sitecustomize that makes ``modules`` unimportable in the child process only.

    It simulates a missing extra: the SDK is installed in the test venv, but the child
    behaves as if it were not (``import boto3`` raises ModuleNotFoundError).
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sitecustomize.py").write_text(
        textwrap.dedent(
            f"""
            import sys

            class _Blocker:
                blocked = {tuple(modules)!r}

                def find_spec(self, name, path=None, target=None):
                    if any(name == m or name.startswith(m + ".") for m in self.blocked):
                        raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
                    return None

            sys.meta_path.insert(0, _Blocker())
            """
        )
    )
    return directory


@dataclass
class CliResult:
    code: int
    raw_out: bytes
    raw_err: bytes
    secrets: Sequence[str]

    @property
    def out(self) -> str:
        return self.raw_out.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.raw_err.decode("utf-8", "replace")

    def describe(self) -> str:
        """The result for a failure message, with every known secret value masked."""
        text = f"exit {self.code}\n--- stdout\n{self.out[-3000:]}\n--- stderr\n{self.err[-3000:]}"
        for value in self.secrets:
            text = text.replace(value, "<SECRET>")
        return text

    def assert_no_secret(self) -> None:
        """No secret value given to this run shows in its stdout or stderr."""
        __tracebackhide__ = True
        for value in self.secrets:
            if value in self.out or value in self.err:
                raise AssertionError(
                    f"a secret value ({len(value)} chars) shows in the output:\n{self.describe()}"
                )

    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def run_cli(
    *args: str,
    env: dict[str, str],
    cwd: Path,
    secrets: Sequence[str] = (),
    timeout: float = 60,
    script: bool = False,
    stdin: int | None = subprocess.DEVNULL,
) -> CliResult:
    """Run ``python -m secretkit ARGS`` (or the ``secretkit`` console script) and collect the result."""
    command = [str(BIN / "secretkit")] if script else [sys.executable, "-m", "secretkit"]
    proc = subprocess.run(
        [*command, *args], cwd=cwd, env=env, capture_output=True, timeout=timeout, stdin=stdin
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr, list(secrets))


def assert_one_error_line(result: CliResult, *fragments: str) -> None:
    """stderr is exactly one ``secretkit...: error: ...`` line, containing ``fragments``, no traceback."""
    lines = result.error_lines()
    assert len(lines) == 1, result.describe()
    assert lines[0].startswith("secretkit") and ": error: " in lines[0], result.describe()
    assert "Traceback" not in result.err, result.describe()
    for fragment in fragments:
        assert fragment in lines[0], result.describe()


# -- fixtures ----------------------------------------------------------------------------------

DB_PASSWORD = "pw-Zq8!vY3-db-secret"
API_KEY = "sk_live_cli_test_0123456789abcdef"
JSON_SECRET = '{"username": "app", "password": "json-pw-77x-secret"}'
VAULT_VALUE = "vault-pw-Qm4-secret-value"
AWS_VALUE = "aws-pw-Lk9-secret-value"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """An empty working directory with a few secrets on disk and in a .env."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "db_password").write_text(DB_PASSWORD + "\n")
    (work / "db.json").write_text(JSON_SECRET)
    (work / ".env").write_text(f"API_KEY={API_KEY}\nDB_REF=file://{work}/db_password\n")
    return work


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path / "home")


SECRETS = [DB_PASSWORD, API_KEY, "json-pw-77x-secret", VAULT_VALUE, AWS_VALUE]


@pytest.fixture(scope="module")
def bao() -> Iterator[OpenBaoServer]:
    """A real OpenBao dev server, with one KV v2 secret written through hvac."""
    with OpenBaoServer() as server:
        server.client().secrets.kv.v2.create_or_update_secret(
            path="cli/db", secret={"password": VAULT_VALUE}, mount_point="secret"
        )
        yield server


def vault_env(env: dict[str, str], url: str) -> dict[str, str]:
    return {**env, "VAULT_ADDR": url, "VAULT_TOKEN": ROOT_TOKEN}


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connections are refused at once."""
    return f"http://127.0.0.1:{free_port()}"


# -- usage -------------------------------------------------------------------------------------


def test_help_lists_commands_and_exit_codes(workdir: Path, env: dict[str, str]) -> None:
    """`--help` names the four commands and documents the exit codes."""
    result = run_cli("--help", env=env, cwd=workdir)
    assert result.code == 0, result.describe()
    for word in ("get", "run", "check", "doctor", "exit codes", "127"):
        assert word in result.out


def test_console_script_runs_the_same_command(workdir: Path, env: dict[str, str]) -> None:
    """The installed `secretkit` script is the CLI (and prints its version)."""
    result = run_cli("--version", env=env, cwd=workdir, script=True)
    assert result.code == 0, result.describe()
    assert result.out.startswith("secretkit ")


def test_unknown_command_is_a_usage_error(workdir: Path, env: dict[str, str]) -> None:
    """A subcommand that does not exist exits 2 with one line naming the valid ones."""
    result = run_cli("fetch", "API_KEY", env=env, cwd=workdir)
    assert result.code == 2, result.describe()
    assert_one_error_line(result, "invalid choice", "'fetch'", "get")


def test_missing_argument_is_a_usage_error(workdir: Path, env: dict[str, str]) -> None:
    """`get` without a name exits 2 with one line."""
    result = run_cli("get", env=env, cwd=workdir)
    assert result.code == 2, result.describe()
    assert_one_error_line(result, "NAME|REF")


def test_no_command_is_a_usage_error(workdir: Path, env: dict[str, str]) -> None:
    """Running `secretkit` with no command exits 2."""
    result = run_cli(env=env, cwd=workdir)
    assert result.code == 2, result.describe()
    assert_one_error_line(result, "COMMAND")


# -- get ---------------------------------------------------------------------------------------


def test_get_shows_metadata_not_the_value(workdir: Path, env: dict[str, str]) -> None:
    """`get NAME` prints name, source, version and fetch time, and a mask instead of the value."""
    result = run_cli("get", "API_KEY", env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 0, result.describe()
    result.assert_no_secret()
    fields = dict(line.split(":", 1) for line in result.out.splitlines())
    assert fields["name"].strip() == "API_KEY"
    assert fields["source"].strip() == "dotenv"
    assert fields["version"].strip() == "-"
    assert fields["fetched_at"].strip()
    assert "**********" in fields["value"]


def test_get_json_has_metadata_only(workdir: Path, env: dict[str, str]) -> None:
    """`get --json` is one JSON object with the metadata and no value."""
    result = run_cli("get", "DB_REF", "--json", env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 0, result.describe()
    result.assert_no_secret()
    data = json.loads(result.out)
    assert data["name"] == "DB_REF"
    assert data["source"] == "file"  # the .env entry is a reference to a secret file
    assert data["type"] == "str"
    assert "value" not in data


def test_get_reveal_prints_the_value_alone(workdir: Path, env: dict[str, str]) -> None:
    """`get --reveal` prints the value and a newline, nothing else (for `$(secretkit get ...)`)."""
    result = run_cli("get", "DB_REF", "--reveal", env=env, cwd=workdir)
    assert result.code == 0, result.describe()
    assert result.raw_out == (DB_PASSWORD + "\n").encode()
    assert result.err == ""


def test_get_reveal_json_includes_the_value(workdir: Path, env: dict[str, str]) -> None:
    """`get --reveal --json` adds the value to the metadata."""
    result = run_cli("get", f"file://{workdir}/db.json#password", "--reveal", "--json", env=env, cwd=workdir)
    assert result.code == 0, result.describe()
    data = json.loads(result.out)
    assert data["value"] == "json-pw-77x-secret"
    assert data["source"] == "file"


def test_get_reveal_of_binary_is_byte_exact(workdir: Path, env: dict[str, str]) -> None:
    """A binary secret comes out byte for byte with --reveal, and base64 in --json."""
    payload = b"\x00\xff\xfebinary-key\x80"
    (workdir / "key.der").write_bytes(payload)
    raw = run_cli("get", f"file://{workdir}/key.der", "--reveal", env=env, cwd=workdir)
    assert raw.code == 0, raw.describe()
    assert raw.raw_out == payload
    as_json = run_cli("get", f"file://{workdir}/key.der", "--reveal", "--json", env=env, cwd=workdir)
    data = json.loads(as_json.out)
    assert (data["encoding"], base64.b64decode(data["value"])) == ("base64", payload)


def test_get_follows_a_reference_held_in_the_environment(workdir: Path, env: dict[str, str]) -> None:
    """A variable holding a reference resolves to the secret it points to."""
    env = {**env, "DB_PASSWORD": f"file://{workdir}/db.json#password"}
    result = run_cli("get", "DB_PASSWORD", "--reveal", env=env, cwd=workdir)
    assert result.code == 0, result.describe()
    assert result.out == "json-pw-77x-secret\n"


def test_get_not_found_exits_1_with_one_line(workdir: Path, env: dict[str, str]) -> None:
    """A name no backend has exits 1 with one line naming the backends tried."""
    result = run_cli("get", "NO_SUCH_SECRET", env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 1, result.describe()
    assert_one_error_line(result, "NO_SUCH_SECRET", "not found", "env, dotenv, file")
    assert result.out == ""
    result.assert_no_secret()


def test_get_missing_json_field_shows_no_value(workdir: Path, env: dict[str, str]) -> None:
    """A #field absent from a JSON secret exits 1, and the message does not quote the secret."""
    result = run_cli("get", f"file://{workdir}/db.json#nope", env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 1, result.describe()
    assert_one_error_line(result, "nope")
    result.assert_no_secret()


def test_get_unknown_scheme_is_a_usage_error(workdir: Path, env: dict[str, str]) -> None:
    """A reference with a scheme no backend serves exits 2, listing the known schemes."""
    result = run_cli("get", "nosuch://prod/db", env=env, cwd=workdir)
    assert result.code == 2, result.describe()
    assert_one_error_line(result, "'nosuch'", "aws-sm", "vault")


def test_get_malformed_reference_is_a_usage_error(workdir: Path, env: dict[str, str]) -> None:
    """A reference with an empty path exits 2 and says what is wrong."""
    result = run_cli("get", "vault://", env=env, cwd=workdir)
    assert result.code == 2, result.describe()
    assert_one_error_line(result, "path is empty")


def test_debug_adds_the_traceback_without_values(workdir: Path, env: dict[str, str]) -> None:
    """--debug prints the traceback too; it still shows no secret value."""
    result = run_cli(
        "--debug", "get", f"file://{workdir}/db.json#nope", env=env, cwd=workdir, secrets=SECRETS
    )
    assert result.code == 1, result.describe()
    assert "Traceback" in result.err
    assert result.err.rstrip().splitlines()[-1].startswith("secretkit: error: ")
    result.assert_no_secret()


def test_debug_may_follow_the_command_name(workdir: Path, env: dict[str, str]) -> None:
    """`get NAME --debug` works as `--debug get NAME` does."""
    result = run_cli("get", "NO_SUCH_SECRET", "--debug", env=env, cwd=workdir)
    assert result.code == 1, result.describe()
    assert "Traceback" in result.err


def test_a_malformed_env_file_exits_5_naming_the_line(workdir: Path, env: dict[str, str]) -> None:
    """A ./.env line that cannot be parsed exits 5 with the file and line, not the line's content."""
    (workdir / ".env").write_text(f"API_KEY={API_KEY}\nthis line is not KEY=VALUE '{DB_PASSWORD}\n")
    result = run_cli("get", "API_KEY", env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 5, result.describe()
    assert_one_error_line(result, ".env' line 2")
    result.assert_no_secret()


def test_get_from_vault_shows_its_version(bao: OpenBaoServer, workdir: Path, env: dict[str, str]) -> None:
    """A vault:// reference resolves against a real OpenBao server; the KV version is shown."""
    result = run_cli(
        "get",
        "vault://secret/cli/db#password",
        "--json",
        env=vault_env(env, bao.url),
        cwd=workdir,
        secrets=SECRETS,
    )
    assert result.code == 0, result.describe()
    result.assert_no_secret()
    data = json.loads(result.out)
    assert (data["source"], data["version"]) == ("vault", "1")


def limited_token(server: OpenBaoServer) -> str:
    """A token whose policy allows reading another path only."""
    client = server.client()
    client.sys.create_or_update_policy(
        name="cli-elsewhere", policy='path "secret/data/elsewhere/*" { capabilities = ["read"] }'
    )
    token: str = client.auth.token.create(policies=["cli-elsewhere"], ttl="10m")["auth"]["client_token"]
    return token


def test_get_denied_by_vault_exits_4(bao: OpenBaoServer, workdir: Path, env: dict[str, str]) -> None:
    """A token whose policy does not cover the path exits 4 (denied) with one line, no value."""
    env = {**env, "VAULT_ADDR": bao.url, "VAULT_TOKEN": limited_token(bao)}
    result = run_cli("get", "vault://secret/cli/db#password", env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 4, result.describe()
    assert_one_error_line(result, "secret/cli/db")
    result.assert_no_secret()
    check = run_cli(
        "check", "--json", "vault://secret/cli/db#password", env=env, cwd=workdir, secrets=SECRETS
    )
    assert check.code == 1, check.describe()
    assert json.loads(check.out)["secrets"][0]["status"] == "denied"


def test_get_unreachable_vault_exits_3(workdir: Path, env: dict[str, str]) -> None:
    """A Vault address where nothing listens exits 3 (unavailable) with one line."""
    result = run_cli(
        "get",
        "vault://secret/cli/db#password",
        env=vault_env(env, closed_port_url()),
        cwd=workdir,
        timeout=30,
    )
    assert result.code == 3, result.describe()
    assert_one_error_line(result, "vault")


def test_get_unreachable_aws_endpoint_exits_3(workdir: Path, env: dict[str, str]) -> None:
    """An AWS endpoint where nothing listens exits 3 (unavailable) with one line."""
    env = {
        **env,
        "AWS_ENDPOINT_URL": closed_port_url(),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }
    result = run_cli("get", "aws-sm://prod/db#password", env=env, cwd=workdir, timeout=60)
    assert result.code == 3, result.describe()
    assert_one_error_line(result, "aws-sm")


def test_get_with_a_missing_extra_names_the_pip_command(
    tmp_path: Path, workdir: Path, env: dict[str, str]
) -> None:
    """When boto3 cannot be imported, an aws-sm:// reference exits 5 and says what to install."""
    env = {**env, "PYTHONPATH": str(blocker(tmp_path / "block", "boto3", "botocore"))}
    result = run_cli("get", "aws-sm://prod/db#password", env=env, cwd=workdir)
    assert result.code == 5, result.describe()
    assert_one_error_line(result, 'pip install "secretkit[aws]"')


# -- check -------------------------------------------------------------------------------------


def table(result: CliResult) -> dict[str, list[str]]:
    """The rows of `check`'s table by first column (the summary line excluded)."""
    lines = [line.split() for line in result.out.splitlines()[1:-1]]
    return {cells[0]: cells[1:] for cells in lines}


def test_check_reports_each_status_and_fails_on_any(workdir: Path, env: dict[str, str]) -> None:
    """`check` prints one row per secret with its status, and exits 1 when any is missing."""
    result = run_cli("check", "API_KEY", "DB_REF", "MISSING_ONE", env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 1, result.describe()
    result.assert_no_secret()
    rows = table(result)
    assert rows["API_KEY"][:2] == ["ok", "dotenv"]
    assert rows["DB_REF"][:2] == ["ok", "file"]
    assert rows["MISSING_ONE"][:2] == ["not", "found"]
    assert [line for line in result.error_lines() if "MISSING_ONE" in line]


def test_check_passes_when_all_resolve(workdir: Path, env: dict[str, str]) -> None:
    """`check` exits 0 when every secret resolves."""
    result = run_cli("check", "API_KEY", "DB_REF", env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 0, result.describe()
    assert "2 checked: 2 ok, 0 failed" in result.out


def test_check_json_is_machine_readable(workdir: Path, env: dict[str, str]) -> None:
    """`check --json` gives ok plus one object per secret with a status word, never a value."""
    result = run_cli("check", "--json", "API_KEY", "nosuch://x", env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 1, result.describe()
    result.assert_no_secret()
    data = json.loads(result.out)
    assert data["ok"] is False
    statuses = {row["name"]: row["status"] for row in data["secrets"]}
    assert statuses == {"API_KEY": "ok", "nosuch://x": "invalid"}
    assert all("value" not in row for row in data["secrets"])


def test_check_without_names_checks_references_in_the_environment(workdir: Path, env: dict[str, str]) -> None:
    """With no names, `check` checks every variable of the environment and ./.env holding a reference."""
    env = {**env, "BROKEN": f"file://{workdir}/absent", "PLAIN": "not-a-reference"}
    result = run_cli("check", env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 1, result.describe()
    rows = table(result)
    assert set(rows) == {"BROKEN", "DB_REF"}
    assert rows["DB_REF"][0] == "ok"
    assert rows["BROKEN"][:2] == ["not", "found"]


def test_check_with_nothing_to_check_is_a_usage_error(tmp_path: Path, env: dict[str, str]) -> None:
    """With no names and no reference anywhere, `check` exits 2 rather than pass vacuously."""
    result = run_cli("check", env=env, cwd=tmp_path)
    assert result.code == 2, result.describe()
    assert_one_error_line(result, "nothing to check")


def test_check_vault_reports_status_and_version(
    bao: OpenBaoServer, workdir: Path, env: dict[str, str]
) -> None:
    """`check` against a real OpenBao server reports ok with the KV version, and not-found for a typo."""
    result = run_cli(
        "check",
        "--json",
        "vault://secret/cli/db#password",
        "vault://secret/cli/nope#password",
        env=vault_env(env, bao.url),
        cwd=workdir,
        secrets=SECRETS,
    )
    assert result.code == 1, result.describe()
    result.assert_no_secret()
    rows = {row["name"]: row for row in json.loads(result.out)["secrets"]}
    assert rows["vault://secret/cli/db#password"]["status"] == "ok"
    assert rows["vault://secret/cli/db#password"]["version"] == "1"
    assert rows["vault://secret/cli/nope#password"]["status"] == "not_found"


def test_check_unreachable_backend_is_unavailable(workdir: Path, env: dict[str, str]) -> None:
    """A reference to an unreachable Vault is reported `unavailable`, and the check fails."""
    result = run_cli(
        "check",
        "--json",
        "vault://secret/cli/db#password",
        env=vault_env(env, closed_port_url()),
        cwd=workdir,
    )
    assert result.code == 1, result.describe()
    (row,) = json.loads(result.out)["secrets"]
    assert (row["status"], row["source"]) == ("unavailable", "vault")


SETTINGS_MODULE = """
from typing import Annotated

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from secretkit.pydantic import Ref, SecretkitSettings


class PlainSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APP_")

    api_key: SecretStr
    port: int = 8000


class KitSettings(SecretkitSettings):
    db_password: Annotated[SecretStr, Ref("file://{work}/db_password")]
    api_key: SecretStr
    port: int = 8000
    debug: bool = False
"""


@pytest.fixture
def settings_module(workdir: Path) -> str:
    (workdir / "appsettings.py").write_text(SETTINGS_MODULE.format(work=workdir))
    return "appsettings"


def test_check_settings_resolves_every_field(
    settings_module: str, workdir: Path, env: dict[str, str]
) -> None:
    """`check --settings` reports each field: by reference, by name from .env, and defaults."""
    result = run_cli(
        "check",
        "--json",
        "--settings",
        f"{settings_module}:KitSettings",
        env=env,
        cwd=workdir,
        secrets=SECRETS,
    )
    assert result.code == 0, result.describe()
    result.assert_no_secret()
    rows = {row["field"]: row for row in json.loads(result.out)["secrets"]}
    assert rows["db_password"]["status"] == "ok"
    assert rows["db_password"]["source"] == "file"
    assert (rows["api_key"]["status"], rows["api_key"]["source"]) == ("ok", "dotenv")
    assert rows["port"]["status"] == "default"
    assert rows["debug"]["required"] is False


def test_check_settings_with_env_prefix(settings_module: str, workdir: Path, env: dict[str, str]) -> None:
    """A plain BaseSettings class is checked under its env_prefix; a missing required field fails."""
    missing = run_cli("check", "--settings", f"{settings_module}:PlainSettings", env=env, cwd=workdir)
    assert missing.code == 1, missing.describe()
    assert table(missing)["api_key"][1:3] == ["not", "found"]
    present = run_cli(
        "check",
        "--settings",
        f"{settings_module}:PlainSettings",
        env={**env, "APP_API_KEY": API_KEY},
        cwd=workdir,
        secrets=SECRETS,
    )
    assert present.code == 0, present.describe()
    present.assert_no_secret()
    assert table(present)["api_key"][:3] == ["APP_API_KEY", "ok", "env"]


def test_check_settings_reports_a_value_that_fails_validation(
    settings_module: str, workdir: Path, env: dict[str, str]
) -> None:
    """A secret that does not validate as its field's type fails the check, without showing the secret."""
    bad_port = "not-a-port-but-a-secret-7731"
    result = run_cli(
        "check",
        "--settings",
        f"{settings_module}:KitSettings",
        env={**env, "PORT": bad_port},
        cwd=workdir,
        secrets=[*SECRETS, bad_port],
    )
    assert result.code == 1, result.describe()
    result.assert_no_secret()
    assert table(result)["port"][1] == "invalid"
    assert [line for line in result.error_lines() if line.startswith("secretkit: error: port:")]


def test_check_settings_bad_target_is_a_usage_error(
    settings_module: str, workdir: Path, env: dict[str, str]
) -> None:
    """A --settings target that cannot be imported, or is not a settings class, exits 2."""
    no_module = run_cli("check", "--settings", "nosuchmodule:Settings", env=env, cwd=workdir)
    assert no_module.code == 2, no_module.describe()
    assert_one_error_line(no_module, "nosuchmodule")
    not_settings = run_cli("check", "--settings", f"{settings_module}:Ref", env=env, cwd=workdir)
    assert not_settings.code == 2, not_settings.describe()
    assert_one_error_line(not_settings, "not a pydantic-settings BaseSettings class")


def test_check_settings_without_pydantic_settings_names_the_extra(
    tmp_path: Path, settings_module: str, workdir: Path, env: dict[str, str]
) -> None:
    """When pydantic-settings cannot be imported, --settings exits 5 and says what to install."""
    env = {**env, "PYTHONPATH": str(blocker(tmp_path / "block", "pydantic_settings"))}
    result = run_cli("check", "--settings", f"{settings_module}:KitSettings", env=env, cwd=workdir)
    assert result.code == 5, result.describe()
    assert_one_error_line(result, 'pip install "secretkit[pydantic]"')
