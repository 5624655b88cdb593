"""What is installed and configured per backend, found without importing any SDK."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _registry
from .._errors import public_name
from .._refs import looks_like_reference
from ._probes import Reach
from ._urls import shown_setting

# Import names of the SDK distributions the extras install (find_spec needs the module).
_IMPORT_NAMES = {
    "boto3": "boto3",
    "hvac": "hvac",
    "google-cloud-secret-manager": "google.cloud.secretmanager",
    "grpcio": "grpc",
    "azure-keyvault-secrets": "azure.keyvault.secrets",
    "azure-identity": "azure.identity",
    "pydantic": "pydantic",
    "pydantic-settings": "pydantic_settings",
}

# Per scheme: the variables its SDK reads, and whether a variable's value is safe to show.
_CONFIG_VARS: dict[str, list[tuple[str, bool]]] = {
    "aws": [
        ("AWS_ENDPOINT_URL", True),
        ("AWS_REGION", True),
        ("AWS_DEFAULT_REGION", True),
        ("AWS_PROFILE", True),
        ("AWS_ACCESS_KEY_ID", False),
        ("AWS_SECRET_ACCESS_KEY", False),
        ("AWS_SESSION_TOKEN", False),
        ("AWS_WEB_IDENTITY_TOKEN_FILE", True),
        ("AWS_ROLE_ARN", True),
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", True),
        ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", True),
    ],
    "aws-sm": [("AWS_ENDPOINT_URL_SECRETS_MANAGER", True)],
    "aws-ssm": [("AWS_ENDPOINT_URL_SSM", True)],
    "vault": [
        ("VAULT_ADDR", True),
        ("VAULT_TOKEN", False),
        ("VAULT_NAMESPACE", True),
        ("VAULT_CACERT", True),
        ("VAULT_SKIP_VERIFY", True),
    ],
    "gcp-sm": [
        ("GOOGLE_CLOUD_PROJECT", True),
        ("GCLOUD_PROJECT", True),
        ("GOOGLE_APPLICATION_CREDENTIALS", True),
    ],
    "azure-kv": [
        ("AZURE_TENANT_ID", False),
        ("AZURE_CLIENT_ID", False),
        ("AZURE_CLIENT_SECRET", False),
        ("AZURE_CLIENT_CERTIFICATE_PATH", True),
        ("AZURE_FEDERATED_TOKEN_FILE", True),
        ("AZURE_AUTHORITY_HOST", True),
    ],
}


@dataclass
class BackendReport:
    scheme: str
    extra: str | None
    module: bool
    packages: dict[str, str | None]  # distribution -> version, None when not importable
    configured: list[str]
    referenced_by: list[str]
    reach: Reach | None = None
    note: str | None = None

    @property
    def installed(self) -> bool:
        return self.module and all(v is not None for v in self.packages.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "scheme": self.scheme,
            "extra": self.extra,
            "installed": self.installed,
            "packages": self.packages,
            "configured": self.configured,
            "referenced_by": self.referenced_by,
            "reachable": self.reach.as_json() if self.reach else None,
            "note": self.note,
        }


def installed_version(dist: str) -> str | None:
    """The version of ``dist`` if its module can be imported, without importing it."""
    import importlib.metadata
    import importlib.util

    module = _IMPORT_NAMES.get(dist, dist.replace("-", "_"))
    try:
        if importlib.util.find_spec(module) is None:
            return None
    except (ImportError, ValueError):
        return None
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _extra_packages() -> dict[str, list[str]]:
    """Each extra's distributions, from secretkit's own metadata (the registry when there is none)."""
    import importlib.metadata

    extras: dict[str, list[str]] = {}
    try:
        requires = importlib.metadata.requires("secretkit") or []
    except importlib.metadata.PackageNotFoundError:
        requires = []
    for requirement in requires:
        marker = re.search(r"""extra\s*==\s*["']([^"']+)["']""", requirement)
        name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
        if marker and name and name.group(0).lower() != "secretkit":
            extras.setdefault(marker.group(1), []).append(name.group(0).lower())
    for spec in _registry.KNOWN_BACKENDS.values():
        if spec.extra and spec.package and spec.extra not in extras:
            extras[spec.extra] = [spec.package]
    return extras


def extras_report() -> dict[str, dict[str, str | None]]:
    return {
        extra: {dist: installed_version(dist) for dist in dists}
        for extra, dists in sorted(_extra_packages().items())
        if extra not in ("all", "test")
    }


def _module_present(target: str) -> bool:
    import importlib.util

    module = target.partition(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def backends_report(references: Mapping[str, str]) -> list[BackendReport]:
    extras = _extra_packages()
    reports: list[BackendReport] = []
    for scheme, spec in sorted(_registry.KNOWN_BACKENDS.items()):
        if spec.extra is None:
            continue
        dists = extras.get(spec.extra) or ([spec.package] if spec.package else [])
        configured: list[str] = []
        for group in ("aws" if scheme.startswith("aws") else "", scheme):
            for var, shown in _CONFIG_VARS.get(group, []):
                value = os.environ.get(var)
                if value:
                    configured.append(f"{var}={shown_setting(value)}" if shown else f"{var} (set)")
        if scheme == "vault" and (Path.home() / ".vault-token").is_file():
            configured.append("~/.vault-token")
        if scheme.startswith("aws") and (Path.home() / ".aws").is_dir():
            configured.append("~/.aws/")
        referenced = sorted(
            public_name(var) for var, ref in references.items() if looks_like_reference(ref) == scheme
        )
        reports.append(
            BackendReport(
                scheme=scheme,
                extra=spec.extra,
                module=_module_present(spec.target),
                packages={dist: installed_version(dist) for dist in dists},
                configured=configured,
                referenced_by=referenced,
            )
        )
    for scheme in sorted(_registry.known_schemes() - set(_registry.KNOWN_BACKENDS)):
        reports.append(
            BackendReport(
                scheme=scheme,
                extra=None,
                module=True,
                packages={},
                configured=["plugin (entry point)"],
                referenced_by=sorted(
                    public_name(var) for var, ref in references.items() if looks_like_reference(ref) == scheme
                ),
            )
        )
    return reports
