"""``secretkit run --watch``: the command restarted (or signalled) when a secret it was given rotates.

``run`` resolves the environment as always, then hands the child to :func:`supervise`:

- the references are read through the store every ``poll_interval(--refresh)`` seconds, so
  the store refreshes them as a library user's reads would (one fetch per reference per
  0.8 of ``--refresh``), and a rotation arrives through ``store.on_rotate``;
- rotations within ``SETTLE`` seconds of each other make one restart, and a rotation that
  leaves every value the child has unchanged (a new version of the same value) makes none;
- a restart is SIGTERM, ``--grace`` seconds, SIGKILL, then the same command with the new
  environment; ``--on-rotate signal:HUP`` sends the signal instead and keeps the child;
- a child that exits on its own ends the command with its exit code, as without
  ``--watch``, except one that fails within ``STEADY`` seconds of a restart: that one is
  started again after 1, 2, 4 ... 30 seconds, ``MAX_CRASHES`` times at most;
- the values masked in the output grow with each rotation (old values stay masked).
"""

from __future__ import annotations

import signal
import time

from .._store import SecretStore
from ._exits import EXIT_USAGE, CliError
from ._output import shown_name
from ._resolve import as_text
from ._rotation import RotationWatch, notice, poll_interval
from ._supervise import Child, Masks, StopForwarder

#: Rotations closer together than this make one restart (one rotation job, several secrets).
SETTLE = 1.0
#: A child that fails sooner than this after a restart is restarted again, with backoff.
STEADY = 10.0
#: Restarts in a row of a child that keeps failing before secretkit gives up with its code.
MAX_CRASHES = 6
BACKOFF_MAX = 30.0


def watch_store(refresh: float) -> SecretStore:
    """The default store, rebuilt so that a remote secret lives ``refresh`` seconds."""
    from .._api import configure

    return configure(ttl=refresh)


def supervise(
    argv: list[str],
    env: dict[str, str],
    refs: dict[str, str],
    masked: list[object] | None,
    store: SecretStore,
    *,
    refresh: float,
    on_rotate: int | None = None,
    grace: float = 10.0,
) -> int:
    """Run ``argv`` with ``env`` and keep it on the current values of ``refs`` (variable -> reference).

    ``masked`` is what to mask in its output (``None``: not piped, not masked). Returns the
    exit code ``run`` returns: the child's, or 128+N when the user's signal N ended it.
    """
    if not refs:
        raise CliError(
            "run --watch found no variable holding a reference: nothing to watch; "
            "set VAR=scheme://... in the environment or an --env-file",
            EXIT_USAGE,
        )
    masks = None if masked is None else Masks(masked)
    watch = RotationWatch(store, list(refs.values()), poll=poll_interval(refresh), settle=SETTLE)
    forwarder = StopForwarder()
    forwarder.install()
    child: Child | None = None
    try:
        child = Child(argv, env, masks)
        forwarder.attach(child.proc)
        watch.start()
        restarted_at: float | None = None
        crashes = 0
        while True:
            code = child.poll()
            if code is not None:
                child.drain()
                if not _restart_after_exit(code, forwarder, restarted_at, crashes):
                    return _exit_code(code)
                crashes += 1
                delay = min(BACKOFF_MAX, 2.0 ** (crashes - 1))
                notice(
                    f"the command failed (exit {_exit_code(code)}) after a restart; "
                    f"starting it again in {delay:g} s"
                )
                if not _sleep(delay, forwarder):
                    return 128 + (forwarder.stop_signal or signal.SIGTERM)
                env = _current_env(env, refs, store, masks)
                forwarder.detach()
                child = Child(argv, env, masks)
                forwarder.attach(child.proc)
                restarted_at = time.monotonic()
                continue
            rotated = watch.wait(0.25)
            if not rotated or forwarder.stop_signal is not None:
                continue
            names = ", ".join(sorted(shown_name(var) for var, ref in refs.items() if ref in rotated))
            new_env = _current_env(env, refs, store, masks)
            if new_env == env:
                continue  # a new version of the same value: the child has it already
            env = new_env
            if on_rotate is not None:
                notice(f"{names} rotated: sending {signal.Signals(on_rotate).name} to the command")
                child.send(on_rotate)
                continue
            notice(f"{names} rotated: restarting the command")
            forwarder.detach()
            child.stop(grace)
            if forwarder.stop_signal is not None:
                return 128 + forwarder.stop_signal
            child = Child(argv, env, masks)
            forwarder.attach(child.proc)
            restarted_at = time.monotonic()
            crashes = 0
    finally:
        watch.close()
        forwarder.restore()
        if child is not None:
            # Output still in the pipes is passed on, masked, as run does without --watch.
            child.drain()


def _restart_after_exit(
    code: int, forwarder: StopForwarder, restarted_at: float | None, crashes: int
) -> bool:
    """Whether a child that exited on its own is started again: only one failing right after a restart."""
    if code == 0 or forwarder.stop_signal is not None or restarted_at is None:
        return False
    return time.monotonic() - restarted_at < STEADY and crashes < MAX_CRASHES


def _exit_code(code: int) -> int:
    return 128 - code if code < 0 else code


def _sleep(seconds: float, forwarder: StopForwarder) -> bool:
    """Wait, unless the user's signal arrives first (then False)."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if forwarder.stop_signal is not None:
            return False
        time.sleep(min(left, 0.1))
    return forwarder.stop_signal is None


def _current_env(
    env: dict[str, str], refs: dict[str, str], store: SecretStore, masks: Masks | None
) -> dict[str, str]:
    """``env`` with each reference's current value; a value that cannot be had (or held) stays as it was."""
    new = dict(env)
    fresh: list[object] = []
    for var, ref in refs.items():
        try:
            value = store.get(ref).reveal()
        except Exception:  # noqa: S112 - the watch's reader says so, and keeps trying
            continue
        text = as_text(value)
        if "\0" in text:
            notice(
                f"{shown_name(var)}: the rotated secret contains a NUL character; keeping the previous value"
            )
            continue
        if text != env.get(var):
            fresh.append(value)
        new[var] = text
    if masks is not None and fresh:
        # Before the child can have them: a restarted child's first line is masked too.
        masks.add(fresh)
    return new
