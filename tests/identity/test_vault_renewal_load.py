"""The Vault token under load: short TTLs, a max TTL forcing new logins, eight readers, no failed read."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from identity.conftest import app_secret
from secretkit import BackendUnavailable, SecretStore
from secretkit.backends.vault import AppRoleAuth, Login, VaultBackend
from servers.openbao_server import OpenBaoAdmin

MakeBackend = Callable[..., VaultBackend]
RENEWER = "secretkit-vault-renew"
THREADS = 8
SECONDS = 20.0


@dataclass
class CountingAuth:
    """An auth method that records which thread logged in, and when; the login itself is AppRole's."""

    inner: AppRoleAuth
    logins: list[tuple[str, float]] = field(default_factory=list)

    @property
    def method(self) -> str:
        return self.inner.method

    @property
    def relogin(self) -> bool:
        return True

    def login(self, client: Any) -> Login:
        self.logins.append((threading.current_thread().name, time.monotonic()))
        return self.inner.login(client)


@pytest.mark.slow
def test_eight_threads_read_through_token_expiry_and_forced_logins_without_a_failure(
    bao: OpenBaoAdmin, backends: MakeBackend
) -> None:
    """Tokens live 3 s and at most 7 s; for 20 s eight threads read held and never-read secrets.
    Every read succeeds; the token is renewed and replaced in the background, one login at a time."""
    mount, role_id, secret_id = bao.approle(["reader"], token_ttl="3s", token_max_ttl="7s")
    auth = CountingAuth(AppRoleAuth(role_id, secret_id=secret_id, mount=mount))
    held = [app_secret(bao, f"held-{i}") for i in range(6)]
    cold = [app_secret(bao, f"cold-{i}") for i in range(200)]
    backend = backends(url=bao.url, auth=auth)
    # A short store TTL keeps reads reaching Vault all along, not only at the start.
    store = SecretStore([backend], ttl=1.0, max_stale=60)
    reads, failures = [0] * THREADS, [0] * THREADS
    errors: list[BaseException] = []
    cold_next = iter(range(len(cold)))
    cold_lock = threading.Lock()
    stop = time.monotonic() + SECONDS

    def reader(slot: int) -> None:
        turn = 0
        while time.monotonic() < stop:
            turn += 1
            if turn % 25 == 0:
                with cold_lock:
                    index = next(cold_next, None)
                name, expected = (cold[index], f"cold-{index}") if index is not None else (held[0], "held-0")
            else:
                index = (slot + turn) % len(held)
                name, expected = held[index], f"held-{index}"
            try:
                assert store.get(name).reveal() == expected
                reads[slot] += 1
            except BaseException as exc:  # counted, never raised in the thread
                failures[slot] += 1
                errors.append(exc)
            time.sleep(0.02)

    threads = [threading.Thread(target=reader, args=(i,), name=f"reader-{i}") for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SECONDS + 30)
    store.close()

    status = backend.token_status()
    assert sum(failures) == 0, f"{sum(failures)} failed reads of {sum(reads)}: {errors[:3]!r}"
    assert sum(reads) > THREADS * 100
    cold_read = next(cold_next, len(cold))
    assert cold_read > 100, "cold secrets were read all along"
    # The first login is the first read's (login is lazy); every later one ran in the background.
    assert auth.logins[0][0] != RENEWER
    assert [name for name, _ in auth.logins[1:]] == [RENEWER] * (len(auth.logins) - 1)
    # 20 s of 7-second tokens: a new login every ~4.7-6.7 s, never a burst of one per thread.
    assert 3 <= len(auth.logins) <= 8
    gaps = [b - a for (_, a), (_, b) in zip(auth.logins, auth.logins[1:], strict=False)]
    assert min(gaps) > 2.0
    assert status.renewals >= len(auth.logins)
    logins, renewals = len(auth.logins), status.renewals
    print(f"\n{sum(reads)} reads ({cold_read} cold), 0 failed; {logins} logins, {renewals} renewals")


@pytest.mark.slow
def test_a_refused_relogin_keeps_serving_held_values_within_max_stale(
    bao: OpenBaoAdmin, backends: MakeBackend
) -> None:
    """When the role is deleted, logging in again is refused: held values are still served until
    max_stale, a secret never read fails as unavailable, and past max_stale the error surfaces."""
    mount, role_id, secret_id = bao.approle(["reader"], token_ttl="2s", token_max_ttl="2s")
    held = app_secret(bao, "held-value")
    never_read = app_secret(bao, "never-read")
    backend = backends(url=bao.url, auth=AppRoleAuth(role_id, secret_id=secret_id, mount=mount))
    store = SecretStore([backend], ttl=1.0, max_stale=6.0, negative_ttl=0)
    assert store.get(held).reveal() == "held-value"
    bao.root.auth.approle.delete_role("app", mount_point=mount)
    bao.revoke_logins(mount)

    served_stale = 0
    until = time.monotonic() + 5.0
    while time.monotonic() < until:
        assert store.get(held).reveal() == "held-value"
        served_stale += 1
        time.sleep(0.1)
    with pytest.raises(BackendUnavailable, match="log in again"):
        store.get(never_read)
    # Past max_stale (6 s after the value's TTL ran out) the refusal surfaces.
    time.sleep(2.5)
    with pytest.raises(BackendUnavailable):
        store.get(held)
    store.close()
    assert served_stale > 20
