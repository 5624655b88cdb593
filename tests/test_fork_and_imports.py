"""Process-level behaviour: safe after fork, and a light import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from secretkit import SecretStore
from secretkit.backends import MemoryBackend


class SlowBackend(MemoryBackend):
    """Fetches block until released, so a fork can happen while one is in flight."""

    def __init__(self, *a: object, **kw: object) -> None:
        super().__init__(*a, **kw)  # type: ignore[arg-type]
        self.release = threading.Event()
        self.entered = threading.Event()

    def fetch(self, ref):  # type: ignore[no-untyped-def]
        if ref.path == "SLOW":
            self.entered.set()
            self.release.wait(10)
        return super().fetch(ref)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_fetch_in_flight_at_fork_time_does_not_hang_the_child() -> None:
    """The child rebuilds locks and flights: it reads cached values and fetches the in-flight key itself."""
    backend = SlowBackend({"CACHED": "cached-value", "SLOW": "slow-value"})
    store = SecretStore([backend])
    store.get("CACHED")
    reader = threading.Thread(target=store.get, args=("SLOW",))
    reader.start()
    assert backend.entered.wait(5)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_fd)
            backend.release.set()  # the child's own fetch must not block on the parent's event
            result = {
                "cached": store.get("CACHED").reveal() == "cached-value",
                "slow": store.get("SLOW").reveal() == "slow-value",
            }
            os.write(write_fd, json.dumps(result).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, 9)
        pytest.fail("the child hung after fork")
    with os.fdopen(read_fd) as f:
        assert json.loads(f.read()) == {"cached": True, "slow": True}
    backend.release.set()
    reader.join(10)


def test_import_secretkit_imports_no_cloud_sdk_and_no_pydantic() -> None:
    """`import secretkit` (and its core backends) pulls in no SDK, no pydantic, no pytest."""
    code = (
        "import sys, json; import secretkit, secretkit.backends; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'boto3','botocore','hvac','google','azure','pydantic','pydantic_settings','grpc',"
        "'pytest','requests'}); "
        "print(json.dumps(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_examples_and_package_are_typed() -> None:
    """The package ships py.typed."""
    import secretkit

    assert (Path(secretkit.__file__).parent / "py.typed").exists()
