"""``secretkit run --watch``: a real child follows rotation on AWS (moto) and Vault (OpenBao).

The child is a small HTTP server that reads its password from the environment, prints it
(which the terminal must see masked) and answers each request with the password's digest.
A client thread sends a request every 20 ms through the rotation, so the tests measure
what an operator would: how long until the child has the new value, how many requests
failed while it restarted, and how many requests secretkit sent the secret store.
"""

from __future__ import annotations

import hashlib
import http.client
import http.server
import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from servers.aws_env import moto_env
from servers.moto_server import MotoServer, free_port
from servers.openbao_server import ROOT_TOKEN, OpenBaoServer
from test_cli import clean_env

PY = sys.executable

# The child: serves the digest of $DB_PASSWORD; prints the value once (the masking test).
SERVER = """\
import hashlib, http.server, os, sys
password = os.environ["DB_PASSWORD"]
print("serving with password", password, flush=True)
digest = hashlib.sha256(password.encode()).hexdigest().encode()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(digest)))
        self.end_headers()
        self.wfile.write(digest)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# -- a counting proxy in front of the secret store ----------------------------------------------


class CountingProxy:
    """An HTTP reverse proxy that counts the requests secretkit sends the store, by path and operation."""

    def __init__(self, target: str) -> None:
        self.target = target.removeprefix("http://")
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                key = self.headers.get("X-Amz-Target") or f"{self.command} {self.path.split('?')[0]}"
                with proxy.lock:
                    proxy.counts[key] = proxy.counts.get(key, 0) + 1
                conn = http.client.HTTPConnection(proxy.target, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                conn.request(self.command, self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status)
                for k, v in response.getheaders():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, fragment: str) -> int:
        with self.lock:
            return sum(n for key, n in self.counts.items() if fragment in key)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- the watched child and a client that keeps asking it ----------------------------------------


@dataclass
class Traffic:
    """Requests to the child: (time sent, digest answered or None for a failure)."""

    port: int
    log: list[tuple[float, str | None]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=2) as r:
                    answer: str | None = r.read().decode()
            except (OSError, http.client.HTTPException):
                # A child stopped mid-answer cuts the body short (IncompleteRead): a failed request.
                answer = None
            self.log.append((sent, answer))
            time.sleep(0.02)

    def wait_for(self, wanted: str, timeout: float) -> float | None:
        """When the child first answered ``wanted`` (waiting up to ``timeout``), or None."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for sent, answer in list(self.log):
                if answer == wanted:
                    return sent
            time.sleep(0.05)
        return None

    def failures_between(self, start: float, end: float) -> int:
        return sum(1 for sent, answer in list(self.log) if start <= sent <= end and answer is None)

    def requests_between(self, start: float, end: float) -> int:
        return sum(1 for sent, _ in list(self.log) if start <= sent <= end)


@dataclass
class Watched:
    proc: subprocess.Popen[bytes]
    out: Path
    err: Path
    secrets: list[str]

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")

    def describe(self) -> str:
        text = self.output()[-4000:]
        for value in self.secrets:
            text = text.replace(value, "<SECRET>")
        return text

    def assert_no_secret(self) -> None:
        text = self.output()
        for value in self.secrets:
            assert value not in text, f"a secret value shows in the output:\n{self.describe()}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)


def start_watched(tmp_path: Path, args: list[str], env: dict[str, str], secrets: list[str]) -> Watched:
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with out.open("wb") as o, err.open("wb") as e:
        proc = subprocess.Popen(
            [PY, "-m", "secretkit", "run", *args], env=env, stdout=o, stderr=e, stdin=subprocess.DEVNULL
        )
    return Watched(proc, out, err, secrets)


@pytest.fixture
def traffic_for() -> Iterator[Any]:
    started: list[tuple[Traffic, threading.Thread]] = []

    def start(port: int) -> Traffic:
        traffic = Traffic(port)
        thread = threading.Thread(target=traffic.run, daemon=True)
        thread.start()
        started.append((traffic, thread))
        return traffic

    yield start
    for traffic, thread in started:
        traffic.stop.set()
        thread.join(timeout=10)


def report(name: str, **figures: object) -> None:
    """Measurements, shown with ``pytest -s`` (the numbers docs/cli.md quotes)."""
    print(f"\n[{name}] " + ", ".join(f"{k}={v}" for k, v in figures.items()))


# -- AWS Secrets Manager on moto ----------------------------------------------------------------

REFRESH = 2.0
# Generous: refresh-ahead at 0.8 of the refresh, the settle second, a restart, a loaded machine.
WITHIN = 30.0


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def aws_rotate(sm: Any, name: str, new: str) -> None:
    """A new AWSCURRENT version, the old one becoming AWSPREVIOUS: what a reader sees of a rotation.

    Not the four steps with ``update_secret_version_stage``: moto's BatchGetSecretValue (which
    the backend refreshes through) keeps answering with the version last put after a stage
    move, where AWS answers with the one AWSCURRENT labels.
    """
    sm.put_secret_value(
        SecretId=name, ClientRequestToken=str(uuid.uuid4()), SecretString=json.dumps({"password": new})
    )


def test_an_aws_rotation_reaches_the_serving_child_within_the_refresh_interval(
    moto: MotoServer, tmp_path: Path, traffic_for: Any
) -> None:
    """Through two rotations the restarted child serves each new password; no value is printed."""
    sm = moto.client("secretsmanager")
    name = f"watch/db-{uuid.uuid4().hex[:8]}"
    values = [f"aws-watch-pw-{i}-{uuid.uuid4().hex}" for i in range(3)]
    sm.create_secret(Name=name, SecretString=json.dumps({"password": values[0]}))
    proxy = CountingProxy(moto.url)
    port = free_port()
    env = clean_env(tmp_path / "home", **moto_env(proxy.url), DB_PASSWORD=f"aws-sm://{name}#password")
    watched = start_watched(
        tmp_path, ["--watch", "--refresh", str(REFRESH), "--", PY, "-c", SERVER, str(port)], env, values
    )
    try:
        traffic = traffic_for(port)
        assert traffic.wait_for(digest(values[0]), WITHIN) is not None, watched.describe()
        figures = []
        for new in values[1:]:
            fetched_before = proxy.count("GetSecretValue")
            aws_rotate(sm, name, new)
            rotated_at = time.monotonic()
            seen = traffic.wait_for(digest(new), WITHIN)
            assert seen is not None, watched.describe()
            figures.append(
                (
                    round(seen - rotated_at, 2),
                    traffic.failures_between(rotated_at, seen),
                    traffic.requests_between(rotated_at, seen),
                    proxy.count("GetSecretValue") - fetched_before,
                )
            )
            assert seen - rotated_at < WITHIN
        time.sleep(REFRESH * 2)  # steady state: what watching costs between rotations
        steady_start = proxy.count("GetSecretValue")
        time.sleep(REFRESH * 4)
        steady = proxy.count("GetSecretValue") - steady_start
    finally:
        code = watched.stop()
        proxy.close()
    assert code == 128 + signal.SIGTERM, watched.describe()
    watched.assert_no_secret()
    assert "serving with password **********" in watched.output()
    assert watched.output().count("DB_PASSWORD rotated: restarting the command") == 2, watched.describe()
    # Refresh-ahead at 0.8 of a 2 s life: about 5 fetches in 8 s, never a storm.
    assert 1 <= steady <= 12, steady
    report(
        "aws",
        delay_s=[f[0] for f in figures],
        failed=[f[1] for f in figures],
        sent=[f[2] for f in figures],
        store_requests_until_seen=[f[3] for f in figures],
        store_requests_per_8s_steady=steady,
    )


# -- Vault KV v2 on OpenBao ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def bao() -> Iterator[OpenBaoServer]:
    with OpenBaoServer() as server:
        yield server


def test_a_vault_kv_update_reaches_the_serving_child_within_the_refresh_interval(
    bao: OpenBaoServer, tmp_path: Path, traffic_for: Any
) -> None:
    """A new KV version restarts the child on it; requests failed meanwhile are counted; no value shows."""
    client = bao.client()
    path = f"watch/{uuid.uuid4().hex[:8]}"
    old, new = f"vault-watch-old-{uuid.uuid4().hex}", f"vault-watch-new-{uuid.uuid4().hex}"
    client.secrets.kv.v2.create_or_update_secret(path=path, secret={"password": old}, mount_point="secret")
    proxy = CountingProxy(bao.url)
    port = free_port()
    env = clean_env(
        tmp_path / "home",
        VAULT_ADDR=proxy.url,
        VAULT_TOKEN=ROOT_TOKEN,
        DB_PASSWORD=f"vault://secret/{path}#password",
    )
    watched = start_watched(
        tmp_path, ["--watch", "--refresh", str(REFRESH), "--", PY, "-c", SERVER, str(port)], env, [old, new]
    )
    try:
        traffic = traffic_for(port)
        assert traffic.wait_for(digest(old), WITHIN) is not None, watched.describe()
        before = proxy.count(f"/v1/secret/data/{path}")
        client.secrets.kv.v2.create_or_update_secret(
            path=path, secret={"password": new}, mount_point="secret"
        )
        rotated_at = time.monotonic()
        seen = traffic.wait_for(digest(new), WITHIN)
        assert seen is not None, watched.describe()
        failed = traffic.failures_between(rotated_at, seen)
        reads = proxy.count(f"/v1/secret/data/{path}") - before
    finally:
        watched.stop()
        proxy.close()
    watched.assert_no_secret()
    assert watched.output().count("DB_PASSWORD rotated") == 1, watched.describe()
    report("vault", delay_s=round(seen - rotated_at, 2), failed=failed, store_reads_until_seen=reads)


# -- the supervisor's rules, with file references (re-read within about a second) ----------------

CHILD = """\
import os, signal, sys, time
with open(sys.argv[1], "a") as log:
    log.write(os.environ["A"] + " " + os.environ.get("B", "") + "\\n")
signal.signal(signal.SIGHUP, lambda *a: open(sys.argv[1], "a").write("HUP\\n"))
if len(sys.argv) > 2 and os.environ["A"] == sys.argv[2]:
    sys.exit(3)
if len(sys.argv) > 2 and sys.argv[2] == "exit0":
    sys.exit(0)
while True:
    time.sleep(0.05)
"""


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    found = {"a": tmp_path / "a", "b": tmp_path / "b", "log": tmp_path / "starts.log"}
    found["a"].write_text("a-first-value-0001\n")
    found["b"].write_text("b-first-value-0001\n")
    return found


def file_env(tmp_path: Path, files: dict[str, Path]) -> dict[str, str]:
    return clean_env(tmp_path / "home", A=f"file://{files['a']}", B=f"file://{files['b']}")


def wait_until(predicate: Any, timeout: float = WITHIN) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def starts(files: dict[str, Path]) -> list[str]:
    return files["log"].read_text().splitlines() if files["log"].exists() else []


def test_rotations_that_arrive_together_make_one_restart(tmp_path: Path, files: dict[str, Path]) -> None:
    """Two secrets rotated by one job restart the child once, with both new values."""
    secrets = ["a-first-value-0001", "b-first-value-0001", "a-second-value-0002", "b-second-value-0002"]
    watched = start_watched(
        tmp_path,
        ["--watch", "--refresh", "1", "--", PY, "-c", CHILD, str(files["log"])],
        file_env(tmp_path, files),
        secrets,
    )
    try:
        assert wait_until(lambda: len(starts(files)) == 1), watched.describe()
        files["a"].write_text("a-second-value-0002\n")
        files["b"].write_text("b-second-value-0002\n")
        assert wait_until(lambda: len(starts(files)) >= 2), watched.describe()
        time.sleep(3)  # a second restart would come within this
    finally:
        watched.stop()
    assert starts(files) == [
        "a-first-value-0001 b-first-value-0001",
        "a-second-value-0002 b-second-value-0002",
    ]
    assert watched.output().count("restarting the command") == 1, watched.describe()


def test_on_rotate_signal_keeps_the_child_and_signals_it(tmp_path: Path, files: dict[str, Path]) -> None:
    """--on-rotate signal:HUP sends SIGHUP to the running child instead of starting another."""
    watched = start_watched(
        tmp_path,
        ["--watch", "--refresh", "1", "--on-rotate", "signal:HUP", "--", PY, "-c", CHILD, str(files["log"])],
        file_env(tmp_path, files),
        ["a-first-value-0001", "a-second-value-0002"],
    )
    try:
        assert wait_until(lambda: len(starts(files)) == 1), watched.describe()
        files["a"].write_text("a-second-value-0002\n")
        assert wait_until(lambda: "HUP" in starts(files)), watched.describe()
    finally:
        watched.stop()
    assert starts(files) == ["a-first-value-0001 b-first-value-0001", "HUP"]


def test_a_child_that_exits_0_on_its_own_ends_the_command_with_0(
    tmp_path: Path, files: dict[str, Path]
) -> None:
    """--watch never restarts a child that finished: the command exits with it."""
    watched = start_watched(
        tmp_path,
        ["--watch", "--refresh", "1", "--", PY, "-c", CHILD, str(files["log"]), "exit0"],
        file_env(tmp_path, files),
        [],
    )
    assert watched.proc.wait(timeout=WITHIN) == 0, watched.describe()
    assert len(starts(files)) == 1


def test_a_child_that_keeps_failing_after_a_restart_backs_off(tmp_path: Path, files: dict[str, Path]) -> None:
    """A child that dies on the rotated value is started again after 1, 2, 4 ... seconds, not in a loop."""
    watched = start_watched(
        tmp_path,
        ["--watch", "--refresh", "1", "--", PY, "-c", CHILD, str(files["log"]), "a-bad-value-0003"],
        file_env(tmp_path, files),
        ["a-bad-value-0003"],
    )
    try:
        assert wait_until(lambda: len(starts(files)) == 1), watched.describe()
        files["a"].write_text("a-bad-value-0003\n")
        assert wait_until(lambda: len(starts(files)) >= 2), watched.describe()
        time.sleep(4)
    finally:
        code = watched.stop()
    # 1 first start + the restart + at most the retries after 1 s and 2 s (a loop would be dozens).
    assert 2 <= len(starts(files)) <= 5, starts(files)
    assert "starting it again in 1 s" in watched.output(), watched.describe()
    assert code == 128 + signal.SIGTERM


def test_sigterm_reaches_the_child_and_no_restart_follows(tmp_path: Path, files: dict[str, Path]) -> None:
    """Stopping secretkit stops the child (exit 128+15) and does not start another one."""
    watched = start_watched(
        tmp_path,
        ["--watch", "--refresh", "1", "--", PY, "-c", CHILD, str(files["log"])],
        file_env(tmp_path, files),
        [],
    )
    assert wait_until(lambda: len(starts(files)) == 1), watched.describe()
    assert watched.stop() == 128 + signal.SIGTERM
    assert len(starts(files)) == 1


def test_watch_without_a_reference_is_a_usage_error(tmp_path: Path) -> None:
    """Nothing to watch is said, not silently run unwatched."""
    watched = start_watched(tmp_path, ["--watch", "--", PY, "-c", "pass"], clean_env(tmp_path / "home"), [])
    assert watched.proc.wait(timeout=WITHIN) == 2
    assert "nothing to watch" in watched.output()


def test_on_rotate_takes_a_signal_name_or_restart(tmp_path: Path) -> None:
    """A misspelt --on-rotate is a usage error before anything runs."""
    watched = start_watched(
        tmp_path,
        ["--watch", "--on-rotate", "signal:NOPE", "--", PY, "-c", "pass"],
        clean_env(tmp_path / "home"),
        [],
    )
    assert watched.proc.wait(timeout=WITHIN) == 2
    assert "signal name" in watched.output()


def test_a_value_split_across_reads_around_a_rotation_is_masked() -> None:
    """The masker grown at a rotation continues the stream: a value's halves in two reads stay masked."""
    from secretkit.cli._supervise import Masks, _continued

    masks = Masks(["old-secret-value-1234"])
    _, first = masks.current()
    pump = first.clone()
    out = pump.feed(b"x old-secret-")
    masks.add(["new-secret-value-5678"])
    pump = _continued(pump, masks.current()[1])
    out += pump.feed(b"value-1234 y new-secret-value-5678 z") + pump.flush()
    assert out == b"x ********** y ********** z"
