"""A real moto server in its own process on a free loopback port, for tests and benchmarks.

The AWS backends are tested over real HTTP through the real boto3 client: this starts
``python -m moto.server`` (what the ``moto_server`` script runs), waits until it answers,
and stops it. It can be stopped and started again on the same port to simulate an outage
(moto keeps its data in memory, so a restarted server is empty).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = ["MotoServer", "WireLog", "free_port"]

ACCESS_KEY = "testing"
SECRET_KEY = "testing"
REGION = "us-east-1"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class WireLog:
    """Counts the requests a boto3 client puts on the wire, by operation.

    It listens to botocore's ``before-send`` event (its public extension point; the client
    itself is untouched), which fires once per HTTP request, retries included.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: dict[str, int] = {}

    def attach(self, client: Any) -> Any:
        """Count ``client``'s requests from now on; returns the client."""
        client.meta.events.register("before-send", self._on_send)
        return client

    def _on_send(self, request: Any, **_: Any) -> None:
        target = request.headers.get("X-Amz-Target", b"")
        if isinstance(target, bytes):
            target = target.decode()
        operation = str(target).rpartition(".")[2] or "?"
        with self._lock:
            self.calls[operation] = self.calls.get(operation, 0) + 1

    def __getitem__(self, operation: str) -> int:
        return self.calls.get(operation, 0)

    @property
    def total(self) -> int:
        return sum(self.calls.values())

    def reset(self) -> None:
        with self._lock:
            self.calls = {}


class MotoServer:
    """``python -m moto.server -H HOST -p PORT``, ready when ``GET /moto-api/`` answers."""

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, *, start_timeout: float = 30.0
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        fd, log_path = tempfile.mkstemp(prefix="moto-server-", suffix=".log")
        os.close(fd)
        self._log = Path(log_path)

    @property
    def url(self) -> str:
        """The endpoint URL to give boto3 (``endpoint_url=`` or ``AWS_ENDPOINT_URL``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> MotoServer:
        """Start the server (on the same port as before, if it ran already) and wait until it answers."""
        if self.running:
            return self
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with self._log.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited with code {self._process.returncode}: {self._tail()}")
            if self._answers():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"moto server did not answer on {self.url} within {self.start_timeout} s: {self._tail()}"
        )

    def stop(self) -> None:
        """Stop the server and wait until the port is closed."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def restart(self) -> None:
        """Stop, then start on the same port (the data is gone: moto keeps it in memory)."""
        self.stop()
        self.start()

    def reset(self) -> None:
        """Drop every resource the server holds."""
        self._post("/moto-api/reset", b"")

    def enforce_iam(self) -> None:
        """From now on, every request must be signed by an IAM user whose policies allow it."""
        # moto authorises requests once its count of unauthenticated actions reaches this number.
        self._post("/moto-api/reset-auth", b"0")

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for this server with the test credentials (for setting data up)."""
        import boto3

        options: dict[str, Any] = {
            "endpoint_url": self.url,
            "region_name": REGION,
            "aws_access_key_id": ACCESS_KEY,
            "aws_secret_access_key": SECRET_KEY,
        }
        options.update(kwargs)
        return boto3.session.Session().client(service, **options)

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/moto-api/", timeout=1) as response:  # noqa: S310
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def _post(self, path: str, body: bytes) -> Any:
        request = urllib.request.Request(  # noqa: S310 - our own loopback server
            self.url + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            text = response.read().decode()
        return json.loads(text) if text else None

    def _tail(self) -> str:
        try:
            return self._log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def __enter__(self) -> MotoServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        self._log.unlink(missing_ok=True)
