"""Quick start: resolve secrets from the environment and a .env file, with no cloud account.

Run it from anywhere: ``python examples/quickstart.py``. It writes a throw-away .env in a
temporary directory, reads secrets through secretkit, and shows what a log would show.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

import secretkit


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    log = logging.getLogger("quickstart")
    secretkit.redact_logs()  # anything revealed through secretkit is masked in every log record

    with tempfile.TemporaryDirectory() as workdir:
        # A deployment would set these; the example sets its own so it runs anywhere.
        Path(workdir, ".env").write_text(
            "DATABASE_PASSWORD=correct-horse-battery-staple\n"
            'DB_CONFIG={"user": "app", "password": "s3cr3t-from-json"}\n'
            "DB_PASSWORD=dotenv://DB_CONFIG#password\n"
        )
        os.environ["STRIPE_API_KEY"] = "sk_test_quickstart_0123456789"
        previous = os.getcwd()
        os.chdir(workdir)
        try:
            secretkit.configure()  # the default chain: environment, ./.env, /run/secrets

            key = secretkit.get_secret("STRIPE_API_KEY")
            print("printed:        ", key)
            print("repr:           ", repr(key))
            print("source/version: ", key.source, key.version)
            print("revealed length:", len(key.reveal()))

            db = secretkit.get_secret("DATABASE_PASSWORD")
            print("from .env:      ", db, "source:", db.source, "length:", len(db.reveal()))

            # DB_PASSWORD holds a reference; secretkit resolves it (here: a JSON field of DB_CONFIG).
            pw = secretkit.get_secret("DB_PASSWORD")
            print("via reference:  ", pw, "length:", len(pw.reveal()))

            # Drop-in replacements for os.getenv / os.environ.
            assert secretkit.getenv("MISSING_VAR", "default") == "default"
            assert secretkit.environ["STRIPE_API_KEY"] == key.reveal()

            log.info("calling the API with %s", key.reveal())  # masked by redact_logs()
            print(
                "stats:          ",
                {k: v for k, v in secretkit.default_store().stats().items() if k != "backends"},
            )
        finally:
            os.chdir(previous)
            del os.environ["STRIPE_API_KEY"]
            secretkit.configure()


if __name__ == "__main__":
    main()
