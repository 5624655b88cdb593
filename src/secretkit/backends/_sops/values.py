"""Decrypting a SOPS tree's values and checking its MAC, as the SOPS format defines them.

Each value is AES-256-GCM with a 32-byte IV, authenticated with its path (``a:b:c:``); the
MAC is SHA-512 over every value in document order, stored encrypted under the data key
with ``lastmodified`` as authenticated data. The cipher is ``cryptography``'s.

Only what the format authenticates comes out: a value that was decrypted with the data key.
Unencrypted entries, empty values and nulls are attacker input (the MAC skips them, or joins
them without separators), so the tree handed back leaves them out and says which it left.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from decimal import Decimal
from typing import Any

from ..._errors import ConfigurationError, MissingDependency, SecretNotFound

__all__ = ["EnvEntries", "PlainTree", "TreeRefused", "decrypt_tree", "go_float", "lookup"]

# Each part stops at the character that ends it (base64 holds no ',', a type no ']'): linear,
# where `(.+),iv:(.+),...` backtracked ~n^4 (a 3 KB crafted value took seconds per read).
_ENC = re.compile(r"^ENC\[AES256_GCM,data:([^,]+),iv:([^,]+),tag:([^,]+),type:([^\]]+)\]")
# sops seeds the hash with these bytes when only encrypted values are MACed, so the two
# modes never produce the same MAC (sops.go: MACOnlyEncryptedInitialization).
_MAC_ONLY_ENCRYPTED_SEED = bytes.fromhex("8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69")
_GO_TRUE = {"1", "t", "T", "TRUE", "true", "True"}
_GO_FALSE = {"0", "f", "F", "FALSE", "false", "False"}


class TreeRefused(Exception):
    """The tree cannot be trusted; the message says why, naming a path, never a value."""


class PlainTree(dict[str, Any]):
    """A decrypted tree holding authenticated values only.

    ``left_out`` maps each entry that was dropped (as a ``#field`` path) to why: so a lookup
    can say "not encrypted" rather than "not found". A map or list left with no authenticated
    value is dropped too, and so is a whole list with any item dropped: an item's index is not
    authenticated, so no item of such a list is served (see ``_UNAUTHENTICATED_ITEM``).
    """

    left_out: dict[str, str]

    def __init__(self, tree: dict[str, Any], left_out: dict[str, str]) -> None:
        super().__init__(tree)
        self.left_out = left_out


class EnvEntries(dict[str, str]):
    """A SOPS dotenv file's authenticated entries, and the names of those left out."""

    left_out: tuple[str, ...] = ()


_NOT_ENCRYPTED = "it is stored unencrypted, so the file does not authenticate it"
_EMPTY = "it is empty, and sops neither encrypts nor authenticates an empty value"
_NULL = "it is null, and sops neither encrypts nor authenticates a null"
_NOTHING = "it holds no encrypted value"
_COLON = "a key on its path holds ':', which sops's authentication cannot tell apart from nesting"
# List items share their list's path in sops's authentication, and a null, an empty value or a
# map of them is not MACed: such an item added before the others moves each one an index up
# and the MAC still holds. So the index of every item of the list is unauthenticated.
_UNAUTHENTICATED_ITEM = (
    "its item {index} is not authenticated ({why}); sops authenticates neither the items' "
    "indexes nor such an item, so one added without the key would change which value an index "
    "gives: no item of this list is served (make every item a non-empty value, or use a map)"
)


class _Dropped:
    """Marks a node that is not served, and why."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def decrypt_tree(tree: dict[str, Any], metadata: dict[str, Any], key: bytes) -> PlainTree:
    """The authenticated values of ``tree``, after its MAC checked out; raises ``TreeRefused`` otherwise."""
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
        # Every value is hashed (the MAC needs them all); only decrypted ones are served. An
        # unencrypted value is MACed at best without separators: its bytes can move to a neighbour.
        if not encrypted:
            return _Dropped(_NOT_ENCRYPTED)
        if value == "":
            return _Dropped(_EMPTY)
        if any(":" in p for p in path):
            return _Dropped(_COLON)
        return plain

    left_out: dict[str, str] = {}

    def walk(node: Any, path: list[str], shown: list[str]) -> Any:
        if isinstance(node, dict):
            kept = {}
            for k, v in node.items():
                value = walk(v, [*path, str(k)], [*shown, str(k)])
                if isinstance(value, _Dropped):
                    left_out[".".join([*shown, str(k)])] = value.reason
                else:
                    kept[k] = value
            return kept if kept else _Dropped(_NOTHING)
        if isinstance(node, list):
            # Every item is walked, dropped or not: the MAC needs each value in document order.
            items = [walk(v, path, [*shown, str(i)]) for i, v in enumerate(node)]
            dropped = [(i, v) for i, v in enumerate(items) if isinstance(v, _Dropped)]
            if not dropped:
                return items if items else _Dropped(_NOTHING)
            if len(dropped) == len(items):
                return _Dropped(_NOTHING)
            index, first = dropped[0]
            return _Dropped(_UNAUTHENTICATED_ITEM.format(index=index, why=first.reason))
        if node is None:
            return _Dropped(_NULL)  # sops neither encrypts nor MACs a null
        return leaf(node, path)

    walked = walk(tree, [], [])
    plain_tree = PlainTree({} if isinstance(walked, _Dropped) else walked, left_out)
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


def lookup(document: Any, field: str, file: str) -> Any:
    """The one value ``field`` names in ``document``: dots walk maps, digits index lists.

    A key may itself hold dots (a dotenv name, an INI section): it is matched when that is the
    only reading of the path. When two readings both name a value (``db.password`` as a key and
    ``db`` → ``password``), the lookup is refused rather than picking one: which entry a path
    means never depends on what else a file holds. Raises ``SecretNotFound`` (saying why when
    the entry exists but is not authenticated) or ``ConfigurationError``.
    """
    found: list[Any] = []
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack and len(found) < 2:
        node, start = stack.pop()
        if (id(node), start) in seen:
            continue
        seen.add((id(node), start))
        if isinstance(node, dict):
            children = [(str(k), v) for k, v in node.items()]
        elif isinstance(node, list):
            end = field.find(".", start)
            index = field[start : len(field) if end == -1 else end]
            ok = index.isascii() and index.isdigit() and int(index) < len(node)
            children = [(index, node[int(index)])] if ok else []
        else:
            continue
        for key, child in children:
            if not field.startswith(key, start):
                continue
            after = start + len(key)
            if after == len(field):
                found.append(child)
            elif field[after] == ".":
                stack.append((child, after + 1))
    if len(found) > 1:
        raise ConfigurationError(
            f"SOPS file {file!r}: the field {field!r} names more than one entry (a key with a dot "
            "in its name, and nested keys); rename one so that the path means one value"
        )
    if found:
        return found[0]
    left_out: dict[str, str] = getattr(document, "left_out", {})
    where = field
    reason = left_out.get(field)
    if reason is None:
        # An entry inside one left out as a whole (an item of a refused list): that one says why.
        ancestors = (field[:at] for at, char in enumerate(field) if char == ".")
        where = next((a for a in ancestors if a in left_out), field)
        reason = left_out.get(where)
    if reason is None and any(path.startswith(field + ".") for path in left_out):
        reason = _NOTHING
    if reason is None:
        detail = f"the SOPS file has no value at {field!r}"
    else:
        detail = f"the SOPS file's entry at {where!r} is not served as a secret: {reason}"
    raise SecretNotFound(f"{file}#{field}", detail=detail)


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
