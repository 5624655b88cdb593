"""Where a SOPS file's key entries may send the application's credentials: the operator decides.

A file's metadata is not authenticated (the MAC covers values only), so a Vault address, an
AWS role or an AWS profile written in it is attacker input. Each is used only when the
operator named it: ``VAULT_ADDR`` or an allow-list given to ``SopsBackend``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["KeyServicePolicy", "Untrusted", "origin"]

_DEFAULT_PORTS = {"https": 443, "http": 80}
_SHOWN = 200  # characters of a file's address quoted in an error: the file chose them


class Untrusted(Exception):
    """A key entry names a destination the operator did not allow; the message says how to allow it."""


def origin(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an http(s) URL, or None when it has none we can trust to compare.

    User-info is refused outright: ``https://vault@evil`` must not look like ``vault``.
    """
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or "@" in parts.netloc or not parts.hostname:
        return None
    host = parts.hostname.lower().rstrip(".")
    if not host or any(ord(c) < 0x21 or c in "\\%" for c in host):
        return None
    return scheme, host, port if port is not None else _DEFAULT_PORTS[scheme]


@dataclass(frozen=True)
class KeyServicePolicy:
    """The destinations a SOPS key entry may name, beyond ``VAULT_ADDR``."""

    vault_addresses: tuple[str, ...] = ()
    vault_allow_http: bool = False
    kms_roles: frozenset[str] = frozenset()
    aws_profiles: frozenset[str] = frozenset()

    @classmethod
    def build(
        cls,
        vault_addresses: Iterable[str] = (),
        vault_allow_http: bool = False,
        kms_roles: Iterable[str] = (),
        aws_profiles: Iterable[str] = (),
    ) -> KeyServicePolicy:
        if isinstance(vault_addresses, str) or isinstance(kms_roles, str) or isinstance(aws_profiles, str):
            raise TypeError("vault_addresses, kms_roles and aws_profiles take lists, not a single string")
        addresses = tuple(vault_addresses)
        for address in addresses:
            if origin(address) is None:
                raise ValueError(
                    f"vault_addresses: {address[:_SHOWN]!r} is not an http(s) address without user-info"
                )
        return cls(addresses, bool(vault_allow_http), frozenset(kms_roles), frozenset(aws_profiles))

    def vault_url(self, address: str) -> str:
        """The operator's URL for the transit address a file names; raises ``Untrusted`` otherwise.

        The URL returned is the operator's own text, not the file's: what the request is sent to
        never depends on how a URL parser reads the file's string.
        """
        shown = repr(address[:_SHOWN])
        wanted = origin(address)
        how = (
            f"set VAULT_ADDR to it or pass SopsBackend(vault_addresses=[{shown}]) if that server "
            "is yours; a SOPS file does not decide where the Vault token is sent"
        )
        if wanted is None:
            raise Untrusted(f"the transit address {shown} is not an http(s) address without user-info")
        allowed = [a for a in (os.environ.get("VAULT_ADDR", ""), *self.vault_addresses) if a]
        match = next((a for a in allowed if origin(a) == wanted), None)
        if match is None:
            raise Untrusted(
                f"the transit address {shown} is neither VAULT_ADDR nor an allowed address: {how}"
            )
        if wanted[0] == "http" and not self.vault_allow_http:
            raise Untrusted(
                f"the transit address {shown} is plain http, which would send the Vault token "
                "unencrypted; use https, or pass SopsBackend(vault_allow_http=True) to accept it"
            )
        return match.strip()

    def kms_role(self, role: str | None) -> str | None:
        """The role a KMS entry asks to assume, if the operator allowed it; raises ``Untrusted`` otherwise."""
        return _allowed(
            role, self.kms_roles, "asks to assume the AWS role", "kms_roles", "if that role is yours"
        )

    def aws_profile(self, profile: str | None) -> str | None:
        """The AWS profile a KMS entry names, when the operator allowed it; raises ``Untrusted`` otherwise."""
        return _allowed(profile, self.aws_profiles, "names the AWS profile", "aws_profiles", "to allow it")


def _allowed(value: str | None, allowed: frozenset[str], asks: str, option: str, how: str) -> str | None:
    """``value`` when the file names none or one ``option`` allows; ``Untrusted`` otherwise."""
    if value is None or value in allowed:
        return value
    shown = repr(value[:_SHOWN])
    raise Untrusted(
        f"the file {asks} {shown}; a SOPS file does not choose the credentials "
        f"secretkit uses: pass SopsBackend({option}=[{shown}]) {how}"
    )
