"""Finding age identities where ``sops`` finds them: variables, commands, key files and SSH keys."""

from __future__ import annotations

import os
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..._errors import ConfigurationError, MissingDependency
from ..._localfile import UnsafeFile, read_local_bytes

__all__ = ["Identities", "age_identities", "age_identity_sources", "local_age_recipients"]

_TIMEOUT = 10.0


@dataclass
class Identities:
    """The identities found, and the places they came from (for error messages; no key material)."""

    keys: list[Any] = field(default_factory=list)
    places: list[str] = field(default_factory=list)


def age_identity_sources(recipient: str = "") -> list[tuple[str, str]]:
    """``(place, text)`` of each source of native age identities present, in sops's order.

    ``recipient`` is passed to ``SOPS_AGE_KEY_CMD`` as ``SOPS_AGE_RECIPIENT``, as sops does.
    """
    sources: list[tuple[str, str]] = []
    if os.environ.get("SOPS_AGE_KEY"):
        # sops allows several identities per line here, separated by commas.
        sources.append(("SOPS_AGE_KEY", os.environ["SOPS_AGE_KEY"].replace(",", "\n")))
    key_file = os.environ.get("SOPS_AGE_KEY_FILE")
    if key_file:
        sources.append(("SOPS_AGE_KEY_FILE", _read_text(Path(key_file).expanduser(), "SOPS_AGE_KEY_FILE")))
    command = os.environ.get("SOPS_AGE_KEY_CMD")
    if command:
        sources.append(("SOPS_AGE_KEY_CMD", _run(command, "SOPS_AGE_KEY_CMD", recipient).decode()))
    default = _default_key_file()
    if default is not None and default.is_file():
        sources.append((str(default), _read_text(default, str(default))))
    return sources


def age_identities(recipient: str = "") -> Identities:
    """Every age identity this environment holds: native ones and SSH keys, as sops loads them."""
    try:
        from pyrage import ssh, x25519
    except ImportError:
        raise MissingDependency("sops", "pyrage", "sops") from None
    found = Identities()
    for place, text in age_identity_sources(recipient):
        found.places.append(place)
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("AGE-SECRET-KEY-1"):
                try:
                    found.keys.append(x25519.Identity.from_str(line))
                except Exception:  # pyrage's IdentityError; its text could quote the key
                    raise ConfigurationError(
                        f"{place} holds a line that is not a valid age identity"
                    ) from None
    for place, data, required in _ssh_sources(recipient):
        try:
            found.keys.append(ssh.Identity.from_buffer(data))
        except Exception:
            # A passphrase-protected ~/.ssh key is common and sops skips it too; a key named
            # explicitly must work.
            if required:
                raise ConfigurationError(
                    f"{place} is not an unencrypted OpenSSH ed25519 or RSA private key"
                ) from None
            continue
        found.places.append(place)
    return found


def local_age_recipients() -> set[str] | None:
    """The recipients of this environment's native age identities; ``None`` without pyrage."""
    try:
        from pyrage import x25519
    except ImportError:
        return None
    recipients: set[str] = set()
    try:
        sources = age_identity_sources()
    except ConfigurationError:
        return recipients
    for _, text in sources:
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("AGE-SECRET-KEY-1"):
                try:
                    recipients.add(str(x25519.Identity.from_str(line).to_public()))
                except Exception:  # noqa: S112 - an invalid line opens nothing; fetch reports it
                    continue
    return recipients


def _ssh_sources(recipient: str) -> list[tuple[str, bytes, bool]]:
    sources: list[tuple[str, bytes, bool]] = []
    key_file = os.environ.get("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
    if key_file:
        path = Path(key_file).expanduser()
        sources.append(
            ("SOPS_AGE_SSH_PRIVATE_KEY_FILE", _read_bytes(path, "SOPS_AGE_SSH_PRIVATE_KEY_FILE"), True)
        )
    command = os.environ.get("SOPS_AGE_SSH_PRIVATE_KEY_CMD")
    if command:
        output = _run(command, "SOPS_AGE_SSH_PRIVATE_KEY_CMD", recipient)
        sources.append(("SOPS_AGE_SSH_PRIVATE_KEY_CMD", output, True))
    home = os.environ.get("HOME")
    if home:
        for name in ("id_ed25519", "id_rsa"):
            path = Path(home) / ".ssh" / name
            if path.is_file():
                try:
                    sources.append((str(path), read_local_bytes(path), False))
                except OSError:  # unreadable, or not a bounded regular file (UnsafeFile)
                    continue
    return sources


def _default_key_file() -> Path | None:
    base = os.environ.get("XDG_CONFIG_HOME")
    if not base:
        home = os.environ.get("HOME")
        if not home:
            return None
        # Go's os.UserConfigDir, which sops uses.
        darwin = os.uname().sysname == "Darwin"
        base = str(Path(home) / ("Library/Application Support" if darwin else ".config"))
    return Path(base) / "sops" / "age" / "keys.txt"


def _read_text(path: Path, place: str) -> str:
    return _read_bytes(path, place).decode("utf-8", "replace")


def _read_bytes(path: Path, place: str) -> bytes:
    try:
        return read_local_bytes(path)
    except UnsafeFile as exc:
        raise ConfigurationError(f"{place}: {str(path)!r} cannot be read: it {exc.why}") from None
    except OSError as exc:
        raise ConfigurationError(f"{place}: {str(path)!r} cannot be read ({exc.strerror})") from None


def _run(command: str, place: str, recipient: str) -> bytes:
    env = {**os.environ, "SOPS_AGE_RECIPIENT": recipient}
    try:
        result = subprocess.run(  # noqa: S603 - the user's own configured command, as sops runs it
            shlex.split(command), capture_output=True, timeout=_TIMEOUT, check=False, env=env
        )
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        raise ConfigurationError(f"{place} could not be run ({type(exc).__name__})") from None
    if result.returncode != 0:
        raise ConfigurationError(f"{place} exited with status {result.returncode}")
    return result.stdout
