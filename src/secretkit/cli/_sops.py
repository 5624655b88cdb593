"""SOPS-encrypted files in the CLI: an ``--env-file`` decrypted in-process, the files a set-up uses described.

The decryption, the MAC check and the key groups are the ``sops`` backend's; this module
only decides which files are SOPS files and what ``check`` and ``doctor`` say about them.
Nothing here is imported unless a command meets such a file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .._refs import parse_reference
from ._exits import EXIT_CONFIG, PROG, CliError
from ._loaders import is_loader_variable
from ._output import flush, shown_name, terminal_safe
from ._urls import scrub_credentials


def is_sops(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a file ``sops`` encrypted (reads it, decrypts nothing)."""
    from ..backends.sops import is_sops_file

    return is_sops_file(path)


def decrypt_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The authenticated entries of a SOPS dotenv file, decrypted; each value is registered for masking.

    An entry the file does not authenticate (stored unencrypted, or empty) never reaches the
    child: it is left out with a note on stderr, and a loader variable among them (``BASH_ENV``,
    ``LD_PRELOAD``, ...) refuses the run, since someone changed how the command loads code.
    """
    from ..backends.sops import decrypt_dotenv

    entries = decrypt_dotenv(path)
    left_out: tuple[str, ...] = getattr(entries, "left_out", ())
    shown = shown_name(str(path))
    loaders = [name for name in left_out if is_loader_variable(name)]
    if loaders:
        raise CliError(
            f"--env-file {shown!r}: {', '.join(shown_name(n) for n in loaders[:5])} "
            f"{'is' if len(loaders) == 1 else 'are'} not encrypted in the SOPS file; a variable that "
            "decides what code the command loads is taken from a SOPS file only when encrypted: "
            "encrypt it (sops set), or set it in the environment",
            EXIT_CONFIG,
        )
    if left_out:
        names = ", ".join(shown_name(n) for n in left_out[:10]) + (", ..." if len(left_out) > 10 else "")
        flush(sys.stdout)
        print(
            terminal_safe(
                f"{PROG}: note: --env-file {shown!r}: left out {len(left_out)} "
                f"{'entry' if len(left_out) == 1 else 'entries'} the SOPS file does not authenticate "
                f"(unencrypted or empty): {names}"
            ),
            file=sys.stderr,
            flush=True,
        )
    return entries


def sops_paths(keys: Iterable[str]) -> list[str]:
    """The files named by ``sops://`` references among ``keys``, and keys that are SOPS files themselves."""
    found: dict[str, None] = {}
    for key in keys:
        if key.startswith("sops://"):
            try:
                found[parse_reference(key).path] = None
            except Exception:  # noqa: S112 - a malformed reference is reported where it is resolved
                continue
        elif "://" not in key and _is_file(key) and is_sops(key):
            found[key] = None
    return list(found)


def describe_files(paths: Iterable[str]) -> list[dict[str, Any]]:
    """For each path: whether it is a SOPS file, and the backend's lines on its key groups (no values)."""
    from ..backends.sops import describe

    reports: list[dict[str, Any]] = []
    for path in paths:
        shown = shown_name(path)
        if not _is_file(path):
            reports.append({"path": shown, "sops": False, "description": [f"{shown}: no such file"]})
        elif not is_sops(path):
            reports.append({"path": shown, "sops": False, "description": [f"{shown}: not a SOPS file"]})
        else:
            lines = [scrub_credentials(line) for line in describe(path)]
            reports.append({"path": shown, "sops": True, "description": lines})
    return reports


def print_sops_files(reports: list[dict[str, Any]]) -> None:
    print("sops files:")
    for report in reports:
        for line in report["description"]:
            print(f"  {line}")


def _is_file(path: str) -> bool:
    try:
        return len(path) < 4096 and Path(path).is_file()
    except (OSError, ValueError):
        return False
