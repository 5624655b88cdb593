"""Which Vault mount holds a path, and its KV version: asked once per mount, shared by every reader.

A cold start reads many secrets of one mount at once. Each read needs the mount's KV
version (``sys/internal/ui/mounts/<path>``, as the vault CLI asks), and one answer serves
them all: the first reader of a mount asks while the others wait for its answer (single
flight), and the answer is remembered for the backend's life. Without it, every worker of
a cold start asked again (a prefetch of 100 secrets made 8 look-ups, one per worker).

A KV reference's path is ``<mount>/<name>`` (or ``<name>`` under the backend's ``mount=``);
:meth:`VaultMounts.locate` splits it into the mount and the path inside it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .._errors import AccessDenied, InvalidReference, SecretNotFound
from .._refs import SecretRef

__all__ = ["VaultMounts", "not_kv"]


class _Asking:
    """One look-up in flight: its readers wait on ``done``; ``fallback`` if the server would not say."""

    __slots__ = ("done", "fallback")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.fallback: str | None = None


class VaultMounts:
    """The mounts one backend has learnt, and the look-ups under way.

    ``ask(ref, api_path)`` makes the look-up request (with the backend's token and error
    mapping) and returns Vault's answer; ``wait`` bounds how long a reader waits for another
    reader's look-up before it asks itself. ``mount`` (the backend's ``mount=``) prefixes every
    path; ``kv_version`` (its ``kv_version=``) spares the look-up.
    """

    def __init__(
        self,
        ask: Callable[[SecretRef, str], Any],
        wait: float,
        *,
        mount: str | None = None,
        kv_version: int | None = None,
    ) -> None:
        self._ask = ask
        self._wait = wait
        self._mount = mount.strip("/") if mount else None
        self._kv_version = kv_version
        #: mount path (no slashes at the ends) -> (KV version, or 0 when not KV; engine type)
        self.known: dict[str, tuple[int, str]] = {}
        self.after_fork()

    def after_fork(self) -> None:
        # A look-up a parent thread had in flight never ends in a child.
        self._lock = threading.Lock()
        self._asking: dict[str, _Asking] = {}

    def locate(self, ref: SecretRef) -> tuple[str, str, int]:
        """``(mount, path inside the mount, KV version)`` for a KV reference."""
        path = ref.path.strip("/")
        full = f"{self._mount}/{path}" if self._mount else path
        if "/" not in full:
            # A plain name tried by a store's chain ("API_KEY"): not a Vault path, so not
            # here, and the chain moves on.
            raise SecretNotFound(ref.path, detail="a Vault path is <mount>/<name>, e.g. secret/app/db")
        known = self.learnt(full)
        if known is None:
            default_mount = self._mount or full.partition("/")[0]
            if self._kv_version is not None:
                known = (default_mount, self._kv_version)
            else:
                known = self.find(ref, full, default_mount)
        mount, kv_version = known
        sub = full[len(mount) + 1 :]
        if not sub:
            raise SecretNotFound(ref.path, detail=f"that is the mount {mount!r} itself; name a secret in it")
        return mount, sub, kv_version

    def find(self, ref: SecretRef, path: str, default_mount: str) -> tuple[str, int]:
        """``(mount, KV version)`` for ``path`` (``<mount>/<name>``), asking Vault at most once per mount."""
        hit = self.learnt(path)
        if hit is not None:
            return hit
        key = path.partition("/")[0]
        with self._lock:
            asking = self._asking.get(key)
            leader = asking is None
            if asking is None:
                asking = self._asking[key] = _Asking()
        if not leader:
            asking.done.wait(self._wait)
            hit = self.learnt(path)
            if hit is not None:
                return hit
            if asking.fallback == default_mount:
                return default_mount, 2
            return self._look_up(ref, path, default_mount, None)  # a nested mount, or the leader failed
        try:
            return self._look_up(ref, path, default_mount, asking)
        finally:
            with self._lock:
                if self._asking.get(key) is asking:
                    del self._asking[key]
            asking.done.set()

    def learnt(self, path: str) -> tuple[str, int] | None:
        """The remembered mount holding ``path``; raises for a mount that is not KV."""
        mounts = self.known
        cut = path.find("/")
        while cut > 0:
            hit = mounts.get(path[:cut])
            if hit is not None:
                if not hit[0]:
                    raise not_kv(path[:cut], hit[1])
                return path[:cut], hit[0]
            cut = path.find("/", cut + 1)
        return None

    def _look_up(
        self, ref: SecretRef, path: str, default_mount: str, asking: _Asking | None
    ) -> tuple[str, int]:
        # Any token with a capability on the path may ask this endpoint.
        try:
            response = self._ask(ref, f"sys/internal/ui/mounts/{path}")
        except (AccessDenied, SecretNotFound):
            # No such mount, or one this token may not see: read it as KV v2 under its
            # first segment and let that read say what is wrong. Not remembered (the mount
            # may appear later), but the readers waiting on this look-up take it too.
            if asking is not None:
                asking.fallback = default_mount
            return default_mount, 2
        data = response["data"]
        mount = str(data["path"]).strip("/")
        engine = str(data.get("type") or "")
        kv_version = 0
        if engine in ("kv", "generic"):
            kv_version = 2 if str((data.get("options") or {}).get("version") or "1") == "2" else 1
        self.known[mount] = (kv_version, engine)
        if not kv_version:
            raise not_kv(mount, engine)
        return mount, kv_version


def not_kv(mount: str, engine: str) -> InvalidReference:
    return InvalidReference(
        f"the Vault mount {mount!r} is a {engine or 'non-KV'} engine, not KV; "
        f"read it with ?engine=generic (vault://{mount}/...?engine=generic)"
    )
