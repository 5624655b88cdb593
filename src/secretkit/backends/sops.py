"""SOPS-encrypted files (``sops://``), decrypted in-process so no plaintext is written anywhere.

The file formats, the value cipher and the MAC live in ``_sops``; this module is the backend
and the helpers the CLI uses (``is_sops_file``, ``decrypt_dotenv``, ``describe``).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .._backend import Fetched
from .._errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    InvalidReference,
    SecretNotFound,
)
from .._localfile import UnsafeFile, read_local_bytes
from .._redact import remember
from .._refs import SecretRef
from ._sops.age import local_age_recipients
from ._sops.formats import SopsDocument, looks_like_sops, parse_document
from ._sops.keys import KEY_TYPES, DataKeys, describe_key, key_groups
from ._sops.trust import KeyServicePolicy
from ._sops.values import EnvEntries, TreeRefused, decrypt_tree, go_float, lookup

__all__ = ["SopsBackend", "decrypt_dotenv", "describe", "is_sops_file"]

# The module-level helpers share one data-key cache; each backend has its own.
_SHARED_KEYS = DataKeys()
#: Files a backend keeps decrypted (paths come from references: kept small).
_MAX_OPENED = 64
#: Values of one file kept ready by field.
_MAX_FIELDS = 1024
#: A file modified this close to when it was read may have changed again within the same
#: timestamp tick (coarse clocks, 1-2 s on some file systems): its bytes are compared, not its stat.
_RACY_NS = 2_000_000_000


class SopsBackend:
    """Reads files that ``sops`` encrypted: YAML, JSON, dotenv, INI or binary.

    ``sops://config/secrets.enc.yaml#db.password`` is one value (dots walk maps, digits
    index lists; ``#API_KEY`` for a dotenv file); without ``#field`` the whole document
    comes back as JSON (a binary file: its content). Relative paths are relative to the
    working directory. Built with a file, ``SopsBackend("secrets.enc.env")``, it also serves
    plain names from that file (``API_KEY``, ``db.password``), so it can sit in a chain.
    A SOPS file is a local file: a store re-reads it about once a second, as it does a ``.env``
    file, so an edit (``sops set``) is seen within a second and is a rotation. A re-read is a
    ``stat`` while the file is unchanged (size, mtime, inode, ctime); a changed file is read,
    its MAC checked and its values decrypted again. The data key is recovered once (one age /
    KMS / transit call, within ``deadline`` seconds) and kept while the file's key entries stay
    the same. A file whose MAC does not match is refused whole (``AccessDenied``).
    Only encrypted values are served; a file's key entries reach a Vault address, AWS role or
    profile only when it is ``VAULT_ADDR`` or named in ``vault_addresses`` / ``kms_roles`` /
    ``aws_profiles`` (docs/backends/sops.md, "Trust model").
    """

    scheme = "sops"
    #: This backend accepts no ``?options``.
    options: frozenset[str] = frozenset()
    #: ``#field`` is a path inside the document, applied here (YAML, INI and dotenv are not JSON).
    consumes_field = True
    #: A file on this machine: re-read about once a second, not cached for the store's TTL.
    local = True

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        vault_addresses: Iterable[str] = (),
        vault_allow_http: bool = False,
        kms_roles: Iterable[str] = (),
        aws_profiles: Iterable[str] = (),
        deadline: float = 5.0,
    ) -> None:
        # A file's key entries are not authenticated: these name the key services, AWS roles and
        # profiles they may point at beyond VAULT_ADDR (docs/backends/sops.md, "Trust model").
        self.path = None if path is None else Path(path).absolute()
        policy = KeyServicePolicy.build(vault_addresses, vault_allow_http, kms_roles, aws_profiles)
        self._keys = DataKeys(policy)
        # The store calls a local backend on the reader's thread, with no deadline of its own:
        # recovering a data key (KMS, transit, an age key command) is the one step that can hang.
        self.deadline = deadline
        self._opened: dict[Path, _Opened] = {}

    def __repr__(self) -> str:
        return "SopsBackend()" if self.path is None else f"SopsBackend({str(self.path)!r})"

    @property
    def key_service_calls(self) -> int:
        """How many times this backend asked a key service (age, KMS, transit) for a data key."""
        return self._keys.key_service_calls

    def fetch(self, ref: SecretRef) -> Fetched:
        if ref.options:
            raise InvalidReference(
                f"the reference {str(ref.base)!r} has options ({', '.join(sorted(ref.options))}); "
                "the sops backend takes none"
            )
        file, field = self._target(ref)
        try:
            opened = self._open(Path(file))
        except FileNotFoundError:
            raise SecretNotFound(ref.path, detail="no such file") from None
        # A re-check of an unchanged file is a stat and this look-up, not a walk of the document.
        value = opened.values.get(field)
        if value is None:
            value = _value(opened, field, file)
            if len(opened.values) < _MAX_FIELDS:  # fields come from references: keep it small
                opened.values[field] = value
        return Fetched(value, version=opened.version)

    def close(self) -> None:
        self._opened.clear()
        self._keys.close()

    def _open(self, path: Path) -> _Opened:
        """``path`` decrypted: as last time while its stat is unchanged, else read again."""
        if not path.is_absolute():
            path = Path.cwd() / path
        try:
            signature = _signature(path)
        except FileNotFoundError:
            self._opened.pop(path, None)
            raise
        except (OSError, ValueError):  # unreadable, or no file can have that path: the read says why
            self._opened.pop(path, None)
            signature = None
        opened = self._opened.get(path)
        if (
            opened is not None
            and signature is not None
            and opened.signature == signature
            and signature[0] < opened.read_at - _RACY_NS
        ):
            return opened
        read_at = time.time_ns()
        data = _read(path)
        digest = hashlib.sha256(data).digest()
        if opened is not None and opened.digest == digest:
            # Touched, or recently written, but the same bytes: nothing to decrypt.
            opened.read_at, opened.signature = read_at, signature
            return opened
        fmt, plain, version = _decrypt(path, data, self._data_key)
        opened = _Opened(signature, read_at, digest, fmt, plain, version)
        # Every value of the file, not just the one asked for: the others are secrets too.
        # Registered while the decrypted file is kept, and for the released window after.
        remember(plain, owner=opened)
        if signature is not None:
            if len(self._opened) >= _MAX_OPENED:
                self._opened.clear()
            self._opened[path] = opened
        return opened

    def _data_key(self, metadata: dict[str, Any], file: str) -> bytes:
        known = self._keys.known(metadata)
        if known is not None:
            return known
        return _within(self.deadline, file, lambda: self._keys.get(metadata, file))

    def _target(self, ref: SecretRef) -> tuple[str, str | None]:
        """The file to read and the path inside it."""
        # A plain name of a chain arrives as SecretRef("sops", name), just as sops://name does:
        # the file given at construction answers it, whatever files the working directory
        # holds. Only a #field, or an absolute or ./ path, makes the reference name a file.
        if self.path is not None and ref.field is None and not _names_a_file(ref.path):
            return str(self.path), ref.path
        return ref.path, ref.field


def is_sops_file(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a file ``sops`` encrypted (any format); reads it, decrypts nothing.

    A FIFO, device or oversized file is not one: it is refused without waiting or reading it all.
    """
    try:
        data = read_local_bytes(path)
    except OSError:  # absent, unreadable, or UnsafeFile
        return False
    if not looks_like_sops(data):
        return False
    try:
        parse_document(Path(path), data)
    except ConfigurationError:
        return False
    return True


def decrypt_dotenv(path: str | os.PathLike[str]) -> dict[str, str]:
    """Every authenticated (encrypted) entry of a SOPS dotenv file, decrypted and MAC-checked.

    Unencrypted and empty entries are left out: the file does not authenticate them. The
    result's ``left_out`` names them.

    The values are secrets: each is registered for redaction before it is returned.
    Raises ``ConfigurationError`` when the file is not a SOPS dotenv file, ``AccessDenied``
    when no key opens it or it was tampered with, ``FileNotFoundError`` when it is absent.
    """
    file = Path(path)
    fmt, plain, _ = _open(file, _SHARED_KEYS)
    if fmt != "dotenv":
        raise ConfigurationError(f"{str(file)!r} is a SOPS {fmt} file, not a dotenv file")
    values = EnvEntries((str(k), _as_text_str(v)) for k, v in plain.items() if v is not None)
    values.left_out = tuple(getattr(plain, "left_out", ()))
    remember(values)
    return values


def describe(path: str | os.PathLike[str]) -> list[str]:
    """Human-readable lines about a SOPS file: format, key groups, and which could open it here.

    Decrypts nothing and contacts no key service: "could open" says which keys this
    environment has the means to try (a matching age identity, AWS or Vault settings).
    """
    file = Path(path)
    try:
        doc = parse_document(file, read_local_bytes(file))
    except UnsafeFile as exc:
        return [f"{file}: cannot be read: it {exc.why}"]
    except OSError as exc:
        return [f"{file}: cannot be read ({exc.strerror})"]
    except ConfigurationError as exc:
        return [str(exc)]
    meta = doc.metadata
    lines = [
        f"{file}: SOPS {doc.format} file, written by sops {meta.get('version', '?')}, "
        f"last modified {meta.get('lastmodified', '?')}"
    ]
    groups = key_groups(meta)
    if len(groups) > 1:
        lines.append(
            f"  {len(groups)} key groups, Shamir threshold {meta.get('shamir_threshold') or len(groups)} "
            "(not supported by secretkit)"
        )
    recipients = local_age_recipients()
    for index, group in enumerate(groups, 1):
        lines.append(f"  key group {index}:")
        for kind in KEY_TYPES:
            for entry in group[kind]:
                if isinstance(entry, dict):
                    lines.append(f"    {describe_key(kind, entry)}: {_could_open(kind, entry, recipients)}")
    rules = [
        f"{name}={meta[name]!r}"
        for name in (
            "unencrypted_suffix",
            "encrypted_suffix",
            "unencrypted_regex",
            "encrypted_regex",
            "mac_only_encrypted",
        )
        if meta.get(name)
    ]
    if rules:
        lines.append(f"  encryption rules: {', '.join(rules)}")
    return lines


class _Opened:
    """One decrypted file, kept while its stat is unchanged; its values stay registered while it is kept."""

    __slots__ = ("__weakref__", "digest", "fmt", "plain", "read_at", "signature", "values", "version")

    def __init__(
        self,
        signature: tuple[int, ...] | None,
        read_at: int,
        digest: bytes,
        fmt: str,
        plain: dict[str, Any],
        version: str,
    ) -> None:
        self.signature, self.read_at, self.digest = signature, read_at, digest
        self.fmt, self.plain, self.version = fmt, plain, version
        #: The values fetched from it so far, by field (``None``: the whole document).
        self.values: dict[str | None, str | bytes] = {}


def _signature(path: Path) -> tuple[int, ...]:
    """What changes when the file at ``path`` (a symlink: the file it names) is written or replaced.

    The modification time comes first: a file modified within ``_RACY_NS`` of a read is compared
    by its bytes, because a file system's timestamps may be too coarse to tell two writes apart.
    """
    info = os.stat(path)
    return (info.st_mtime_ns, info.st_size, info.st_ino, info.st_ctime_ns, info.st_dev)


def _open(path: Path, keys: DataKeys) -> tuple[str, dict[str, Any], str]:
    """``(format, decrypted tree, version)`` of the file at ``path``, read now."""
    if not path.is_absolute():
        path = Path.cwd() / path
    return _decrypt(path, _read(path), keys.get)


def _read(path: Path) -> bytes:
    try:
        return read_local_bytes(path)
    except PermissionError:
        raise AccessDenied(f"SOPS file {str(path)!r} cannot be read (permission denied)") from None
    except UnsafeFile as exc:
        raise ConfigurationError(
            f"SOPS file {str(path)!r} {exc.why}; point the sops backend at a regular file"
        ) from None


def _decrypt(
    path: Path, data: bytes, data_key: Callable[[dict[str, Any], str], bytes]
) -> tuple[str, dict[str, Any], str]:
    """``(format, decrypted tree, version)`` of a file's bytes; the version is a hash of them."""
    doc: SopsDocument = parse_document(path, data)
    key = data_key(doc.metadata, str(path))
    try:
        plain = decrypt_tree(doc.tree, doc.metadata, key)
    except TreeRefused as exc:
        raise AccessDenied(f"SOPS file {str(path)!r} is refused: {exc}") from None
    return doc.format, plain, hashlib.sha256(data).hexdigest()[:16]


def _within(deadline: float, file: str, recover: Callable[[], bytes]) -> bytes:
    """``recover()`` on a thread the reader stops waiting for after ``deadline`` seconds.

    The abandoned recovery runs on until the key service's own timeouts end it; it holds the
    data-key flight, so readers meanwhile wait for it rather than each calling the service.
    """
    box: list[bytes | BaseException] = []

    def run() -> None:
        try:
            box.append(recover())
        except BaseException as exc:  # handed to the reader, whatever it is
            box.append(exc)

    thread = threading.Thread(target=run, name="secretkit-sops-key", daemon=True)
    thread.start()
    thread.join(deadline)
    if not box:
        raise BackendUnavailable(
            f"SOPS file {file!r}: no key service returned its data key within the {deadline:g} s "
            "deadline; check that the KMS or Vault transit service it names is reachable"
        )
    result = box[0]
    if isinstance(result, BaseException):
        raise result
    return result


def _value(opened: _Opened, field: str | None, file: str) -> str | bytes:
    """The value ``field`` names in a decrypted file (the whole document for ``None``)."""
    # Only authenticated values are in `plain` (values.py): the lookup says why one is not.
    document: Any = lookup(opened.plain, "data", file) if opened.fmt == "binary" else opened.plain
    if field is None:
        return document if isinstance(document, (str, bytes)) else _json(document)
    if opened.fmt == "binary":
        # A binary file holding a JSON object behaves as a JSON secret does.
        try:
            document = json.loads(document)
        except ValueError:
            raise ConfigurationError(
                f"SOPS file {file!r} is a binary file, not JSON, so it has no field "
                f"{field!r}; drop the #field"
            ) from None
    return _as_text(lookup(document, field, file))


def _names_a_file(path: str) -> bool:
    """A path a backend built with a file still reads as a file: absolute or ``./``-relative."""
    return path.startswith(("/", "./", ".\\")) or Path(path).is_absolute()


def _as_text(value: Any) -> str | bytes:
    if isinstance(value, bytes):
        return value
    return _as_text_str(value)


def _as_text_str(value: Any) -> str:
    # Scalars as `sops decrypt --extract` prints them; maps and lists as JSON.
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return _json(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_as_text_str)


def _could_open(kind: str, entry: dict[str, Any], recipients: set[str] | None) -> str:
    if kind == "age" and str(entry.get("recipient", "")).startswith("ssh-"):
        home = Path(os.environ.get("HOME") or Path.home())
        has_ssh = bool(os.environ.get("SOPS_AGE_SSH_PRIVATE_KEY_FILE")) or any(
            (home / ".ssh" / name).is_file() for name in ("id_ed25519", "id_rsa")
        )
        return "may open: an SSH private key is present" if has_ssh else "not here: no SSH private key"
    if kind == "age":
        if recipients is None:
            return 'not here: pyrage is not installed (pip install "secretkit[sops]")'
        if entry.get("recipient") in recipients:
            return "can open: a matching age identity is present"
        return "not here: no matching age identity (SOPS_AGE_KEY, SOPS_AGE_KEY_FILE, keys.txt)"
    if kind == "kms":
        has_creds = any(
            os.environ.get(v)
            for v in (
                "AWS_ACCESS_KEY_ID",
                "AWS_PROFILE",
                "AWS_ROLE_ARN",
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            )
        )
        return (
            "may open: AWS credentials are set"
            if has_creds
            else "unknown: no AWS credentials in the environment"
        )
    if kind == "hc_vault":
        has_token = bool(os.environ.get("VAULT_TOKEN")) or (Path.home() / ".vault-token").is_file()
        return (
            "may open: a Vault token is present"
            if has_token
            else "not here: no VAULT_TOKEN or ~/.vault-token"
        )
    return "not supported by secretkit"
