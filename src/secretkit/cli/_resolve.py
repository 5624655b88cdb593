"""Names and references resolved for every command, batched per backend, failures kept per key."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import _registry
from .._refs import parse_reference, reference_scheme
from .._secret import Secret
from .._store import SecretStore
from ._exits import EXIT_CONFIG, EXIT_USAGE, CliError
from ._output import shown_name
from ._sops import decrypt_env_file, is_sops


def as_text(value: object) -> str:
    """A value as an environment variable holds it (the rule of ``secretkit.environ``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return json.dumps(value)


is_reference = _registry.is_reference


def resolve_all(
    store: SecretStore, keys: Sequence[str]
) -> tuple[dict[str, Secret[Any]], dict[str, BaseException]]:
    """Resolve names and references, batched per backend; every failure is kept, none raised."""
    failures: dict[str, BaseException] = {}
    batch: list[str] = []
    for key in dict.fromkeys(keys):
        scheme = reference_scheme(key) if "://" in key else None
        if scheme is not None:
            # Built (and its SDK imported) here, where any error can be caught per key:
            # prefetch() expects backends that can at least be constructed. The store's
            # allow-list is asked first, so a refused reference builds no backend.
            try:
                store._check_allowed(key, parse_reference(key))
                store.backend_for(scheme)
            except Exception as exc:  # reported per key
                failures[key] = exc
                continue
        batch.append(key)
    if batch:
        failures.update(store.prefetch(batch))
    resolved: dict[str, Secret[Any]] = {}
    for key in batch:
        if key in failures:
            continue
        try:
            resolved[key] = store.get(key)
        except Exception as exc:  # reported per key
            failures[key] = exc
    return resolved, failures


def references_in_environment(*, dotenv: bool = True) -> dict[str, str]:
    """Variables of the environment and of ./.env whose value is a reference, by name."""
    from ..backends.dotenv import DotenvBackend

    found: dict[str, str] = {}
    if dotenv:
        backend = DotenvBackend(".env")
        for key, value in backend.values().items():
            if is_reference(value):
                found[key] = value
    for key, value in os.environ.items():
        if is_reference(value):
            found[key] = value  # the environment wins over .env, as in the default chain
    return found


def read_env_file(path: str) -> tuple[dict[str, str], bool]:
    """The ``KEY=VALUE`` entries of an ``--env-file``, each one an environment can hold.

    The flag says whether the file was SOPS-encrypted, so that its values are secrets.
    """
    from ..backends.dotenv import DotenvBackend

    file = Path(path)
    if not file.is_file():
        raise CliError(f"--env-file {shown_name(path)!r}: no such file", EXIT_USAGE)
    encrypted = is_sops(file)
    # The sops backend's decryption, or the dotenv backend's parser: a file reads the same
    # here as through sops:// or dotenv://.
    entries = decrypt_env_file(file) if encrypted else DotenvBackend(file).values()
    for key, value in entries.items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            # The OS would refuse it when the command starts; say which entry, not "embedded null byte".
            raise CliError(
                f"--env-file {shown_name(path)!r}: the entry {shown_name(key)!r} cannot be an environment "
                "variable (an empty name, '=' or NUL in the name, or NUL in the value)",
                EXIT_CONFIG,
            )
    return entries, encrypted
