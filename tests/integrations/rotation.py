"""The AWS Secrets Manager rotation protocol for PostgreSQL, step by step, as a rotation Lambda runs it.

AWS's RDS rotation functions run four steps per rotation, each with the new version's
token: ``createSecret`` (put a new ``AWSPENDING`` version), ``setSecret`` (change the
password in the database), ``testSecret`` (log in with it) and ``finishSecret`` (move
``AWSCURRENT`` to it). Single user: the user changes its own password. Alternating users:
the pending version names the other of two users (``app`` / ``app_clone``), whose
password the master user changes, so the current user keeps working throughout.
Tests and the benchmark drive the steps themselves, so a rotation happens when they say.
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

import psycopg
import sqlalchemy

from servers.postgres_server import Postgres

__all__ = ["Recycler", "Rotator", "create_app_secret"]

STEPS = ("createSecret", "setSecret", "testSecret", "finishSecret")
CLONE_SUFFIX = "_clone"


def create_app_secret(sm: Any, postgres: Postgres, name: str, user: str, *, alternating: bool) -> str:
    """Create role ``user`` (and its clone, for alternating users) and the secret that logs in as it."""
    password = _new_password()
    users = [user, user + CLONE_SUFFIX] if alternating else [user]
    with psycopg.connect(postgres.dsn(), autocommit=True) as admin:
        for role in users:
            admin.execute(f'CREATE ROLE "{role}" LOGIN')
        admin.execute(
            psycopg.sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                psycopg.sql.Identifier(user), psycopg.sql.Literal(password)
            )
        )
    document = {
        "engine": "postgres",
        "host": postgres.host,
        "port": postgres.port,
        "dbname": "postgres",
        "username": user,
        "password": password,
    }
    return str(sm.create_secret(Name=name, SecretString=json.dumps(document))["ARN"])


class Rotator:
    """Runs rotations of one secret: ``rotate()`` for all four steps, or ``step(name)`` one at a time."""

    def __init__(self, sm: Any, postgres: Postgres, secret_id: str, *, alternating: bool) -> None:
        self.sm = sm
        self.postgres = postgres
        self.secret_id = secret_id
        self.alternating = alternating
        self.token: str | None = None
        self.rotations = 0

    def rotate(self) -> None:
        for step in STEPS:
            self.step(step)

    def step(self, step: str) -> None:
        if step == "createSecret":
            self.token = uuid.uuid4().hex
        assert self.token is not None, "a rotation starts with createSecret"
        getattr(self, "_" + step.replace("Secret", "_secret"))(self.token)
        if step == "finishSecret":
            self.token = None
            self.rotations += 1

    def _document(self, **stage: str) -> dict[str, Any]:
        return dict(json.loads(self.sm.get_secret_value(SecretId=self.secret_id, **stage)["SecretString"]))

    def _create_secret(self, token: str) -> None:
        current = self._document(VersionStage="AWSCURRENT")
        pending = dict(current, password=_new_password())
        if self.alternating:
            user = str(current["username"])
            pending["username"] = (
                user[: -len(CLONE_SUFFIX)] if user.endswith(CLONE_SUFFIX) else user + CLONE_SUFFIX
            )
        self.sm.put_secret_value(
            SecretId=self.secret_id,
            ClientRequestToken=token,
            SecretString=json.dumps(pending),
            VersionStages=["AWSPENDING"],
        )

    def _set_secret(self, token: str) -> None:
        pending = self._document(VersionId=token, VersionStage="AWSPENDING")
        statement = psycopg.sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            psycopg.sql.Identifier(pending["username"]), psycopg.sql.Literal(pending["password"])
        )
        if self.alternating:
            # The master user sets the other user's password: the current user is untouched.
            with psycopg.connect(self.postgres.dsn(), autocommit=True) as admin:
                admin.execute(statement)
        else:
            # The single user changes its own password, logged in with the current one.
            current = self._document(VersionStage="AWSCURRENT")
            with psycopg.connect(_dsn(current), autocommit=True) as conn:
                conn.execute(statement)

    def _test_secret(self, token: str) -> None:
        pending = self._document(VersionId=token, VersionStage="AWSPENDING")
        with psycopg.connect(_dsn(pending), autocommit=True) as conn:
            conn.execute("SELECT now()")

    def _finish_secret(self, token: str) -> None:
        versions = self.sm.describe_secret(SecretId=self.secret_id)["VersionIdsToStages"]
        current = next(v for v, stages in versions.items() if "AWSCURRENT" in stages)
        if current == token:
            return
        self.sm.update_secret_version_stage(
            SecretId=self.secret_id,
            VersionStage="AWSCURRENT",
            MoveToVersionId=token,
            RemoveFromVersionId=current,
        )


class Recycler:
    """Makes engines replace every pooled connection at its next checkout, as ``pool_recycle`` does.

    Tests recycle during a rotation, so that pools open new connections in every phase of it.
    An asyncio engine is recycled through its ``sync_engine``.
    """

    def __init__(self, *engines: sqlalchemy.Engine) -> None:
        self.epoch = 0
        for engine in engines:
            sqlalchemy.event.listen(engine, "connect", self._connect)
            sqlalchemy.event.listen(engine, "checkout", self._checkout)

    def recycle(self) -> None:
        self.epoch += 1

    def _connect(self, dbapi_connection: Any, record: Any) -> None:
        record.info["epoch"] = self.epoch

    def _checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.get("epoch", 0) < self.epoch:
            raise sqlalchemy.exc.DisconnectionError("recycled by the test")


def _dsn(document: dict[str, Any]) -> str:
    return psycopg.conninfo.make_conninfo(
        host=document["host"],
        port=document["port"],
        dbname=document["dbname"],
        user=document["username"],
        password=document["password"],
    )


def _new_password() -> str:
    return "rotated-" + secrets.token_urlsafe(18)
