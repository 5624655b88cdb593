"""Rotation demo: a client keeps working when its API key is rotated under it.

A local HTTP API accepts only the current key. The client reads the key through secretkit
(from a secret file, cached for an hour) and is wrapped in ``refresh_on_auth_error``: when
the key is rotated at the source and the API starts rejecting the old one, the next call
fails with 401, secretkit fetches the key again, and the call is retried once. The caller
never sees the error, and nothing restarts.

Run it from anywhere: ``python examples/rotation_demo.py``. Every line it prints is checked
not to contain a key.
"""

from __future__ import annotations

import hmac
import http.server
import json
import secrets
import tempfile
import threading
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import secretkit
from secretkit.backends import FileBackend


class Unauthorized(Exception):
    """The API refused the key (HTTP 401)."""


class KeyCheckingAPI:
    """A tiny HTTP API on a free loopback port that accepts one key: the current one."""

    def __init__(self) -> None:
        self.key = ""
        self.generation = 0
        self.rejected = 0
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                offered = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if not hmac.compare_digest(offered.encode(), api.key.encode()):
                    api.rejected += 1
                    self._reply(401, {"error": "invalid key"})
                else:
                    self._reply(200, {"balance": 4200, "key_generation": api.generation})

            def _reply(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # request lines would only clutter the demo's output

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/balance"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> KeyCheckingAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def call_api(url: str, key: str) -> dict[str, Any]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})  # noqa: S310 - loopback http
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - our own loopback URL
            body: dict[str, Any] = json.loads(response.read())
            return body
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise Unauthorized("the API refused the key (401)") from None
        raise


def main() -> None:
    issued: list[str] = []

    def say(line: str) -> None:
        # The demo's own guard: a line holding any key it issued is never printed.
        assert not any(key in line for key in issued), "refusing to print a secret"
        print(line)

    with tempfile.TemporaryDirectory() as secrets_dir, KeyCheckingAPI() as api:
        key_file = Path(secrets_dir) / "api_key"

        def rotate() -> None:
            """What a rotation job does: issue a new key, store it, and make the API accept only it."""
            key = secrets.token_urlsafe(24)
            issued.append(key)
            key_file.write_text(key + "\n")
            api.key, api.generation = key, api.generation + 1

        rotate()
        # Cached for an hour: the rotation is noticed through the API's 401, not by waiting for a TTL.
        store = secretkit.configure(backends=[FileBackend(secrets_dir)], ttl=3600)
        secretkit.on_rotate(
            "API_KEY", lambda old, new: say(f"  on_rotate: API_KEY changed ({old!r} -> {new!r})")
        )

        @secretkit.refresh_on_auth_error("API_KEY", exceptions=Unauthorized)
        def balance() -> dict[str, Any]:
            key = secretkit.get_secret("API_KEY")
            say(f"  calling the API with {key!r}")
            return call_api(api.url, key.reveal())

        say("1. first call, with the key the client started with")
        say(f"  -> {balance()}")

        say("2. the key is rotated: the API now rejects the old one, which the client still has cached")
        rotate()
        say(f"  -> {balance()}")
        assert api.rejected == 1, "the old key was tried once, then the new one"

        say("3. later calls use the new key straight from the cache")
        say(f"  -> {balance()}")
        assert api.rejected == 1

        say("4. another rotation, handled by the loop form around a block of code")
        rotate()
        result: dict[str, Any] = {}
        for attempt in secretkit.refresh_on_auth_error("API_KEY", exceptions=Unauthorized):
            with attempt:
                result = call_api(api.url, secretkit.get_secret("API_KEY").reveal())
        say(f"  -> {result}")
        assert result["key_generation"] == 3 and api.rejected == 2

        stats = store.stats()
        say(
            f"done: {stats['fetches']} fetches, {stats['rotations']} rotations, {api.rejected} calls rejected"
        )
        secretkit.configure()  # back to the default store; closes the demo's


if __name__ == "__main__":
    main()
