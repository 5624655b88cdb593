"""One host's workers with and without an OpenBao Proxy: logins, leases and requests that reach the server.

Run by hand: ``python benchmarks/bench_proxy.py`` (``--quick``: K = 1, 4 and a shorter window).
A real OpenBao dev server sits behind a counting tap (``tests/servers/openbao_proxy.py``);
K worker processes read 20 KV secrets and, where a PostgreSQL server is found, one dynamic
database credential, for a window, with a store ``ttl`` of 2 s so refreshes happen all along.
Tokens and leases last 6 s, so each is renewed within the window. The workers are started
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
STORE_TTL = 2.0
LIFE = "6s"  # tokens and leases: renewed at 2/3, within the window


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
) -> dict[str, Any]:
    fleet = fleet_on(admin, work, secrets=SECRETS, database_mount=database, token_ttl=LIFE)
    tap.reset()
    began = time.monotonic()
    if setup == "proxy":
        with OpenBaoProxy(tap.url, fleet.approle_mount, fleet.role_id, fleet.secret_id) as proxy:
            reports = run_workers(
                k, start, Fleet.proxy_env(proxy.url), fleet.names, ttl=STORE_TTL, duration=window
            )
    else:
        reports = run_workers(
            k, start, fleet.direct_env(tap.url), fleet.names, ttl=STORE_TTL, duration=window
        )
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="K = 1, 4 and a 2 s window")
    add_json_option(parser)
    args = parser.parse_args()
    ks = (1, 4) if args.quick else (1, 4, 16)
    window = 2.0 if args.quick else 5.0
    rows: list[dict[str, Any]] = []
    postgres: Postgres | None = None
    note = ""
    with tempfile.TemporaryDirectory(prefix="bench-proxy-") as tmp, OpenBaoServer() as server:
        tap = RequestTap(server.url).start()
        try:
            admin = OpenBaoAdmin(server)
            database = None
            try:
                postgres = Postgres().start()
                database = admin.database_mount(postgres.port, {"app": (LIFE, "10m")})
            except PostgresUnavailable as exc:
                note = f"no dynamic database credential: {exc}"
            for k in ks:
                for start in ("own", "preloaded"):
                    for setup in ("direct", "proxy"):
                        row = measure(
                            admin, tap, Path(tmp), database, setup=setup, start=start, k=k, window=window
                        )
                        rows.append(row)
                        print(
                            "  {setup:6} {start:9} K={k:<2}  logins {logins:3}  leases {leases:3} "
                            "(workers saw {leases_seen_by_workers})  lease renewals {lease_renewals:3}  "
                            "token renewals {token_renewals:3}  KV reads {kv_reads:5}  "
                            "requests {requests:5}  failed reads {failed_reads}  ({seconds} s)".format(**row),
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            tap.stop()
            if postgres is not None:
                postgres.stop()
    print(
        f"OpenBao Proxy per host: {SECRETS} KV secrets, ttl {STORE_TTL:g} s, tokens and leases {LIFE}, "
        f"window {window:g} s per run{'; ' + note if note else ''}"
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
