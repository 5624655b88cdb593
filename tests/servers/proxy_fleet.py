"""A host's worth of worker processes reading Vault secrets, with and without an OpenBao Proxy.

Shared by ``tests/proxy`` and ``benchmarks/bench_proxy.py``: :func:`fleet_on` writes the
secrets, a policy and an AppRole (on a mount of its own, so logins can be counted per fleet);
:func:`run_workers` forks K workers that read them, started the two ways a web server starts
them: each building its own store from the environment (gunicorn without ``--preload``), or
forked from a parent that built its store and read every secret first (``--preload``).
Workers report versions and lease ids, never values.
"""

from __future__ import annotations

import multiprocessing
import os
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from secretkit import SecretStore
from servers.openbao_server import OpenBaoAdmin

__all__ = ["Fleet", "Start", "fleet_on", "run_workers"]

Start = Literal["own", "preloaded"]


@dataclass(frozen=True)
class Fleet:
    """What the workers read, and the AppRole a host logs in with."""

    approle_mount: str
    role_id: str
    secret_id: str
    secret_id_file: Path
    names: tuple[str, ...]  # references: KV secrets, then any leased credential
    credential: str | None  # the leased reference, if any

    def direct_env(self, vault_url: str) -> dict[str, str]:
        """Each process logs in itself (no Proxy): AppRole from the environment."""
        return {
            "VAULT_ADDR": vault_url,
            "VAULT_AUTH_METHOD": "approle",
            "VAULT_AUTH_MOUNT": self.approle_mount,
            "VAULT_ROLE_ID": self.role_id,
            "VAULT_SECRET_ID_FILE": str(self.secret_id_file),
        }

    @staticmethod
    def proxy_env(proxy_url: str) -> dict[str, str]:
        """Only the Proxy's address: no token, no auth method in the application."""
        return {"VAULT_AGENT_ADDR": proxy_url}


def fleet_on(
    admin: OpenBaoAdmin,
    directory: Path,
    *,
    secrets: int = 20,
    database_mount: str | None = None,
    token_ttl: str = "1h",
    token_max_ttl: str = "24h",
) -> Fleet:
    """``secrets`` KV secrets under a unique prefix (and ``database_mount``'s ``app`` role), for AppRole."""
    prefix = admin.unique("fleet")
    rules = [f'path "secret/data/{prefix}/*" {{ capabilities = ["read"] }}']
    if database_mount is not None:
        rules.append(f'path "{database_mount}/creds/app" {{ capabilities = ["read"] }}')
    policy = admin.unique("fleet-policy")
    admin.root.sys.create_or_update_policy(policy, "\n".join(rules))
    names = []
    for i in range(secrets):
        admin.put(f"{prefix}/s{i}", {"value": f"{prefix}-value-{i}"})
        names.append(f"vault://secret/{prefix}/s{i}#value")
    credential = None
    if database_mount is not None:
        credential = f"vault://{database_mount}/creds/app?engine=generic"
        names.append(credential)
    mount, role_id, secret_id = admin.approle([policy], token_ttl=token_ttl, token_max_ttl=token_max_ttl)
    directory.mkdir(parents=True, exist_ok=True)
    secret_id_file = directory / f"{mount}.secret_id"
    secret_id_file.write_text(secret_id)
    return Fleet(mount, role_id, secret_id, secret_id_file, tuple(names), credential)


def _set_env(env: Mapping[str, str]) -> None:
    for name in [n for n in os.environ if n.startswith(("VAULT_", "BAO_"))]:
        del os.environ[name]
    os.environ.update(env)


def _store(ttl: float) -> SecretStore:
    return SecretStore(backends=[], ttl=ttl, deadline=10.0)


def _read(store: SecretStore, names: Sequence[str], seen: dict[str, set[str]]) -> int:
    failed = 0
    for name in names:
        try:
            secret = store.get(name)
        except Exception:
            failed += 1
            continue
        seen.setdefault(name, set()).add(str(secret.version))
    return failed


def _worker(
    store: SecretStore | None,
    env: Mapping[str, str],
    names: Sequence[str],
    ttl: float,
    duration: float,
    interval: float,
    results: Any,
) -> None:
    try:
        if store is None:
            _set_env(env)
            store = _store(ttl)
        else:
            # What a preloaded worker does first after the fork: a refresh of what it inherited.
            for name in names:
                store.invalidate(name)
        seen: dict[str, set[str]] = {}
        failed = _read(store, names, seen)
        end = time.monotonic() + duration
        while time.monotonic() < end:
            time.sleep(interval)
            failed += _read(store, names, seen)
        store.close()
        results.send(
            {"pid": os.getpid(), "failed": failed, "versions": {k: sorted(v) for k, v in seen.items()}}
        )
    except BaseException:
        results.send({"pid": os.getpid(), "error": traceback.format_exc(limit=3)})
    finally:
        os._exit(0)  # no atexit or inherited finalisers in a forked worker


def run_workers(
    k: int,
    start: Start,
    env: Mapping[str, str],
    names: Sequence[str],
    *,
    ttl: float = 300.0,
    duration: float = 0.0,
    interval: float = 0.2,
) -> list[dict[str, Any]]:
    """Fork ``k`` workers reading ``names`` (once, then every ``interval`` s for ``duration`` s): reports.

    ``preloaded``: this process builds a store from ``env``, reads every name, then forks; the
    environment is restored afterwards.
    """
    context = multiprocessing.get_context("fork")
    parent_store = None
    saved = dict(os.environ)
    try:
        if start == "preloaded":
            _set_env(env)
            parent_store = _store(ttl)
            _read(parent_store, names, {})
        # A pipe per worker: a send is done when it returns, before the worker's os._exit.
        pipes = [context.Pipe(duplex=False) for _ in range(k)]
        workers = [
            context.Process(target=_worker, args=(parent_store, env, names, ttl, duration, interval, sender))
            for _, sender in pipes
        ]
        for worker in workers:
            worker.start()
        reports = []
        for (receiver, sender), worker in zip(pipes, workers, strict=True):
            sender.close()
            if not receiver.poll(60 + duration):
                worker.kill()
                raise RuntimeError(f"a worker did not report within {60 + duration:.0f} s")
            reports.append(receiver.recv())
            receiver.close()
            worker.join(30)
    finally:
        if parent_store is not None:
            parent_store.close()
        os.environ.clear()
        os.environ.update(saved)
    errors = [r["error"] for r in reports if "error" in r]
    if errors:
        raise RuntimeError("a worker failed:\n" + "\n".join(errors))
    return reports
