"""A SOPS file is a local file: an edit is seen within about a second and is a rotation.

A store re-reads it about once a second, as it does a ``.env`` file. An unchanged file costs
a ``stat``; a changed one is read and decrypted again, with the data key it already has.
Files are written by the real ``sops`` binary; the store runs on a fake clock, so "a second"
is the clock's, not the test's.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

import secretkit.backends.sops as sops_module
from secretkit import SecretNotFound, SecretStore
from secretkit.backends.sops import SopsBackend
from secretkit.testing import FakeClock

PLAIN = "db:\n  password: live-db-password-1\ntoken: live-token-aaaa\n"
AN_HOUR_AGO = time.time() - 3600


def store_with(backend: SopsBackend, clock: FakeClock) -> SecretStore:
    # The TTL is far beyond anything the tests advance: a value seen to change was re-read
    # because the file is local, not because it expired.
    return SecretStore([backend], ttl=300, jitter=0.0, negative_ttl=0, clock=clock)


def counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Counts calls to the sops module's ``name`` (its file reads, its decryptions)."""
    calls: list[int] = []
    real = getattr(sops_module, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(sops_module, name, counted)
    return calls


def test_sops_set_is_seen_within_a_second_and_fires_on_rotate(sops, age_flags, tmp_path, clock) -> None:
    """`sops set` on a file a store has read: a read a second later has the new value, as a rotation."""
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)
    backend = SopsBackend()
    store = store_with(backend, clock)
    ref = f"sops://{path}#token"
    first = store.get(ref)
    rotations: list[tuple[str, str]] = []
    store.on_rotate(ref, lambda old, new: rotations.append((old.reveal(), new.reveal())))
    sops.run("set", str(path), '["token"]', '"live-token-bbbb"')
    clock.advance(1.1)
    second = store.get(ref)
    assert (first.reveal(), second.reveal()) == ("live-token-aaaa", "live-token-bbbb")
    assert first.version != second.version
    assert rotations == [("live-token-aaaa", "live-token-bbbb")]
    # The edit kept the file's key entries: no second age / KMS / transit call.
    assert backend.key_service_calls == 1


def test_an_edit_is_not_seen_before_the_recheck(sops, age_flags, tmp_path, clock) -> None:
    """Within the second, a read is a cache hit: the file is not looked at on every read."""
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)
    store = store_with(SopsBackend(), clock)
    ref = f"sops://{path}#token"
    assert store.get(ref).reveal() == "live-token-aaaa"
    sops.run("set", str(path), '["token"]', '"live-token-bbbb"')
    clock.advance(0.5)
    assert store.get(ref).reveal() == "live-token-aaaa"
    clock.advance(0.6)
    assert store.get(ref).reveal() == "live-token-bbbb"


def test_an_unchanged_file_is_stat_ed_not_read_or_decrypted(
    sops, age_flags, tmp_path, clock, monkeypatch
) -> None:
    """Re-checked every second for a minute, an unchanged file is read and decrypted once."""
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)
    os.utime(path, (AN_HOUR_AGO, AN_HOUR_AGO))  # out of the window where a stat cannot be trusted
    reads = counting(monkeypatch, "read_local_bytes")
    decryptions = counting(monkeypatch, "decrypt_tree")
    backend = SopsBackend()
    store = store_with(backend, clock)
    for _ in range(60):
        assert store.get(f"sops://{path}#token").reveal() == "live-token-aaaa"
        assert store.get(f"sops://{path}#db.password").reveal() == "live-db-password-1"
        clock.advance(1.1)
    assert store.stats()["fetches"] >= 100  # the store did go back to the file every second
    assert (len(reads), len(decryptions)) == (1, 1)


def test_a_touched_but_unchanged_file_is_not_decrypted_again(
    sops, age_flags, tmp_path, clock, monkeypatch
) -> None:
    """A new mtime with the same bytes (a `touch`) is read, compared, not decrypted: no rotation."""
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)
    decryptions = counting(monkeypatch, "decrypt_tree")
    store = store_with(SopsBackend(), clock)
    ref = f"sops://{path}#token"
    first = store.get(ref)
    rotations: list[object] = []
    store.on_rotate(ref, lambda old, new: rotations.append(new))
    path.touch()
    clock.advance(1.1)
    assert store.get(ref).version == first.version
    assert (len(decryptions), rotations) == (1, [])


def test_a_rewrite_in_the_same_timestamp_tick_is_seen(sops, age_flags, tmp_path, monkeypatch) -> None:
    """With one-second timestamps, two same-size writes in a second have one stat: the bytes decide."""
    real = sops_module._signature

    def coarse(path: Path) -> tuple[int, ...]:
        # FAT, SMB and some network mounts: times in whole seconds (ext4 here has nanoseconds).
        mtime, size, inode, ctime, device = real(path)
        second = 1_000_000_000
        return (mtime // second * second, size, inode, ctime // second * second, device)

    monkeypatch.setattr(sops_module, "_signature", coarse)
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)
    edited = tmp_path / "edited.enc.yaml"
    shutil.copy(path, edited)
    sops.run("set", str(edited), '["token"]', '"live-token-bbbb"')
    before, after = path.read_bytes(), edited.read_bytes()
    assert len(before) == len(after)  # the same size: only the times could tell them apart
    backend = SopsBackend()
    ref = sops_module.SecretRef(f"sops://{path}#token")
    for _ in range(5):  # retried only if the two writes straddle a second
        path.write_bytes(before)
        signature = coarse(path)
        assert backend.fetch(ref).value == "live-token-aaaa"
        path.write_bytes(after)
        if coarse(path) == signature:
            assert backend.fetch(ref).value == "live-token-bbbb"
            return
    raise AssertionError("the two writes never fell in the same second")


def test_a_swapped_symlink_is_seen_as_the_new_file(sops, age_flags, tmp_path, clock) -> None:
    """Kubernetes updates a mounted secret by swapping a symlink: the file behind it is a new one."""
    old = sops.encrypt(tmp_path / "v1" / "s.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)
    new = tmp_path / "v2" / "s.enc.yaml"
    new.parent.mkdir()
    shutil.copy(old, new)
    sops.run("set", str(new), '["token"]', '"live-token-bbbb"')
    link = tmp_path / "s.enc.yaml"
    link.symlink_to(old)
    store = store_with(SopsBackend(), clock)
    ref = f"sops://{link}#token"
    assert store.get(ref).reveal() == "live-token-aaaa"
    swap = tmp_path / "swap"
    swap.symlink_to(new)
    os.replace(swap, link)
    clock.advance(1.1)
    assert store.get(ref).reveal() == "live-token-bbbb"


def test_a_deleted_file_is_no_longer_served(sops, age_flags, tmp_path, clock) -> None:
    """A file removed from disk stops being served at the next re-check, not at the end of the TTL."""
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)
    store = store_with(SopsBackend(), clock)
    ref = f"sops://{path}#token"
    assert store.get(ref).reveal() == "live-token-aaaa"
    path.unlink()
    clock.advance(1.1)
    with pytest.raises(SecretNotFound):
        store.get(ref)


def test_a_chain_file_serves_plain_names_live(sops, age_flags, tmp_path, clock) -> None:
    """A backend built with a file, in a chain, serves its plain names with the same one-second rule."""
    path = sops.encrypt(tmp_path / "s.enc.env", "API_KEY=live-api-key-1\n", fmt="dotenv", keys=age_flags)
    store = store_with(SopsBackend(path), clock)
    assert store.get("API_KEY").reveal() == "live-api-key-1"
    sops.run("set", str(path), '["API_KEY"]', '"live-api-key-2"')
    clock.advance(1.1)
    assert store.get("API_KEY").reveal() == "live-api-key-2"


def test_the_opened_files_kept_are_bounded(sops, age_flags, tmp_path) -> None:
    """References choose the paths: a backend keeps at most a few dozen decrypted files."""
    path = sops.encrypt(tmp_path / "s.enc.yaml", PLAIN, fmt="yaml", keys=age_flags)
    backend = SopsBackend()
    for i in range(sops_module._MAX_OPENED + 10):
        copy = Path(tmp_path / f"copy-{i}.enc.yaml")
        shutil.copy(path, copy)
        assert backend.fetch(sops_module.SecretRef(f"sops://{copy}#token")).value == "live-token-aaaa"
    assert len(backend._opened) <= sops_module._MAX_OPENED
    assert backend.key_service_calls == 1
