"""Rotation under load: database pools on secretkit vs a password in the URL, against real servers.

Run by hand: ``python benchmarks/bench_rotation.py`` (the long form: 8 worker threads per
pool, a rotation every 2-5 s for 60 s per scenario), ``--quick`` for a smoke run. It starts
PostgreSQL, moto and OpenBao on loopback ports. Scenarios:

1. AWS Secrets Manager, single user: the four rotation steps (``testSecret`` takes 1 s,
   as a real one does, so only the pending password works for about a second);
2. AWS Secrets Manager, alternating users;
3. the same single-user rotation through psycopg pools instead of SQLAlchemy engines;
4. OpenBao dynamic database users (4 s leases, 10 s max; 2 s / 5 s quick), renewed,
   replaced and revoked.

Pools recycle their connections every 3 s (``pool_recycle`` / ``max_lifetime``), as real
pools do on idle timeouts and failovers, so stale credentials are put to the test. For each
scenario it prints queries run, failed queries for secretkit and for the baseline (a pool
built once with the password in its URL, failures counted after the first rotation), the
requests secretkit made to the secret store per rotation, and, once, the cost of a cached
credential lookup as a share of a PostgreSQL connect. With ``--peer PYTHON`` (an
interpreter that has ``aws-advanced-python-wrapper`` and ``psycopg`` installed), AWS's
Advanced Python Wrapper and its Secrets Manager plugin run the single-user scenario too,
one connection per query, as its documentation shows. No secret value is printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import timeit
import uuid
from pathlib import Path
from typing import Any

from _results import add_json_option, write_json

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

THREADS = 8
RECYCLE = 3.0  # seconds a pooled connection lives, in both the secretkit and the baseline pools


def peer_worker(args: argparse.Namespace) -> None:
    """Run in the peer's interpreter: AWS's wrapper, 8 threads, one connection per query, until stopped."""
    import psycopg
    from aws_advanced_python_wrapper import AwsWrapperConnection

    counts = {"ok": 0, "failed": 0}
    lock = threading.Lock()
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                conn = AwsWrapperConnection.connect(
                    psycopg.Connection.connect,
                    f"host=127.0.0.1 port={args.pg_port} dbname=postgres",
                    secrets_manager_secret_id=args.secret_id,
                    secrets_manager_region=os.environ["AWS_DEFAULT_REGION"],
                    secrets_manager_endpoint=args.endpoint,
                    plugins="aws_secrets_manager",
                )
                try:
                    cursor = conn.cursor()
                    cursor.execute("select current_user")
                    cursor.fetchone()
                finally:
                    conn.close()
            except Exception:
                with lock:
                    counts["failed"] += 1
            else:
                with lock:
                    counts["ok"] += 1

    threads = [threading.Thread(target=work, daemon=True) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    print("ready", flush=True)
    sys.stdin.readline()  # the benchmark says when the run is over
    stop.set()
    for thread in threads:
        thread.join(30)
    print(json.dumps(counts), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    parser.add_argument("--peer", help="a Python with aws-advanced-python-wrapper, to measure it as a peer")
    parser.add_argument("--peer-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--pg-port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--secret-id", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    add_json_option(parser)
    args = parser.parse_args()
    # psycopg's pool logs each refused connect of the baseline pool: the counts say it.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    if args.peer_worker:
        peer_worker(args)
        return
    bench = Bench(quick=args.quick, peer=args.peer)
    bench.run()
    write_json(args.json, bench.results)


class Bench:
    def __init__(self, *, quick: bool, peer: str | None) -> None:
        self.quick = quick
        self.peer = peer
        self.duration = 8.0 if quick else 60.0
        self.interval = (1.0, 2.0) if quick else (2.0, 5.0)
        self.window = 0.3 if quick else 1.0  # how long testSecret takes
        self.lease = (2, 5) if quick else (4, 10)  # OpenBao default_ttl, max_ttl (seconds)
        self.results: dict[str, Any] = {
            "quick": quick,
            "threads": THREADS,
            "duration_s": self.duration,
            "interval_s": list(self.interval),
            "lease_s": list(self.lease),
            "scenarios": {},
        }

    def run(self) -> None:
        from servers.moto_server import ACCESS_KEY, REGION, SECRET_KEY, MotoServer
        from servers.openbao_server import OpenBaoAdmin, OpenBaoServer
        from servers.postgres_server import Postgres

        empty = Path(tempfile.gettempdir()) / f"bench-rotation-none-{uuid.uuid4().hex}"
        with Postgres() as postgres, MotoServer() as moto, OpenBaoServer() as openbao:
            os.environ.update(
                {
                    "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                    "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                    "AWS_DEFAULT_REGION": REGION,
                    "AWS_ENDPOINT_URL": moto.url,
                    "AWS_CONFIG_FILE": str(empty),
                    "AWS_SHARED_CREDENTIALS_FILE": str(empty),
                    "AWS_EC2_METADATA_DISABLED": "true",
                }
            )
            self.postgres, self.moto = postgres, moto
            self.aws_current = AwsCurrentProxy(moto.url)
            self.sm = moto.client("secretsmanager")
            mode = "quick" if self.quick else "full"
            print(
                f"bench_rotation ({mode}): {THREADS} threads per pool, a rotation every "
                f"{self.interval[0]:g}-{self.interval[1]:g} s for {self.duration:g} s per scenario, "
                f"connections recycled every {RECYCLE:g} s\n"
            )
            self.lookup_cost()
            self.aws_scenario("AWS SM single user, SQLAlchemy engine", alternating=False, kind="engine")
            self.aws_scenario("AWS SM alternating users, SQLAlchemy engine", alternating=True, kind="engine")
            self.aws_scenario("AWS SM single user, psycopg pool", alternating=False, kind="pool")
            self.vault_scenario(OpenBaoAdmin(openbao))

    # -- measurements ------------------------------------------------------------------------

    def lookup_cost(self) -> None:
        """A cached credential lookup (what every connect and checkout adds) vs a PostgreSQL connect."""
        import psycopg

        from integrations.rotation import create_app_secret
        from secretkit import SecretStore
        from secretkit.integrations import database_login

        name = f"bench/lookup-{uuid.uuid4().hex[:8]}"
        create_app_secret(self.sm, self.postgres, name, f"lookup_{uuid.uuid4().hex[:8]}", alternating=False)
        with SecretStore([]) as store:
            credential = database_login(f"aws-sm://{name}", store=store)
            login = credential.current()
            dsn = self.postgres.dsn(login.user or "", login.password)
            number = 2_000 if self.quick else 20_000
            lookup = min(timeit.repeat(credential.current, number=number, repeat=5)) / number
            connects = []
            for _ in range(10 if self.quick else 50):
                started = time.perf_counter()
                psycopg.connect(dsn).close()
                connects.append(time.perf_counter() - started)
        connect = statistics.median(connects)
        self.results["lookup"] = {"us": lookup * 1e6, "connect_ms": connect * 1e3}
        print(
            f"cached credential lookup: {lookup * 1e6:.2f} us = {100 * lookup / connect:.4f} % of a "
            f"PostgreSQL connect ({connect * 1e3:.2f} ms, median of {len(connects)})\n"
        )

    def aws_scenario(self, title: str, *, alternating: bool, kind: str) -> None:
        import psycopg_pool
        import sqlalchemy

        from integrations.rotation import Rotator, create_app_secret
        from integrations.workload import Workload
        from secretkit import SecretStore
        from secretkit.integrations.psycopg import connection_pool
        from secretkit.integrations.sqlalchemy import create_engine

        name = f"bench/rds-{uuid.uuid4().hex[:8]}"
        create_app_secret(
            self.sm, self.postgres, name, f"bench_{uuid.uuid4().hex[:8]}", alternating=alternating
        )
        document = json.loads(self.sm.get_secret_value(SecretId=name)["SecretString"])
        rotator = Rotator(self.sm, self.postgres, name, alternating=alternating)
        ref = f"aws-sm://{name}"
        closers: list[Any] = []
        with SecretStore([], ttl=30.0) as store:
            if kind == "engine":
                sizes = {"pool_size": 2, "max_overflow": THREADS - 2, "pool_recycle": RECYCLE}
                # The loopback server has no TLS to prove itself: opt in to pending passwords.
                engine = create_engine(
                    "postgresql+psycopg://",
                    secret=ref,
                    store=store,
                    offer_pending_to_unverified_server=True,
                    **sizes,
                )
                url = sqlalchemy.URL.create(
                    "postgresql+psycopg",
                    username=document["username"],
                    password=document["password"],
                    host=document["host"],
                    port=document["port"],
                    database=document["dbname"],
                )
                baseline = sqlalchemy.create_engine(url, **sizes)
                closers += [engine.dispose, baseline.dispose]
                ours, theirs = _engine_query(engine), _engine_query(baseline)
            else:
                sizes = {"min_size": 2, "max_size": THREADS, "max_lifetime": RECYCLE, "timeout": 5.0}
                pool = connection_pool(
                    secret=ref, store=store, open=True, offer_pending_to_unverified_server=True, **sizes
                )
                plain = psycopg_pool.ConnectionPool(
                    self.postgres.dsn(document["username"], document["password"]),
                    open=True,
                    **{**sizes, "timeout": 1.0},
                )
                closers += [pool.close, plain.close]
                ours, theirs = _pool_query(pool), _pool_query(plain)
            store.get(ref)
            fetches_before = store.stats()["fetches"]
            peer = self._start_peer(name) if self.peer and not alternating and kind == "engine" else None
            targets = {"secretkit": (ours, THREADS), "baseline": (theirs, THREADS)}
            with Workload(targets) as load:
                baseline_before = self._drive(rotator, load)
            peer_counts = self._stop_peer(peer)
            fetches = store.stats()["fetches"] - fetches_before
            for close in closers:
                close()
        self._report(title, load, rotator.rotations, baseline_before, fetches)
        scenario = self.results["scenarios"][title] = _counts(load)
        scenario.update(
            rotations=rotator.rotations,
            baseline_failed_after_first=load.failed("baseline") - baseline_before,
            requests=fetches,
            peer=peer_counts,
        )
        if peer_counts is not None:
            print(
                f"  AWS Advanced Python Wrapper (SM plugin, connect per query): "
                f"{peer_counts['ok'] + peer_counts['failed']} queries, {peer_counts['failed']} failed "
                f"({peer_counts['failed'] / max(rotator.rotations, 1):.1f} per rotation)"
            )
        print()

    def vault_scenario(self, vault: Any) -> None:
        import sqlalchemy

        from integrations.workload import Workload
        from secretkit import SecretStore
        from secretkit.backends.vault import TokenAuth, VaultBackend
        from secretkit.integrations.sqlalchemy import create_engine

        mount = vault.database_mount(
            self.postgres.port,
            {"app": (f"{self.lease[0]}s", f"{self.lease[1]}s")},
            revocation_statements=[
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}';",
                'DROP ROLE IF EXISTS "{{name}}";',
            ],
        )
        ref = f"vault://{mount}/creds/app?engine=generic"
        backend = VaultBackend(url=vault.url, auth=TokenAuth(vault.server.root_token))
        with SecretStore([], reference_backends=[backend], ttl=3600) as store:
            sizes = {"pool_size": THREADS, "pool_recycle": RECYCLE}
            url = f"postgresql+psycopg://127.0.0.1:{self.postgres.port}/postgres"
            engine = create_engine(
                url, secret=ref, store=store, offer_pending_to_unverified_server=True, **sizes
            )
            first = json.loads(store.get(ref).reveal())
            baseline = sqlalchemy.create_engine(
                sqlalchemy.URL.create(
                    "postgresql+psycopg",
                    username=first["username"],
                    password=first["password"],
                    host="127.0.0.1",
                    port=self.postgres.port,
                    database="postgres",
                ),
                **sizes,
            )
            users: set[str] = set()
            fetches_before = store.stats()["fetches"]
            targets = {
                "secretkit": (_engine_query(engine, users), THREADS),
                "baseline": (_engine_query(baseline), THREADS),
            }
            with Workload(targets) as load:
                time.sleep(self.duration)
            fetches = store.stats()["fetches"] - fetches_before
            engine.dispose()
            baseline.dispose()
        replaced = max(len(users) - 1, 0)
        scenario = self.results["scenarios"]["OpenBao dynamic users, SQLAlchemy engine"] = _counts(load)
        scenario.update(users=len(users), requests=fetches)
        lease, max_lease = self.lease
        print(
            f"OpenBao dynamic database users ({lease} s leases, {max_lease} s max), SQLAlchemy engine: "
            f"{len(users)} users"
        )
        _line("secretkit", load, "secretkit")
        _line("baseline (first lease's user in the URL)", load, "baseline")
        print(f"  requests to OpenBao: {fetches} ({fetches / max(replaced, 1):.1f} per replaced user)\n")

    # -- helpers -------------------------------------------------------------------------------

    def _drive(self, rotator: Any, load: Any) -> int:
        """Rotate every 2-5 s (1-2 s quick) until the duration is up; baseline failures before the first."""
        rng = random.Random(12)
        deadline = time.monotonic() + self.duration
        baseline_before: int | None = None
        time.sleep(rng.uniform(*self.interval))
        while time.monotonic() < deadline:
            for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
                if step == "testSecret":
                    time.sleep(self.window)
                rotator.step(step)
            if baseline_before is None:
                baseline_before = load.failed("baseline")
            time.sleep(rng.uniform(*self.interval))
        return baseline_before or 0

    def _report(self, title: str, load: Any, rotations: int, baseline_before: int, fetches: int) -> None:
        print(f"{title}: {rotations} rotations")
        _line("secretkit", load, "secretkit")
        failed = load.failed("baseline") - baseline_before
        queries = load.ok("baseline") + load.failed("baseline")
        print(
            f"  {'baseline (password in URL)':<42} {queries:>8} queries, "
            f"{failed:>6} failed after the first rotation"
        )
        print(f"  requests to Secrets Manager: {fetches} ({fetches / max(rotations, 1):.1f} per rotation)")

    def _start_peer(self, secret_id: str) -> subprocess.Popen[str] | None:
        assert self.peer is not None
        process = subprocess.Popen(
            [
                self.peer,
                str(Path(__file__).resolve()),
                "--peer-worker",
                "--pg-port",
                str(self.postgres.port),
                "--secret-id",
                secret_id,
                "--endpoint",
                self.aws_current.url,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            process.kill()
            print("  (the peer could not start: is aws-advanced-python-wrapper installed for --peer?)")
            return None
        return process

    def _stop_peer(self, process: subprocess.Popen[str] | None) -> dict[str, int] | None:
        if process is None:
            return None
        out, _ = process.communicate("stop\n", timeout=120)
        return dict(json.loads(out.strip().splitlines()[-1]))


class AwsCurrentProxy:
    """A pass-through to moto that reads ``AWSCURRENT`` where a ``GetSecretValue`` names no version.

    AWS answers such a request with the version labelled ``AWSCURRENT``; moto answers with
    the version that was current before the last ``UpdateSecretVersionStage``, so a client
    that relies on the default (AWS's wrapper does) would read the old password forever.
    The peer talks to moto through this, so it is measured against AWS's behaviour.
    """

    def __init__(self, upstream: str) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # the name http.server calls
                proxy._forward(self)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.upstream = upstream
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._http.server_address[1]}"
        threading.Thread(target=self._http.serve_forever, daemon=True).start()

    def _forward(self, handler: Any) -> None:
        import urllib.error
        import urllib.request

        body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        if handler.headers.get("X-Amz-Target", "").endswith(".GetSecretValue"):
            request = json.loads(body)
            if not request.get("VersionId") and not request.get("VersionStage"):
                body = json.dumps({**request, "VersionStage": "AWSCURRENT"}).encode()
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "content-length")}
        url = self.upstream + handler.path
        forwarded = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(forwarded, timeout=30) as response:  # noqa: S310 - our own moto
                status, payload, kind = response.status, response.read(), response.headers.get("Content-Type")
        except urllib.error.HTTPError as error:
            status, payload, kind = error.code, error.read(), error.headers.get("Content-Type")
        handler.send_response(status)
        handler.send_header("Content-Type", kind or "application/x-amz-json-1.1")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def _engine_query(engine: Any, users: set[str] | None = None) -> Any:
    import sqlalchemy

    def query() -> None:
        with engine.connect() as conn:
            user = conn.execute(sqlalchemy.text("select current_user")).scalar_one()
        if users is not None:
            users.add(user)

    return query


def _pool_query(pool: Any) -> Any:
    def query() -> None:
        with pool.connection() as conn:
            conn.execute("select current_user").fetchone()

    return query


def _counts(load: Any) -> dict[str, Any]:
    return {
        target: {"queries": load.ok(target) + load.failed(target), "failed": load.failed(target)}
        for target in ("secretkit", "baseline")
    }


def _line(label: str, load: Any, target: str) -> None:
    print(
        f"  {label:<42} {load.ok(target) + load.failed(target):>8} queries, {load.failed(target):>6} failed"
        + (f" {load.errors(target)}" if load.failed(target) and target == "secretkit" else "")
    )


if __name__ == "__main__":
    main()
