"""One host's workers with and without an OpenBao Proxy: logins, leases and requests that reach the server.

Run by hand: ``python benchmarks/bench_proxy.py`` (ten minutes: the twelve cases run side by
side; ``--quick``: K = 1, 4, a 5 s window, a 2 s store ``ttl`` and 6 s tokens and leases).
Each case has a real OpenBao dev server of its own behind a counting tap
(``tests/servers/openbao_proxy.py``); K worker processes read 20 KV secrets and, where a
PostgreSQL server is found, one dynamic database credential, five times a second for the
window, with a store ``ttl`` of 30 s so refreshes happen all along. Tokens and leases last
120 s, so each is renewed several times within the window. The workers are started
both ways a web server starts them: each building its own store (``own``), or forked from a
parent that built its store and read everything first (``preloaded``). Two set-ups:

- **direct**: every process logs in with AppRole and talks to the server.
- **proxy**: ``bao proxy`` with AppRole auto-auth, ``cache {}`` and ``use_auto_auth_token``;
  the workers have only ``VAULT_AGENT_ADDR``.

Counted at the server, over the window (the Proxy's own requests included): logins, leases
issued, lease renewals, token renewals, KV reads, all requests. No secret value is printed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import add_json_option, write_json

from servers.openbao_proxy import OpenBaoProxy, RequestTap
from servers.openbao_server import OpenBaoAdmin, OpenBaoServer
from servers.postgres_server import Postgres, PostgresUnavailable
from servers.proxy_fleet import Fleet, Start, fleet_on, run_workers

SECRETS = 20
STORE_TTL = 30.0
LIFE = "120s"  # tokens and leases: renewed at 2/3, several times a window
QUICK_TTL, QUICK_LIFE = 2.0, "6s"


def measure(
    admin: OpenBaoAdmin,
    tap: RequestTap,
    work: Path,
    database: str | None,
    *,
    setup: str,
    start: Start,
    k: int,
    window: float,
    ttl: float,
    life: str,
) -> dict[str, Any]:
    fleet = fleet_on(admin, work, secrets=SECRETS, database_mount=database, token_ttl=life)
    tap.reset()
    began = time.monotonic()
    if setup == "proxy":
        with OpenBaoProxy(tap.url, fleet.approle_mount, fleet.role_id, fleet.secret_id) as proxy:
            reports = run_workers(k, start, Fleet.proxy_env(proxy.url), fleet.names, ttl=ttl, duration=window)
    else:
        reports = run_workers(k, start, fleet.direct_env(tap.url), fleet.names, ttl=ttl, duration=window)
    elapsed = time.monotonic() - began
    leases = tap.count("GET", f"/v1/{database}/creds/") if database else 0
    distinct = len({v for r in reports for v in r["versions"].get(fleet.credential or "", [])})
    return {
        "setup": setup,
        "start": start,
        "k": k,
        "seconds": round(elapsed, 1),
        "failed_reads": sum(r["failed"] for r in reports),
        "logins": tap.logins(fleet.approle_mount),
        "leases": leases,
        "leases_seen_by_workers": distinct,
        "lease_renewals": tap.count("*", "/v1/sys/leases/renew"),
        "token_renewals": tap.count("*", "/v1/auth/token/renew-self"),
        "kv_reads": tap.count("GET", "/v1/secret/data/"),
        "requests": sum(tap.counts().values()),
    }


CASES = [
    (setup, start, k) for k in (1, 4, 16) for start in ("own", "preloaded") for setup in ("direct", "proxy")
]


def run_case(
    setup: str, start: Start, k: int, *, window: float, ttl: float, life: str, postgres_port: int | None
) -> dict[str, Any]:
    """One case on a server and tap of its own, so cases can run side by side and count apart."""
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp, OpenBaoServer() as server:
        tap = RequestTap(server.url).start()
        try:
            admin = OpenBaoAdmin(server)
            database = None
            if postgres_port is not None:
                database = admin.database_mount(postgres_port, {"app": (life, "24h")})
            return measure(
                admin,
                tap,
                Path(tmp),
                database,
                setup=setup,
                start=start,
                k=k,
                window=window,
                ttl=ttl,
                life=life,
            )
        finally:
            tap.stop()


def _run_cases(
    cases: list[tuple[str, str, int]], options: list[str], jobs: int, postgres_port: int | None
) -> list[dict[str, Any]]:
    """Each case in a process of its own (``--case``), ``jobs`` at a time; rows in ``cases`` order."""
    rows: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-proxy-rows-") as tmp:
        pending = list(enumerate(cases))
        running: dict[int, subprocess.Popen[bytes]] = {}
        while pending or running:
            while pending and len(running) < jobs:
                index, (setup, start, k) = pending.pop(0)
                command = [
                    sys.executable,
                    __file__,
                    "--case",
                    f"{setup},{start},{k}",
                    *options,
                    "--json",
                    str(Path(tmp) / f"{index}.json"),
                ]
                if postgres_port is not None:
                    command += ["--postgres-port", str(postgres_port)]
                running[index] = subprocess.Popen(command)
            for index, process in list(running.items()):
                if process.poll() is not None:
                    del running[index]
                    if process.returncode not in (0, 1):
                        raise RuntimeError(f"case {cases[index]} exited with {process.returncode}")
                    rows[index] = json.loads((Path(tmp) / f"{index}.json").read_text())["rows"][0]
            time.sleep(0.5)
    return [rows[i] for i in range(len(cases))]


def _print_row(row: dict[str, Any]) -> None:
    print(
        "  {setup:6} {start:9} K={k:<2}  logins {logins:3}  leases {leases:3} "
        "(workers saw {leases_seen_by_workers})  lease renewals {lease_renewals:3}  "
        "token renewals {token_renewals:3}  KV reads {kv_reads:5}  "
        "requests {requests:5}  failed reads {failed_reads}  ({seconds} s)".format(**row),
        file=sys.stderr,
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K = 1, 4, a 5 s window, short lives")
    parser.add_argument("--window", type=float, default=600.0, help="seconds each case reads for (600)")
    parser.add_argument("--jobs", type=int, default=len(CASES), help="cases run side by side (all)")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # setup,start,k: one case, in this process
    parser.add_argument("--postgres-port", type=int, help=argparse.SUPPRESS)
    add_json_option(parser)
    args = parser.parse_args()
    window = 5.0 if args.quick else args.window
    ttl, life = (QUICK_TTL, QUICK_LIFE) if args.quick else (STORE_TTL, LIFE)
    if args.case:
        setup, start, k = args.case.split(",")
        row = run_case(
            setup,
            start,
            int(k),
            window=window,
            ttl=ttl,
            life=life,
            postgres_port=args.postgres_port,
        )
        _print_row(row)
        write_json(args.json, {"rows": [row]})
        return 0 if row["failed_reads"] == 0 else 1
    cases = [c for c in CASES if c[2] in (1, 4)] if args.quick else CASES
    note = ""
    postgres: Postgres | None = None
    try:
        try:
            postgres = Postgres().start()
        except PostgresUnavailable as exc:
            note = f"no dynamic database credential: {exc}"
        options = ["--window", str(window), *(["--quick"] if args.quick else [])]
        rows = _run_cases(cases, options, max(1, args.jobs), postgres.port if postgres else None)
    finally:
        if postgres is not None:
            postgres.stop()
    print(
        f"OpenBao Proxy per host: {SECRETS} KV secrets, store ttl {ttl:g} s, tokens and leases {life}, "
        f"window {window:g} s per case{'; ' + note if note else ''}"
    )
    print("setup   start      K   logins  leases  lease-renewals  token-renewals  KV-reads  requests  failed")
    for r in rows:
        print(
            f"{r['setup']:7} {r['start']:9} {r['k']:>2}  {r['logins']:7} {r['leases']:7} "
            f"{r['lease_renewals']:15} {r['token_renewals']:15} {r['kv_reads']:9} {r['requests']:9} "
            f"{r['failed_reads']:7}"
        )
    write_json(args.json, {"quick": args.quick, "window_s": window, "rows": rows, "note": note})
    return 0 if all(r["failed_reads"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
