"""`secretkit run` masks a child's output by log redaction's rule, not only what it resolved.

The attack: a deployment keeps `API_KEY` plain in an `--env-file` (or the environment) and a
command echoes it, or prints a connection URL, into CI logs. Log redaction would mask the key
(its name holds `KEY`) and the URL's password; the child's output must too. Each test runs a
real child process through `python -m secretkit run`.
"""

from __future__ import annotations

import logging
import secrets
import sys
from pathlib import Path

import pytest

import secretkit
from secretkit.backends import EnvBackend
from test_cli import clean_env, run_cli

PY = sys.executable


def unique(label: str) -> str:
    """A value no other test registered, so only this test's reads decide whether it is masked."""
    return f"{label}-{secrets.token_hex(6)}"


@pytest.fixture
def work(tmp_path: Path) -> Path:
    path = tmp_path / "work"
    path.mkdir()
    return path


def test_a_secret_named_variable_from_an_env_file_is_masked_when_the_child_echoes_it(
    tmp_path: Path, work: Path
) -> None:
    """`run --env-file .env -- sh -c 'echo $API_KEY'` prints a mask; configuration beside it shows."""
    key = unique("sk-live")
    (work / ".env").write_text(f"API_KEY={key}\nPORT=8080\nAPP_ENV=production\n")
    result = run_cli(
        "run",
        "--env-file",
        ".env",
        "--",
        "sh",
        "-c",
        "echo $API_KEY $PORT $APP_ENV",
        env=clean_env(tmp_path / "home"),
        cwd=work,
        secrets=[key],
    )
    assert result.code == 0, result.describe()
    result.assert_no_secret()
    assert result.out == "********** 8080 production\n", result.describe()


def test_a_secret_named_variable_inherited_from_the_environment_is_masked(tmp_path: Path, work: Path) -> None:
    """A `GITHUB_TOKEN` the calling shell exported, printed on stdout and stderr, shows a mask."""
    token = unique("ghp")
    env = clean_env(tmp_path / "home", GITHUB_TOKEN=token, REGION="eu-west-1")
    code = (
        "import os, sys; t = os.environ['GITHUB_TOKEN']\n"
        "print(t, os.environ['REGION']); print(t, file=sys.stderr)"
    )
    result = run_cli("run", "--", PY, "-c", code, env=env, cwd=work, secrets=[token])
    assert result.code == 0, result.describe()
    result.assert_no_secret()
    assert result.out == "********** eu-west-1\n", result.describe()
    assert result.err == "**********\n", result.describe()


def test_a_urls_password_is_masked_whatever_the_variables_name(tmp_path: Path, work: Path) -> None:
    """`DATABASE_URL=postgres://app:PW@db/app` printed shows its host and user, not its password."""
    password = unique("url-pw")
    (work / ".env").write_text(f"DATABASE_URL=postgres://app:{password}@db.internal:5432/app\n")
    code = "import os; print(os.environ['DATABASE_URL'])"
    result = run_cli(
        "run", "--env-file", ".env", "--", PY, "-c", code, env=clean_env(tmp_path / "home"), cwd=work
    )
    assert result.code == 0, result.describe()
    assert password not in result.out
    assert result.out == "postgres://app:**********@db.internal:5432/app\n", result.describe()


def test_run_and_log_redaction_mask_the_same_variables(
    tmp_path: Path, work: Path, monkeypatch: pytest.MonkeyPatch, isolated_default: None
) -> None:
    """One rule: a variable's value is masked in a child's output exactly when a log record of it is."""
    values = {
        "API_KEY": unique("key"),
        "DB_PASSWORD": unique("pw"),
        "SESSION_SECRET": unique("sess"),
        "stripe_token": unique("tok"),  # markers match whatever the case
        "APP_ENV": unique("production"),
        "LISTEN_PORT": unique("8080"),
        "GREETING": unique("hello"),
    }
    # Log redaction: each variable read through secretkit.getenv, then logged.
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    secretkit.configure(backends=[EnvBackend()])
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    logger = logging.getLogger("secretkit-test-run-rule")
    logger.addHandler(handler := Keep())
    logger.propagate = False
    previous = logging.getLogRecordFactory()
    secretkit.redact_logs()
    try:
        for name in values:
            logger.warning("%s=%s", name, secretkit.getenv(name))
    finally:
        logger.removeHandler(handler)
        logging.setLogRecordFactory(previous)
    masked_in_logs = {line.split("=", 1)[0] for line in records if line.endswith("=**********")}

    # secretkit run: the same variables, from an --env-file, printed by the child.
    (work / "vars.env").write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    code = "import os, sys\nfor name in sys.argv[1:]:\n    print(f'{name}={os.environ[name]}')\n"
    result = run_cli(
        "run", "--env-file", "vars.env", "--", PY, "-c", code, *values,
        env=clean_env(tmp_path / "home"), cwd=work,
    )  # fmt: skip
    assert result.code == 0, result.describe()
    masked_in_run = {
        line.split("=", 1)[0] for line in result.out.splitlines() if line.endswith("=**********")
    }

    assert masked_in_logs == {"API_KEY", "DB_PASSWORD", "SESSION_SECRET", "stripe_token"}
    assert masked_in_run == masked_in_logs
