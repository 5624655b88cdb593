"""Decrypting a SOPS tree's values and checking its MAC, as the SOPS format defines them.

Each value is AES-256-GCM with a 32-byte IV, authenticated with its path (``a:b:c:``); the
MAC is SHA-512 over every value in document order, stored encrypted under the data key
with ``lastmodified`` as authenticated data. The cipher is ``cryptography``'s.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from decimal import Decimal
from typing import Any

from ..._errors import MissingDependency

__all__ = ["TreeRefused", "decrypt_tree", "go_float"]

_ENC = re.compile(r"^ENC\[AES256_GCM,data:(.+),iv:(.+),tag:(.+),type:(.+)\]")
# sops seeds the hash with these bytes when only encrypted values are MACed, so the two
# modes never produce the same MAC (sops.go: MACOnlyEncryptedInitialization).
_MAC_ONLY_ENCRYPTED_SEED = bytes.fromhex("8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69")
_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


class TreeRefused(Exception):
    """The tree cannot be trusted; the message says why, naming a path, never a value."""


def decrypt_tree(tree: dict[str, Any], metadata: dict[str, Any], key: bytes) -> dict[str, Any]:
    """The decrypted copy of ``tree``, after its MAC checked out; raises ``TreeRefused`` otherwise."""
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise MissingDependency("sops", "cryptography", "sops") from None

    if metadata.get("unencrypted_comment_regex") or metadata.get("encrypted_comment_regex"):
        raise TreeRefused(
            "it uses unencrypted_comment_regex / encrypted_comment_regex, which secretkit does not support"
        )
    aead = AESGCM(key)
    rules = _Rules(metadata)
    mac_only_encrypted = bool(metadata.get("mac_only_encrypted"))
    digest = hashlib.sha512()
    if mac_only_encrypted:
        digest.update(_MAC_ONLY_ENCRYPTED_SEED)

    def leaf(value: Any, path: list[str]) -> Any:
        encrypted = rules.encrypted(path)
        if encrypted:
            if not isinstance(value, str):
                raise TreeRefused(
                    f"the value at {_where(path)} should be encrypted but is a plain {_kind(value)}"
                )
            plain, mac_bytes = _decrypt_value(aead, value, path)
        else:
            plain, mac_bytes = value, _mac_bytes(value)
        if encrypted or not mac_only_encrypted:
            digest.update(mac_bytes)
        return plain

    def walk(node: Any, path: list[str]) -> Any:
        if isinstance(node, dict):
            return {k: walk(v, [*path, str(k)]) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, path) for v in node]  # list items share their parent's path
        if node is None:
            return None  # sops neither encrypts nor MACs a null
        return leaf(node, path)

    plain_tree: dict[str, Any] = walk(tree, [])
    stored = metadata.get("mac")
    if not isinstance(stored, str) or not stored:
        raise TreeRefused("it has no MAC")
    try:
        expected, _ = _decrypt_value(aead, stored, None, aad=str(metadata.get("lastmodified", "")))
    except TreeRefused:
        raise TreeRefused(
            "its MAC cannot be decrypted with the data key (the MAC or lastmodified was changed)"
        ) from None
    if not hmac.compare_digest(str(expected).encode(), digest.hexdigest().upper().encode()):
        raise TreeRefused("its MAC does not match its content (a value or key was changed, added or removed)")
    return plain_tree


class _Rules:
    """Which paths sops encrypted, from the suffix / regex settings the file records."""

    def __init__(self, metadata: dict[str, Any]) -> None:
        self.unencrypted_suffix = str(metadata.get("unencrypted_suffix") or "")
        self.encrypted_suffix = str(metadata.get("encrypted_suffix") or "")
        self.unencrypted_regex = _compile(metadata.get("unencrypted_regex"))
        self.encrypted_regex = _compile(metadata.get("encrypted_regex"))

    def encrypted(self, path: list[str]) -> bool:
        # The same precedence as sops's shouldBeEncrypted: later rules override earlier ones.
        encrypted = True
        if self.unencrypted_suffix and any(p.endswith(self.unencrypted_suffix) for p in path):
            encrypted = False
        if self.encrypted_suffix:
            encrypted = any(p.endswith(self.encrypted_suffix) for p in path)
        if self.unencrypted_regex is not None and any(self.unencrypted_regex.search(p) for p in path):
            encrypted = False
        if self.encrypted_regex is not None:
            encrypted = any(self.encrypted_regex.search(p) for p in path)
        return encrypted


def _compile(pattern: Any) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(str(pattern))
    except re.error:
        raise TreeRefused("its encrypted/unencrypted regex is not a valid regular expression") from None


def _decrypt_value(aead: Any, text: str, path: list[str] | None, aad: str | None = None) -> tuple[Any, bytes]:
    from cryptography.exceptions import InvalidTag

    if text == "":
        return "", b""  # sops leaves empty values as they are
    match = _ENC.match(text)
    where = "the MAC" if path is None else f"the value at {_where(path)}"
    if match is None:
        raise TreeRefused(f"{where} is not in sops's ENC[AES256_GCM,...] form")
    try:
        data, iv, tag = (base64.b64decode(match.group(i), validate=True) for i in (1, 2, 3))
    except (binascii.Error, ValueError):
        raise TreeRefused(f"{where} has data, iv or tag that is not base64") from None
    kind = match.group(4)
    if aad is None:
        aad = "".join(f"{p}:" for p in path or [])
    try:
        raw = aead.decrypt(iv, data + tag, aad.encode())
    except (InvalidTag, ValueError):
        raise TreeRefused(
            f"{where} does not decrypt with the data key (changed ciphertext, or moved to another key)"
        ) from None
    return _typed(raw, kind, where)


def _typed(raw: bytes, kind: str, where: str) -> tuple[Any, bytes]:
    """The value as its type tag says, and the bytes sops hashes into the MAC for it."""
    try:
        if kind in ("str", "time", "comment"):
            try:
                return raw.decode("utf-8"), raw
            except UnicodeDecodeError:
                return raw, raw  # a binary file's payload
        if kind == "bytes":
            return raw, raw
        text = raw.decode("ascii")
        if kind == "int":
            number = int(text)
            return number, str(number).encode()
        if kind == "float":
            real = float(text)
            return real, go_float(real).encode()
        if kind == "bool":
            if text not in _GO_TRUE | _GO_FALSE:
                raise ValueError(text)
            flag = text in _GO_TRUE
            return flag, b"True" if flag else b"False"
    except (ValueError, UnicodeDecodeError):
        raise TreeRefused(f"{where} does not hold a valid {kind}") from None
    raise TreeRefused(f"{where} has the unknown type {kind!r}")


def _mac_bytes(value: Any) -> bytes:
    # sops's ToBytes for a value it left in plaintext.
    if isinstance(value, bool):
        return b"True" if value else b"False"
    if isinstance(value, int):
        return str(value).encode()
    if isinstance(value, float):
        return go_float(value).encode()
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8")


def go_float(value: float) -> str:
    """``value`` as Go's ``strconv.FormatFloat(v, 'f', -1, 64)`` writes it (no exponent)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(value)), "f")
    return text[:-2] if text.endswith(".0") else text


def _where(path: list[str]) -> str:
    return repr(".".join(path)) if path else "the top"


def _kind(value: Any) -> str:
    return type(value).__name__
