"""Recovering a SOPS file's data key from the key groups it records: age, AWS KMS, Vault transit.

The data key is cached by the encrypted copies the file holds, so a file is opened with one
key-service call per data key, however often it is read or edited with ``sops set``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ..._errors import AccessDenied, BackendUnavailable, ConfigurationError, MissingDependency
from ..._localfile import read_local_text
from .age import age_identities
from .trust import KeyServicePolicy, Untrusted

__all__ = ["KEY_TYPES", "DataKeys", "describe_key", "key_groups"]

#: The master-key types a key group may hold, as sops names them in the metadata.
KEY_TYPES = ("age", "kms", "hc_vault", "gcp_kms", "azure_kv", "hckms", "pgp")
_UNSUPPORTED = {
    "gcp_kms": "GCP KMS",
    "azure_kv": "Azure Key Vault keys",
    "hckms": "HuaweiCloud KMS",
    "pgp": "PGP",
}
_MAX_KEYS = 256
_TIMEOUT = 10.0


def key_groups(metadata: dict[str, Any]) -> list[dict[str, list[dict[str, Any]]]]:
    """The file's key groups; a file without ``key_groups`` has one, made of its top-level keys."""
    groups = metadata.get("key_groups")
    if isinstance(groups, list) and groups:
        return [{t: list(g.get(t) or []) for t in KEY_TYPES} for g in groups if isinstance(g, dict)]
    return [{t: list(metadata.get(t) or []) for t in KEY_TYPES}]


def describe_key(kind: str, key: dict[str, Any]) -> str:
    """One master key as a short label (no key material)."""
    if kind == "age":
        return f"age {key.get('recipient', '?')}"
    if kind == "kms":
        return f"AWS KMS {key.get('arn', '?')}"
    if kind == "hc_vault":
        where = f"{key.get('engine_path', '?')}/keys/{key.get('key_name', '?')}"
        return f"Vault transit {key.get('vault_address', '?')}/v1/{where}"
    if kind == "gcp_kms":
        return f"GCP KMS {key.get('resource_id', '?')}"
    if kind == "azure_kv":
        return f"Azure Key Vault {key.get('vault_url', '?')}/keys/{key.get('name', '?')}"
    if kind == "pgp":
        return f"PGP {key.get('fp', '?')}"
    return kind


class DataKeys:
    """Recovers data keys and remembers them, bounded, by the encrypted copies they came from."""

    def __init__(self, policy: KeyServicePolicy | None = None) -> None:
        #: Which Vault addresses, AWS roles and profiles a file's key entries may name.
        self.policy = policy or KeyServicePolicy()
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, bytes] = OrderedDict()
        self._clients: dict[tuple[str, ...], Any] = {}
        self._flights: dict[str, threading.Lock] = {}
        #: Calls made to a key service (age decryption counts as one): for stats and benchmarks.
        self.key_service_calls = 0

    def known(self, metadata: dict[str, Any]) -> bytes | None:
        """The data key of a file with these key entries, if one was recovered; asks no key service."""
        fingerprint = _fingerprint(key_groups(metadata))
        with self._lock:
            key = self._keys.get(fingerprint)
            if key is not None:
                self._keys.move_to_end(fingerprint)
            return key

    def get(self, metadata: dict[str, Any], file: str) -> bytes:
        groups = key_groups(metadata)
        fingerprint = _fingerprint(groups)
        with self._lock:
            key = self._keys.get(fingerprint)
            if key is not None:
                self._keys.move_to_end(fingerprint)
                return key
            # One recovery per data key: threads reading other fields of the same cold file wait
            # for it rather than each calling KMS (the store single-flights per name, not per file).
            flight = self._flights.setdefault(fingerprint, threading.Lock())
        with flight:
            with self._lock:
                key = self._keys.get(fingerprint)
            if key is None:
                try:
                    key = self._recover(groups, metadata, file)
                    with self._lock:
                        self._keys[fingerprint] = key
                        while len(self._keys) > _MAX_KEYS:
                            self._keys.popitem(last=False)
                finally:
                    with self._lock:
                        self._flights.pop(fingerprint, None)
        return key

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, {}
            self._keys.clear()
        for client in clients.values():
            closer = getattr(client, "close", None)
            if callable(closer):
                closer()

    def _recover(
        self, groups: list[dict[str, list[dict[str, Any]]]], metadata: dict[str, Any], file: str
    ) -> bytes:
        if len(groups) > 1:
            threshold = metadata.get("shamir_threshold") or len(groups)
            raise ConfigurationError(
                f"SOPS file {file!r} splits its data key over {len(groups)} key groups (Shamir threshold "
                f"{threshold}); secretkit does not support Shamir key groups: use one key group, "
                "or `sops decrypt`"
            )
        reasons: list[str] = []
        unavailable = False
        unsupported: list[str] = []
        group = groups[0]
        for kind in KEY_TYPES:
            for entry in group[kind]:
                if not isinstance(entry, dict):
                    continue
                if kind in _UNSUPPORTED:
                    unsupported.append(_UNSUPPORTED[kind])
                    continue
                try:
                    return self._decrypt_one(kind, entry)
                except _Refused as exc:
                    reasons.append(f"{describe_key(kind, entry)}: {exc}")
                except _Unreachable as exc:
                    unavailable = True
                    reasons.append(f"{describe_key(kind, entry)}: {exc}")
        if unsupported and not reasons:
            raise ConfigurationError(
                f"SOPS file {file!r} can only be opened with {', '.join(sorted(set(unsupported)))}, which "
                "secretkit does not support; add an age, AWS KMS or Vault transit key with `sops updatekeys`"
            )
        detail = "; ".join(reasons) or "the file records no key"
        if unsupported:
            detail += f"; not supported: {', '.join(sorted(set(unsupported)))}"
        cls = BackendUnavailable if unavailable else AccessDenied
        raise cls(f"SOPS file {file!r}: no key could decrypt its data key ({detail})")

    def _decrypt_one(self, kind: str, entry: dict[str, Any]) -> bytes:
        # The file's metadata is not authenticated: where a credential goes is checked against
        # the operator's policy before any key service is contacted.
        try:
            if kind == "kms":
                profile = self.policy.aws_profile(str(entry.get("aws_profile") or "") or None)
                role = self.policy.kms_role(str(entry.get("role") or "") or None)
            elif kind == "hc_vault":
                url = self.policy.vault_url(str(entry.get("vault_address", "")))
        except Untrusted as exc:
            raise _Refused(str(exc)) from None
        with self._lock:
            self.key_service_calls += 1
        if kind == "age":
            return self._age(entry)
        if kind == "kms":
            return self._kms(entry, profile, role)
        return self._transit(entry, url)

    def _age(self, entry: dict[str, Any]) -> bytes:
        import pyrage

        found = age_identities(str(entry.get("recipient", "")))
        if not found.keys:
            raise _Refused(
                "no age identity found (set SOPS_AGE_KEY or SOPS_AGE_KEY_FILE, or use "
                "~/.config/sops/age/keys.txt or an SSH key)"
            )
        try:
            return pyrage.decrypt(str(entry.get("enc", "")).encode(), found.keys)
        except pyrage.DecryptError:
            raise _Refused(
                f"none of the {len(found.keys)} age identities from {', '.join(found.places)} "
                "is its recipient"
            ) from None

    def _kms(self, entry: dict[str, Any], profile: str | None, role: str | None) -> bytes:
        try:
            import boto3
            from botocore.config import Config
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError:
            raise MissingDependency("sops", "boto3", "aws") from None
        arn = str(entry.get("arn", ""))
        region = arn.split(":")[3] if arn.count(":") >= 5 else None
        cache_key = ("kms", region or "", profile or "", role or "")
        try:
            with self._lock:
                client = self._clients.get(cache_key)
            if client is None:
                session = boto3.session.Session(profile_name=profile, region_name=region)
                config = Config(connect_timeout=5, read_timeout=_TIMEOUT, retries={"max_attempts": 2})
                if role:
                    creds = session.client("sts", config=config).assume_role(
                        RoleArn=role, RoleSessionName="secretkit-sops"
                    )["Credentials"]
                    session = boto3.session.Session(
                        aws_access_key_id=creds["AccessKeyId"],
                        aws_secret_access_key=creds["SecretAccessKey"],
                        aws_session_token=creds["SessionToken"],
                        region_name=region,
                    )
                client = session.client("kms", config=config)
                with self._lock:
                    self._clients[cache_key] = client
            context = {str(k): str(v) for k, v in (entry.get("context") or {}).items()}
            response = client.decrypt(
                CiphertextBlob=base64.b64decode(str(entry.get("enc", ""))),
                KeyId=arn,
                EncryptionContext=context,
            )
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code") or "?"
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "?")
            raise _Refused(f"KMS refused Decrypt ({code}, HTTP {status})") from None
        except BotoCoreError as exc:
            raise _Unreachable(f"KMS could not be reached ({type(exc).__name__})") from None
        return bytes(response["Plaintext"])

    def _transit(self, entry: dict[str, Any], url: str) -> bytes:
        try:
            import hvac
            import hvac.exceptions
            import requests
        except ImportError:
            raise MissingDependency("sops", "hvac", "vault") from None
        with self._lock:
            client = self._clients.get(("hc_vault", url))
        if client is None:
            verify: bool | str = os.environ.get("VAULT_CACERT") or True
            client = hvac.Client(url=url, token=_vault_token(), timeout=_TIMEOUT, verify=verify)
            with self._lock:
                self._clients[("hc_vault", url)] = client
        try:
            response = client.secrets.transit.decrypt_data(
                name=str(entry.get("key_name", "")),
                ciphertext=str(entry.get("enc", "")),
                mount_point=str(entry.get("engine_path", "")),
            )
        except (hvac.exceptions.Forbidden, hvac.exceptions.Unauthorized):
            raise _Refused("Vault refused transit decrypt (permission denied)") from None
        except hvac.exceptions.InvalidRequest:
            raise _Refused(
                "Vault refused transit decrypt (no such key, or the ciphertext is not its)"
            ) from None
        except hvac.exceptions.InvalidPath:
            raise _Refused("Vault has no transit engine at that path") from None
        except (hvac.exceptions.VaultError, requests.RequestException) as exc:
            raise _Unreachable(f"Vault could not be reached ({type(exc).__name__})") from None
        return base64.b64decode(response["data"]["plaintext"])


def _fingerprint(groups: list[dict[str, list[dict[str, Any]]]]) -> str:
    # The encrypted copies of the data key: the same while `sops set` edits values, new after
    # `sops rotate` or `sops updatekeys`.
    return hashlib.sha256(json.dumps(groups, sort_keys=True, default=str).encode()).hexdigest()


def _vault_token() -> str | None:
    token = os.environ.get("VAULT_TOKEN")
    if token:
        return token
    path = Path.home() / ".vault-token"
    try:
        return read_local_text(path).strip() or None
    except (OSError, UnicodeDecodeError):
        return None


class _Refused(Exception):
    """A key service answered no: the key is not ours, or access is denied."""


class _Unreachable(Exception):
    """A key service did not answer: worth retrying later."""
