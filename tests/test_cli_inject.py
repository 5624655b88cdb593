"""``secretkit inject``: templates rendered atomically, no code run, the allow-list kept, rotation followed.

End to end in a subprocess. The consumer of ``--watch`` is a real process that re-reads its
file on SIGHUP (PgBouncer's reload, without PgBouncer: it is not installed where the suite runs).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.aws_env import moto_env
from servers.moto_server import MotoServer
from test_cli import assert_one_error_line, clean_env, run_cli
from test_cli_watch import wait_until

PY = sys.executable
DB_PASSWORD = "inject-db-pw-Zq8-secret"
API_KEY = "inject-api-key-0123456789"
SECRETS = [DB_PASSWORD, API_KEY]


@pytest.fixture
def work(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / "db_password").write_text(DB_PASSWORD + "\n")
    (work / "api.json").write_text(json.dumps({"key": API_KEY}))
    return work


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path / "home")


def template(work: Path, text: str) -> Path:
    path = work / "pgbouncer.tmpl"
    path.write_text(text)
    return path


def leftovers(directory: Path) -> list[str]:
    return [name for name in os.listdir(directory) if name.endswith(".secretkit-tmp")]


def auth_file_template(work: Path) -> str:
    return (
        f'"app" "{{{{ secret "file://{work}/db_password" }}}}"\n'
        f'"api" "{{{{secret "file://{work}/api.json#key"}}}}"\n'
    )


def test_a_template_is_rendered_with_mode_0600_and_no_temporary_left(work: Path, env: dict[str, str]) -> None:
    """Each placeholder becomes its secret; the file is 0600 whatever the umask; no temporary is left."""
    tmpl = template(work, auth_file_template(work))
    result = run_cli("inject", str(tmpl), "auth.txt", env=env, cwd=work, secrets=SECRETS)
    assert result.code == 0, result.describe()
    result.assert_no_secret()
    dest = work / "auth.txt"
    assert dest.read_text() == f'"app" "{DB_PASSWORD}"\n"api" "{API_KEY}"\n'
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    assert leftovers(work) == []


def test_mode_sets_the_permission_bits(work: Path, env: dict[str, str]) -> None:
    """--mode 0640 gives a group reader (PgBouncer's) access, and nothing more."""
    tmpl = template(work, auth_file_template(work))
    dest = work / "auth.txt"
    dest.write_text("old")
    dest.chmod(0o666)
    result = run_cli("inject", str(tmpl), str(dest), "--mode", "0640", env=env, cwd=work, secrets=SECRETS)
    assert result.code == 0, result.describe()
    assert stat.S_IMODE(dest.stat().st_mode) == 0o640


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="changing a file's owner needs root"
)
def test_the_owner_of_an_existing_destination_is_kept(work: Path, env: dict[str, str]) -> None:
    """A file another user reads (the consumer's) keeps its owner and group through the replace."""
    tmpl = template(work, auth_file_template(work))
    dest = work / "auth.txt"
    dest.write_text("old")
    os.chown(dest, 4321, 4322)
    result = run_cli("inject", str(tmpl), str(dest), env=env, cwd=work, secrets=SECRETS)
    assert result.code == 0, result.describe()
    info = dest.stat()
    assert (info.st_uid, info.st_gid) == (4321, 4322)
    assert DB_PASSWORD in dest.read_text()


def test_a_render_error_leaves_the_destination_as_it_was_and_no_temporary(
    work: Path, env: dict[str, str]
) -> None:
    """A missing secret stops before any byte is written: the old file stays, no plaintext copy appears."""
    tmpl = template(work, auth_file_template(work) + f'{{{{ secret "file://{work}/missing" }}}}\n')
    dest = work / "auth.txt"
    dest.write_text("previous content\n")
    result = run_cli("inject", str(tmpl), str(dest), env=env, cwd=work, secrets=SECRETS)
    assert result.code == 1, result.describe()
    result.assert_no_secret()
    assert dest.read_text() == "previous content\n"
    assert leftovers(work) == []


def test_a_failed_rename_removes_the_temporary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The temporary file holding the rendered secrets is removed when the replace fails."""
    from secretkit.cli._atomic import write_atomic
    from secretkit.cli._exits import CliError

    def refuse(src: object, dst: object) -> None:
        raise OSError(5, "input/output error")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(CliError):
        write_atomic(tmp_path / "dest", DB_PASSWORD.encode(), 0o600)
    assert os.listdir(tmp_path) == []


def test_a_leftover_temporary_of_a_killed_run_is_removed(work: Path, env: dict[str, str]) -> None:
    """A temporary file a SIGKILLed run left beside the destination is removed by the next run."""
    tmpl = template(work, auth_file_template(work))
    (work / ".auth.txt.abc123.secretkit-tmp").write_text(DB_PASSWORD)
    result = run_cli("inject", str(tmpl), "auth.txt", env=env, cwd=work, secrets=SECRETS)
    assert result.code == 0, result.describe()
    assert leftovers(work) == []


def test_a_template_cannot_run_code(work: Path, env: dict[str, str]) -> None:
    """Jinja, Go and Python expressions in a template are text: copied as they are, never evaluated."""
    marker = work / "pwned"
    text = (
        "{{ __import__('os').system('touch " + str(marker) + "') }}\n"
        "{% for x in range(3) %}{{ x }}{% endfor %}\n"
        "{{ .Values.password }} {{ lookup('env', 'HOME') }} ${HOME} $(id)\n"
    )
    tmpl = template(work, text)
    result = run_cli("inject", str(tmpl), "out.txt", env=env, cwd=work)
    assert result.code == 0, result.describe()
    assert (work / "out.txt").read_text() == text
    assert not marker.exists()


@pytest.mark.parametrize(
    "placeholder",
    [
        '{{ secret "file:///x" | upper }}',
        "{{ secret env.HOME }}",
        "{{ secret 'file:///x' }}",
        '{{ secret "file:///x" "other" }}',
        '{{ secret ("file:///x") }}',
    ],
)
def test_a_placeholder_with_anything_but_one_quoted_reference_is_refused(
    placeholder: str, work: Path, env: dict[str, str]
) -> None:
    """Filters, variables and expressions after `secret` are refused with the line, and nothing is written."""
    tmpl = template(work, "first line\n" + placeholder + "\n")
    result = run_cli("inject", str(tmpl), "out.txt", env=env, cwd=work)
    assert result.code == 5, result.describe()
    assert_one_error_line(result, "line 2")
    assert not (work / "out.txt").exists()


def test_a_reference_outside_the_allow_list_is_refused_and_nothing_is_written(
    work: Path, env: dict[str, str]
) -> None:
    """--allow is the store's allow-list: a refused reference stops the render (exit 4); no file is made."""
    (work / "allowed").mkdir()
    (work / "allowed" / "ok").write_text("fine-value-123456\n")
    tmpl = template(
        work, f'{{{{ secret "file://{work}/allowed/ok" }}}}\n{{{{ secret "file://{work}/db_password" }}}}\n'
    )
    result = run_cli(
        "inject", str(tmpl), "out.txt", "--allow", f"file://{work}/allowed/*",
        env=env, cwd=work, secrets=[*SECRETS, "fine-value-123456"],
    )  # fmt: skip
    assert result.code == 4, result.describe()
    assert_one_error_line(result, "allow-list")
    result.assert_no_secret()
    assert not (work / "out.txt").exists()
    assert leftovers(work) == []


def test_a_pid_file_naming_a_process_group_signals_nobody(work: Path, env: dict[str, str]) -> None:
    """A pid file holding -1 or 0 (every process, our group) is refused, not passed to kill()."""
    tmpl = template(work, auth_file_template(work))
    dest = work / "auth.txt"
    for pid in ("-1", "0"):
        dest.write_text("old")
        (work / "pid").write_text(pid)
        result = run_cli(
            "inject",
            str(tmpl),
            str(dest),
            "--signal",
            "HUP",
            "--pid-file",
            "pid",
            env=env,
            cwd=work,
            secrets=SECRETS,
        )
        assert result.code == 1, result.describe()
        assert_one_error_line(result, "does not hold a process id")


# -- --watch with a real reader -------------------------------------------------------------------

# Re-reads its config on SIGHUP, as PgBouncer re-reads auth_file: logs the digest of what it read.
READER = """\
import hashlib, os, signal, sys, time
config, log = sys.argv[1], sys.argv[2]
def load(*_):
    with open(config, "rb") as f:
        data = f.read()
    with open(log, "a") as out:
        out.write(hashlib.sha256(data).hexdigest() + "\\n")
signal.signal(signal.SIGHUP, load)
load()
with open(sys.argv[3], "w") as pid:
    pid.write(str(os.getpid()))
while True:
    time.sleep(0.05)
"""


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def test_watch_renders_again_on_an_aws_rotation_and_signals_the_reader(
    moto: MotoServer, tmp_path: Path, work: Path
) -> None:
    """A rotated AWS secret is rendered again, the reader gets SIGHUP and reads it; no value is printed."""
    sm = moto.client("secretsmanager")
    name = f"inject/db-{uuid.uuid4().hex[:8]}"
    old, new = f"inject-old-{uuid.uuid4().hex}", f"inject-new-{uuid.uuid4().hex}"
    sm.create_secret(Name=name, SecretString=json.dumps({"password": old}))
    tmpl = template(work, f'"app" "{{{{ secret "aws-sm://{name}#password" }}}}"\n')
    dest, log, pid = work / "auth.txt", work / "reads.log", work / "reader.pid"
    env = clean_env(tmp_path / "home", **moto_env(moto.url))
    args = [
        "inject",
        str(tmpl),
        str(dest),
        "--watch",
        "--refresh",
        "1",
        "--signal",
        "HUP",
        "--pid-file",
        str(pid),
    ]
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("wb") as o, err.open("wb") as e:
        inject = subprocess.Popen([PY, "-m", "secretkit", *args], env=env, stdout=o, stderr=e, cwd=work)
    reader: subprocess.Popen[bytes] | None = None
    try:
        assert wait_until(dest.exists), err.read_text()
        reader = subprocess.Popen([PY, "-c", READER, str(dest), str(log), str(pid)])
        assert wait_until(pid.exists)
        first = hashlib.sha256(f'"app" "{old}"\n'.encode()).hexdigest()
        second = hashlib.sha256(f'"app" "{new}"\n'.encode()).hexdigest()
        assert log.read_text().split() == [first]
        sm.put_secret_value(SecretId=name, SecretString=json.dumps({"password": new}))
        rotated_at = time.monotonic()
        assert wait_until(lambda: second in log.read_text().split()), err.read_text()
        delay = time.monotonic() - rotated_at
        assert log.read_text().split() == [first, second]  # one render, one signal
        assert stat.S_IMODE(dest.stat().st_mode) == 0o600
    finally:
        inject.send_signal(signal.SIGTERM)
        code = inject.wait(timeout=30)
        if reader is not None:
            reader.kill()
            reader.wait()
    assert code == 0
    printed = out.read_text() + err.read_text()
    assert old not in printed and new not in printed
    assert "rendered with rotated secrets" in printed
    assert leftovers(work) == []
    print(f"\n[inject aws] rotation-to-reader delay_s={delay:.2f}")


def test_watch_runs_exec_after_a_render(tmp_path: Path, work: Path, env: dict[str, str]) -> None:
    """--exec runs its command (no shell) once the file changed, and its output is masked.

    SIGTERM arrives while the command is still running (it sleeps after leaving its marker):
    the stop waits for it, so its output is passed on and the watch still ends with 0.
    """
    tmpl = template(work, f'{{{{ secret "file://{work}/db_password" }}}}\n')
    dest, marker = work / "out.txt", work / "reloads"
    script = (
        f"import time; open({str(marker)!r}, 'a').write('reload\\n'); time.sleep(1); "
        f"print(open({str(dest)!r}).read())"
    )
    args = ["inject", str(tmpl), str(dest), "--watch", "--refresh", "1", "--exec", f'{PY} -c "{script}"']
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("wb") as o, err.open("wb") as e:
        inject = subprocess.Popen([PY, "-m", "secretkit", *args], env=env, stdout=o, stderr=e, cwd=work)
    try:
        assert wait_until(dest.exists), err.read_text()
        (work / "db_password").write_text("inject-rotated-pw-9876\n")
        assert wait_until(marker.exists), err.read_text()
        assert dest.read_text() == "inject-rotated-pw-9876\n"
    finally:
        inject.send_signal(signal.SIGTERM)
        code = inject.wait(timeout=30)
    assert code == 0
    assert marker.read_text() == "reload\n"
    printed = out.read_text() + err.read_text()
    assert "**********" in printed
    assert DB_PASSWORD not in printed and "inject-rotated-pw-9876" not in printed
