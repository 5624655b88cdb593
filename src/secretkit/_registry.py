"""The scheme table: which class serves a scheme, imported only on first use.

Third-party backends register under the ``secretkit.backends`` entry-point group
(``myscheme = "mypkg.backend:MyBackend"``); built-in schemes win over entry points.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass
from typing import Any

from . import _fork
from ._errors import ConfigurationError, InvalidReference
from ._refs import reference_scheme

__all__ = ["KNOWN_BACKENDS", "BackendSpec", "backend_class", "is_reference", "known_schemes"]

ENTRY_POINT_GROUP = "secretkit.backends"


@dataclass(frozen=True)
class BackendSpec:
    target: str  # "module:Class"
    extra: str | None  # the pip extra that installs its SDK, None for the core
    package: str | None  # the SDK's import name, for error messages


# Kept sorted by scheme (a test checks it).
KNOWN_BACKENDS: dict[str, BackendSpec] = {
    "aws-sm": BackendSpec("secretkit.backends.aws:AwsSecretsManagerBackend", "aws", "boto3"),
    "aws-ssm": BackendSpec("secretkit.backends.aws_ssm:AwsParameterStoreBackend", "aws", "boto3"),
    "azure-kv": BackendSpec(
        "secretkit.backends.azure:AzureKeyVaultBackend", "azure", "azure-keyvault-secrets"
    ),
    "dotenv": BackendSpec("secretkit.backends.dotenv:DotenvBackend", None, None),
    "env": BackendSpec("secretkit.backends.env:EnvBackend", None, None),
    "file": BackendSpec("secretkit.backends.files:FileBackend", None, None),
    "gcp-sm": BackendSpec(
        "secretkit.backends.gcp:GcpSecretManagerBackend", "gcp", "google-cloud-secret-manager"
    ),
    "memory": BackendSpec("secretkit.backends.memory:MemoryBackend", None, None),
    "sops": BackendSpec("secretkit.backends.sops:SopsBackend", "sops", "pyrage"),
    "vault": BackendSpec("secretkit.backends.vault:VaultBackend", "vault", "hvac"),
}

_lock = threading.Lock()
_entry_points: dict[str, Any] | None = None


def _load_entry_points() -> dict[str, Any]:
    global _entry_points
    loaded = _entry_points
    if loaded is not None:
        return loaded  # read without the lock once loaded: this runs on every unknown scheme
    with _lock:
        if _entry_points is None:
            from importlib.metadata import entry_points

            _entry_points = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        return _entry_points


def known_schemes() -> frozenset[str]:
    """Every scheme a reference may use: built-in and registered through entry points."""
    return frozenset(KNOWN_BACKENDS) | frozenset(_load_entry_points())


def is_known(scheme: str) -> bool:
    return scheme in KNOWN_BACKENDS or scheme in _load_entry_points()


def is_reference(value: object) -> bool:
    """True for a ``str`` shaped ``scheme://...`` whose scheme a backend serves.

    Only known schemes count, so ``postgres://user@host/db`` in a variable stays a value.
    """
    if not isinstance(value, str) or "://" not in value:
        return False
    scheme = reference_scheme(value)
    return scheme is not None and is_known(scheme)


def backend_class(scheme: str) -> type[Any]:
    """The class serving ``scheme``; its module (and so its SDK) is imported now."""
    spec = KNOWN_BACKENDS.get(scheme)
    if spec is not None:
        module_name, _, attr = spec.target.partition(":")
        return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]
    ep = _load_entry_points().get(scheme)
    if ep is None:
        known = ", ".join(sorted(known_schemes()))
        raise InvalidReference(
            f"no backend serves the scheme {scheme!r}; known schemes: {known}. "
            f"A third-party backend registers one under the {ENTRY_POINT_GROUP!r} entry-point group."
        )
    try:
        cls = ep.load()
    except ImportError as exc:
        raise ConfigurationError(
            f"the backend registered for {scheme!r} ({ep.value}) could not be imported: {exc}"
        ) from exc
    return cls  # type: ignore[no-any-return]


@_fork.in_child
def _new_lock() -> None:
    global _lock
    _lock = threading.Lock()


def _reset_for_tests() -> None:
    global _entry_points
    with _lock:
        _entry_points = None
