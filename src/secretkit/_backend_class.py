"""What a backend class says about itself before it is built, for the tools that never build it.

``secretkit doctor`` and the credential consumers ask the class, not an instance, so no SDK
is imported and no client is made. A backend class declares, as class-level data or a
classmethod:

- ``settings``: a tuple of :class:`Setting`, the environment variables and files its SDK
  reads, each saying whether its value may be shown;
- ``reachability(env, refs)``: the :class:`Probe` that checks its server answers, or ``None``;
- ``pending_reference(ref)``: the reference to the pending version of ``ref``, or ``None``
  (for credential consumers, see ``secretkit.integrations``).

The tools ask the class (:func:`settings_of`, :func:`reachability_of`, :func:`pending_of`)
instead of switching on its scheme, so a new backend, built in or from an entry point,
brings its own. A backend declaring none of them gets the defaults: nothing to show,
nothing to probe, no pending version.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._refs import SecretRef

__all__ = [
    "Judge",
    "Probe",
    "Setting",
    "any_status",
    "pending_of",
    "reachability_of",
    "settings_of",
]

#: Reads an HTTP status: ``(reachable, what to say)``.
Judge = Callable[[int], tuple[bool, str]]


def any_status(status: int) -> tuple[bool, str]:
    """Any HTTP answer means the server is reachable (a 403 to an anonymous GET included)."""
    return True, f"HTTP {status}"


@dataclass(frozen=True)
class Setting:
    """An environment variable, or a file under the home directory, that configures a backend.

    ``shown``: the value may be printed (an address, a region); otherwise ``doctor`` says only
    that it is set. ``file``: ``name`` is a path (``~/.vault-token``; a trailing ``/`` is a
    directory) whose presence is reported, never its content.
    """

    name: str
    shown: bool = False
    file: bool = False


@dataclass(frozen=True)
class Probe:
    """One bounded GET that tells whether a backend's server answers, as the backend would reach it.

    ``url`` is asked with ``path`` appended (the user-info and query of ``url`` are dropped
    before it is sent or shown); ``setting`` names the variable ``url`` came from, for the
    message when it is no URL. ``judge`` reads the status (by default any answer is
    reachable). TLS: ``verify=False`` skips verification; ``cafile`` (from the variable
    ``cafile_setting``) is the bundle to verify with. ``refused`` reports the backend
    unreachable without a request (a setting that cannot be used as given); ``note`` is said
    beside the result. ``Probe(note=...)`` alone says why nothing is probed.
    """

    url: str | None = None
    path: str = ""
    setting: str | None = None
    judge: Judge = any_status
    verify: bool = True
    cafile: str | None = None
    cafile_setting: str | None = None
    refused: str | None = None
    note: str | None = None


def settings_of(cls: type[Any]) -> tuple[Setting, ...]:
    """The settings ``cls`` declares; none when it declares nothing (or something else)."""
    declared = getattr(cls, "settings", ())
    if not isinstance(declared, tuple | list):
        return ()
    return tuple(item for item in declared if isinstance(item, Setting))


def reachability_of(cls: type[Any], env: Mapping[str, str], refs: Sequence[SecretRef]) -> Probe | None:
    """What ``cls`` says to probe, given the environment and the references to its scheme."""
    probe = getattr(cls, "reachability", None)
    if not callable(probe):
        return None
    found = probe(env, refs)
    return found if isinstance(found, Probe) else None


def pending_of(cls: type[Any], ref: SecretRef) -> SecretRef | None:
    """The pending version of ``ref`` as ``cls`` names it, or ``None`` where it has none."""
    pending = getattr(cls, "pending_reference", None)
    if not callable(pending):
        return None
    found = pending(ref)
    return found if isinstance(found, SecretRef) else None
