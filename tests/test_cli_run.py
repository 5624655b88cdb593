"""``secretkit run``: references resolved into a child's environment, signals, exit codes, masking.

End to end in a subprocess; the output masker is also tested directly, at every chunk split.
"""

from __future__ import annotations

import hashlib
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretkit import cli
from secretkit._redact import StreamRedactor
from servers.openbao_server import OpenBaoServer
from test_cli import (
    API_KEY,
    DB_PASSWORD,
    SECRETS,
    VAULT_VALUE,
    assert_one_error_line,
    blocker,
    clean_env,
    closed_port_url,
    run_cli,
    vault_env,
)

PY = sys.executable


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# A child that prints, for each variable named on its command line, a digest of its value:
# the test learns what the child received without the value ever being printed.
DIGESTS = (
    "import hashlib, os, sys\n"
    "for name in sys.argv[1:]:\n"
    "    value = os.environ.get(name)\n"
    "    print(name, 'unset' if value is None else hashlib.sha256(value.encode()).hexdigest())\n"
)


def digests(out: str) -> dict[str, str]:
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "db_password").write_text(DB_PASSWORD + "\n")
    (work / "db.json").write_text('{"username": "app", "password": "json-pw-77x-secret"}')
    return work


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path / "home")


# -- the environment ---------------------------------------------------------------------------


def test_references_in_the_environment_reach_the_child_resolved(workdir: Path, env: dict[str, str]) -> None:
    """Each variable holding a reference is replaced by its secret in the child's environment."""
    env = {
        **env,
        "DB_PASSWORD": f"file://{workdir}/db_password",
        "DB_USER": f"file://{workdir}/db.json#username",
        "PLAIN": "plain-value",
    }
    result = run_cli(
        "run", "--", PY, "-c", DIGESTS, "DB_PASSWORD", "DB_USER", "PLAIN",
        env=env, cwd=workdir, secrets=SECRETS,
    )  # fmt: skip
    assert result.code == 0, result.describe()
    result.assert_no_secret()
    assert digests(result.out) == {
        "DB_PASSWORD": digest(DB_PASSWORD),
        "DB_USER": digest("app"),
        "PLAIN": digest("plain-value"),
    }


def test_env_file_values_reach_the_child_and_the_file_is_unchanged(
    workdir: Path, env: dict[str, str]
) -> None:
    """--env-file adds its entries (references resolved) to the child; the file's bytes stay the same."""
    env_file = workdir / "deploy.env"
    env_file.write_text(f"API_KEY={API_KEY}\nDB_PASSWORD=file://{workdir}/db_password\n")
    before = env_file.read_bytes()
    result = run_cli(
        "run", "--env-file", str(env_file), "--", PY, "-c", DIGESTS, "API_KEY", "DB_PASSWORD",
        env=env, cwd=workdir, secrets=SECRETS,
    )  # fmt: skip
    assert result.code == 0, result.describe()
    assert digests(result.out) == {"API_KEY": digest(API_KEY), "DB_PASSWORD": digest(DB_PASSWORD)}
    assert env_file.read_bytes() == before


def test_a_later_env_file_wins_over_the_environment(workdir: Path, env: dict[str, str]) -> None:
    """An --env-file entry overrides the inherited variable, and a later file overrides an earlier one."""
    (workdir / "a.env").write_text("MODE=from-a\n")
    (workdir / "b.env").write_text("MODE=from-b\n")
    result = run_cli(
        "run", "--env-file", "a.env", "--env-file", "b.env", "--", PY, "-c", DIGESTS, "MODE",
        env={**env, "MODE": "inherited"}, cwd=workdir,
    )  # fmt: skip
    assert digests(result.out) == {"MODE": digest("from-b")}, result.describe()


def test_values_of_unknown_schemes_pass_through_unchanged(workdir: Path, env: dict[str, str]) -> None:
    """`postgres://...` or `nosuch://...` are plain values, not references: the child gets them as is."""
    env = {**env, "DATABASE_URL": "postgres://app:pw@db:5432/app", "OTHER": "nosuch://thing"}
    result = run_cli("run", "--", PY, "-c", DIGESTS, "DATABASE_URL", "OTHER", env=env, cwd=workdir)
    assert result.code == 0, result.describe()
    assert digests(result.out) == {
        "DATABASE_URL": digest("postgres://app:pw@db:5432/app"),
        "OTHER": digest("nosuch://thing"),
    }


def test_the_parent_environment_is_not_changed(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """After `run`, the calling process still holds the reference, not the secret."""
    reference = f"file://{workdir}/db_password"
    monkeypatch.setenv("DB_PASSWORD", reference)
    monkeypatch.chdir(workdir)
    from secretkit import _api

    previous = _api._swap(None)  # a fresh default store for this in-process run
    try:
        code = cli.main(["run", "--no-mask", "--", PY, "-c", DIGESTS, "DB_PASSWORD"])
    finally:
        current = _api._swap(previous)
        if current is not None:
            current.close()
    assert code == 0
    assert os.environ["DB_PASSWORD"] == reference
    assert digests(capfd.readouterr().out) == {"DB_PASSWORD": digest(DB_PASSWORD)}


def test_the_child_joins_the_callers_trace(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], isolated_default: None
) -> None:
    """Run inside an OpenTelemetry span, the child gets TRACEPARENT naming that span (W3C trace context)."""
    from opentelemetry.sdk.trace import TracerProvider

    monkeypatch.chdir(workdir)
    monkeypatch.delenv("TRACEPARENT", raising=False)
    child = "import os; print(os.environ.get('TRACEPARENT', 'unset'))"
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("deploy") as span:
        code = cli.main(["run", "--", PY, "-c", child])
    context = span.get_span_context()
    assert code == 0
    flags = int(context.trace_flags)
    assert capfd.readouterr().out.strip() == f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"
    assert cli.main(["run", "--", PY, "-c", child]) == 0  # outside a span: the child starts its own
    assert capfd.readouterr().out.strip() == "unset"


def test_a_vault_reference_is_injected(bao_url: str, workdir: Path, env: dict[str, str]) -> None:
    """A vault:// reference is read from a real OpenBao server into the child's environment."""
    env = {**vault_env(env, bao_url), "DB_PASSWORD": "vault://secret/cli/db#password"}
    result = run_cli("run", "--", PY, "-c", DIGESTS, "DB_PASSWORD", env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 0, result.describe()
    assert digests(result.out) == {"DB_PASSWORD": digest(VAULT_VALUE)}


@pytest.fixture(scope="module")
def bao_url() -> Iterator[str]:
    """A real OpenBao dev server holding `secret/cli/db`."""
    with OpenBaoServer() as server:
        server.client().secrets.kv.v2.create_or_update_secret(
            path="cli/db", secret={"password": VAULT_VALUE}, mount_point="secret"
        )
        yield server.url


# -- failures before the child starts ----------------------------------------------------------


def test_a_missing_secret_stops_before_the_command_runs(workdir: Path, env: dict[str, str]) -> None:
    """If a reference cannot be resolved, the command is not run; exit 1 with one line naming the variable."""
    marker = workdir / "ran"
    env = {**env, "DB_PASSWORD": f"file://{workdir}/absent"}
    result = run_cli("run", "--", PY, "-c", f"open({str(marker)!r}, 'w')", env=env, cwd=workdir)
    assert result.code == 1, result.describe()
    assert_one_error_line(result, "DB_PASSWORD", "not found")
    assert not marker.exists()


def test_an_unreachable_backend_exits_3(workdir: Path, env: dict[str, str]) -> None:
    """A reference to an unreachable Vault exits 3 before the command runs."""
    env = {**vault_env(env, closed_port_url()), "DB_PASSWORD": "vault://secret/cli/db#password"}
    result = run_cli("run", "--", PY, "-c", "print('ran')", env=env, cwd=workdir, timeout=30)
    assert result.code == 3, result.describe()
    assert_one_error_line(result, "DB_PASSWORD")
    assert "ran" not in result.out


def test_a_malformed_reference_is_a_usage_error(workdir: Path, env: dict[str, str]) -> None:
    """A variable holding `vault://` with no path exits 2 and names the variable."""
    result = run_cli("run", "--", PY, "-c", "pass", env={**env, "BROKEN": "vault://"}, cwd=workdir)
    assert result.code == 2, result.describe()
    assert_one_error_line(result, "BROKEN", "path is empty")


def test_a_missing_extra_exits_5(tmp_path: Path, workdir: Path, env: dict[str, str]) -> None:
    """An aws-sm:// reference without boto3 importable exits 5 with the pip command."""
    env = {
        **env,
        "PYTHONPATH": str(blocker(tmp_path / "block", "boto3", "botocore")),
        "DB_PASSWORD": "aws-sm://prod/db#password",
    }
    result = run_cli("run", "--", PY, "-c", "pass", env=env, cwd=workdir)
    assert result.code == 5, result.describe()
    assert_one_error_line(result, "DB_PASSWORD", 'pip install "secretkit[aws]"')


def test_a_value_with_a_nul_character_is_refused(workdir: Path, env: dict[str, str]) -> None:
    """A secret holding NUL cannot be an environment variable: exit 5 rather than a truncated value."""
    (workdir / "nul").write_bytes(b"before\x00after-secret")
    env = {**env, "TOKEN": f"file://{workdir}/nul"}
    result = run_cli("run", "--", PY, "-c", "print('ran')", env=env, cwd=workdir, secrets=["after-secret"])
    assert result.code == 5, result.describe()
    assert_one_error_line(result, "TOKEN", "NUL")
    result.assert_no_secret()


def test_a_missing_env_file_is_a_usage_error(workdir: Path, env: dict[str, str]) -> None:
    """--env-file naming no file exits 2."""
    result = run_cli("run", "--env-file", "nope.env", "--", PY, "-c", "pass", env=env, cwd=workdir)
    assert result.code == 2, result.describe()
    assert_one_error_line(result, "nope.env")


def test_no_command_is_a_usage_error(workdir: Path, env: dict[str, str]) -> None:
    """`run` with nothing after `--` exits 2."""
    result = run_cli("run", "--", env=env, cwd=workdir)
    assert result.code == 2, result.describe()
    assert_one_error_line(result, "run needs a command")


def test_a_command_that_does_not_exist_exits_127(workdir: Path, env: dict[str, str]) -> None:
    """A command not on PATH exits 127 with one line, as a shell would."""
    result = run_cli("run", "--", "secretkit-no-such-command-4242", env=env, cwd=workdir)
    assert result.code == 127, result.describe()
    assert_one_error_line(result, "command not found", "secretkit-no-such-command-4242")


def test_a_command_that_cannot_be_executed_exits_126(workdir: Path, env: dict[str, str]) -> None:
    """A file without the execute bit exits 126."""
    script = workdir / "not-executable.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    result = run_cli("run", "--", str(script), env=env, cwd=workdir)
    assert result.code == 126, result.describe()
    assert_one_error_line(result, "cannot execute")


# -- exit codes and signals --------------------------------------------------------------------


def test_the_child_exit_code_is_returned(workdir: Path, env: dict[str, str]) -> None:
    """`run` exits with the command's own exit code."""
    result = run_cli("run", "--", PY, "-c", "raise SystemExit(7)", env=env, cwd=workdir)
    assert result.code == 7, result.describe()


def test_a_child_killed_by_a_signal_gives_128_plus_n(workdir: Path, env: dict[str, str]) -> None:
    """A command killed by SIGKILL makes `run` exit 137, as a shell reports it."""
    result = run_cli(
        "run", "--", PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)", env=env, cwd=workdir
    )
    assert result.code == 128 + signal.SIGKILL, result.describe()


# The handler writes with os.write: the signal may arrive while print("ready") is still flushing.
WAITER = """
import os, signal, sys, time
def handler(signum, frame):
    os.write(1, b"got %d\\n" % signum)
    os._exit(100 + signum)
for name in ("SIGINT", "SIGTERM", "SIGHUP"):
    signal.signal(getattr(signal, name), handler)
print("ready", flush=True)
time.sleep(30)
sys.exit(1)
"""


def read_line(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> bytes:
    """One line of the process's stdout, or b"" if none comes within ``timeout``."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    data = b""
    while not data.endswith(b"\n") and time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        chunk = os.read(proc.stdout.fileno(), 1)
        if not chunk:
            break
        data += chunk
    return data


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("mask", [True, False], ids=["masked", "no-mask"])
def test_signals_are_forwarded_to_the_child(
    name: str, mask: bool, workdir: Path, env: dict[str, str]
) -> None:
    """SIGINT, SIGTERM and SIGHUP sent to `run` reach the command, whose exit code comes back."""
    signum = getattr(signal, name)
    args = ["run", *([] if mask else ["--no-mask"]), "--", PY, "-c", WAITER]
    proc = subprocess.Popen(
        [PY, "-m", "secretkit", *args],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert read_line(proc) == b"ready\n"
        proc.send_signal(signum)
        # What is asserted is that `run` exits, not that its pipes reach their end: a process
        # another thread of this test run forks meanwhile holds copies of them until it ends.
        try:
            code = proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`run` did not end after {name}; the child printed {read_line(proc, 1)!r}")
        said = read_line(proc, 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert code == 100 + signum
    assert said == f"got {signum}\n".encode()


# -- masking -----------------------------------------------------------------------------------


def test_injected_values_are_masked_in_the_child_output(workdir: Path, env: dict[str, str]) -> None:
    """A command printing an injected secret on stdout and stderr shows a mask instead."""
    env = {**env, "DB_PASSWORD": f"file://{workdir}/db_password"}
    code = "import os, sys; v = os.environ['DB_PASSWORD']; print('out', v); print('err', v, file=sys.stderr)"
    result = run_cli("run", "--", PY, "-c", code, env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 0, result.describe()
    result.assert_no_secret()
    assert result.out == "out **********\n"
    assert result.err == "err **********\n"


def test_a_value_split_across_writes_is_masked(workdir: Path, env: dict[str, str]) -> None:
    """A secret written in two parts, with a pause between, is still masked."""
    env = {**env, "DB_PASSWORD": f"file://{workdir}/db_password"}
    code = (
        "import os, sys, time; v = os.environ['DB_PASSWORD']; h = len(v) // 2\n"
        "sys.stdout.write('a ' + v[:h]); sys.stdout.flush(); time.sleep(0.3)\n"
        "sys.stdout.write(v[h:] + ' b\\n'); sys.stdout.flush()\n"
    )
    result = run_cli("run", "--", PY, "-c", code, env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 0, result.describe()
    result.assert_no_secret()
    assert result.out == "a ********** b\n"


def test_json_leaves_of_an_injected_secret_are_masked(workdir: Path, env: dict[str, str]) -> None:
    """When a whole JSON secret is injected, a command printing one of its fields shows a mask."""
    env = {**env, "DB": f"file://{workdir}/db.json"}
    code = "import json, os; print(json.loads(os.environ['DB'])['password'])"
    result = run_cli("run", "--", PY, "-c", code, env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 0, result.describe()
    result.assert_no_secret()
    assert result.out == "**********\n"


def test_no_mask_passes_the_output_through(workdir: Path, env: dict[str, str]) -> None:
    """With --no-mask the command's output reaches the caller untouched, value included."""
    env = {**env, "DB_PASSWORD": f"file://{workdir}/db_password"}
    code = "import os; print(os.environ['DB_PASSWORD'] == open('db_password').read().strip())"
    result = run_cli("run", "--no-mask", "--", PY, "-c", code, env=env, cwd=workdir)
    assert result.out == "True\n", result.describe()
    echo = run_cli(
        "run",
        "--no-mask",
        "--",
        PY,
        "-c",
        "import os; print(os.environ['DB_PASSWORD'])",
        env=env,
        cwd=workdir,
    )
    assert echo.raw_out == (DB_PASSWORD + "\n").encode(), "--no-mask changed the command's output"


def test_plain_values_are_not_masked(workdir: Path, env: dict[str, str]) -> None:
    """Configuration whose name marks no secret is not masked; the output is byte for byte the command's."""
    env = {**env, "DB_PASSWORD": f"file://{workdir}/db_password", "GREETING": "hello-world"}
    code = "import os, sys; sys.stdout.buffer.write(b'\\x00\\xff ' + os.environb[b'GREETING'] + b' \\r\\n')"
    result = run_cli("run", "--", PY, "-c", code, env=env, cwd=workdir)
    assert result.raw_out == b"\x00\xff hello-world \r\n", result.describe()


# -- the stream masker run uses: the log redactor's engine -----------------------------------


def feed_split(masker: StreamRedactor[bytes], data: bytes, at: int) -> bytes:
    return masker.feed(data[:at]) + masker.feed(data[at:]) + masker.flush()


def test_masker_masks_at_every_split_point() -> None:
    """However a stream is cut in two, a value in it comes out masked and the rest unchanged."""
    data = b"before s3cr3t-value after s3cr3t-value\n"
    expected = b"before ********** after **********\n"
    for at in range(len(data) + 1):
        assert feed_split(StreamRedactor(["s3cr3t-value"]), data, at) == expected, f"split at {at}"


def test_masker_masks_across_many_small_chunks() -> None:
    """A value fed one byte at a time is masked."""
    masker = StreamRedactor(["s3cr3t-value"])
    out = b"".join(masker.feed(bytes([b])) for b in b"x s3cr3t-value y") + masker.flush()
    assert out == b"x ********** y"


def test_masker_holds_back_only_a_possible_start_of_a_value() -> None:
    """Text that cannot begin a value is written at once (a prompt shows before any newline)."""
    masker = StreamRedactor(["s3cr3t-value"])
    assert masker.feed(b"Password: ") == b"Password: "
    assert masker.feed(b"abc s3c") == b"abc "
    assert masker.feed(b"ond") == b"s3cond"


def test_masker_prefers_the_longer_of_overlapping_values() -> None:
    """When one value is a prefix of another, the longer one is masked whole, even split."""
    data = b"[token-extended] [token]"
    for at in range(len(data) + 1):
        masker = StreamRedactor(["token", "token-extended"])
        assert feed_split(masker, data, at) == b"[**********] [**********]"
    masker = StreamRedactor(["token", "token-extended"])
    assert masker.feed(b"token") == b""  # could still become token-extended
    assert masker.flush() == b"**********"


def test_masker_covers_json_leaves_and_lines_but_not_tiny_values() -> None:
    """A JSON secret's string leaves and a multi-line secret's lines are masked too; tiny ones are not."""
    masker = StreamRedactor(['{"user": "app", "password": "pw-123456"}', "line-one\nline-two", "ab"])
    out = masker.feed(b"pw-123456 line-two line-one app ab\n") + masker.flush()
    assert out == b"********** ********** ********** app ab\n"


def test_masker_keeps_bytes_that_are_not_utf8() -> None:
    """Output that is not UTF-8 passes byte for byte; a value next to it is still masked."""
    masker = StreamRedactor(["s3cr3t-value"])
    assert feed_split(masker, b"\xff\xfes3cr3t-value\x00\x80", 3) == b"\xff\xfe**********\x00\x80"
