"""What is installed, configured and reachable per backend, found without importing any SDK.

Each backend class says which settings it reads and what to probe (see
:mod:`secretkit._backend_class`); its module is imported for that, never its SDK.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import _registry
from .._backend_class import Probe, reachability_of, settings_of
from .._errors import InvalidReference, public_name
from .._refs import SecretRef, reference_scheme
from ._output import error_message
from ._probes import Reach, reach_all
from ._urls import shown_setting

#: Files of a distribution that are importable modules on their own (``_cffi_backend.*.so``).
_MODULE_SUFFIXES = (".py", ".so", ".pyd")


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
    probe: Probe | None = None

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
    """The version of ``dist`` if a module it provides can be found, without importing it.

    The modules are the ones the distribution records (its ``RECORD`` files, else its
    ``top_level.txt``), never a guess from its name: PyYAML provides ``yaml``,
    opentelemetry-api ``opentelemetry.trace``, google-cloud-secret-manager
    ``google.cloud.secretmanager``. ``None`` when it is not installed, or when none of its
    modules can be found (deleted, or blocked from this interpreter).
    """
    import importlib.metadata

    try:
        distribution = importlib.metadata.distribution(dist)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None
    modules = provided_modules(distribution)
    if not modules:
        # Python 3.13 lists only the recorded files that exist, so a distribution whose modules
        # were deleted shows its metadata alone: missing. One with no RECORD at all, and no
        # top-level name either, is installed as far as anyone can tell.
        return None if distribution.files else (distribution.version or "?")
    if not any(_findable(module) for module in modules):
        return None
    return distribution.version or "?"


def provided_modules(distribution: Any) -> list[str]:
    """The importable modules an installed ``importlib.metadata.Distribution`` provides, sorted.

    A package is named by its shallowest ``__init__.py``, so a distribution that adds
    ``google/cloud/secretmanager`` to the shared ``google`` namespace is found by its own package.
    """
    files = distribution.files
    if not files:  # no RECORD: the top-level names its metadata declares
        import importlib.metadata

        name = _canonical(distribution.metadata["Name"] or "")
        return sorted(
            module
            for module, owners in importlib.metadata.packages_distributions().items()
            if module.isidentifier() and any(_canonical(owner) == name for owner in owners)
        )
    packages: set[tuple[str, ...]] = set()
    names: set[str] = set()
    for file in files:
        parts = file.parts
        if not parts or not parts[0].isidentifier():  # ../bin, *.dist-info, *.data, *.pth
            continue
        if parts[-1] == "__init__.py":
            packages.add(parts[:-1])
        elif len(parts) == 1 and file.suffix in _MODULE_SUFFIXES:
            names.add(parts[0].partition(".")[0])
    names.update(
        ".".join(package)
        for package in packages
        if not any(package[:depth] in packages for depth in range(1, len(package)))
    )
    return sorted(name for name in names if all(part.isidentifier() for part in name.split(".")))


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _findable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


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
    return _findable(target.partition(":")[0])


def backends_report(references: Mapping[str, str]) -> list[BackendReport]:
    """One report per remote backend (built in, or registered through an entry point)."""
    extras = _extra_packages()
    reports: list[BackendReport] = []
    for scheme, spec in sorted(_registry.KNOWN_BACKENDS.items()):
        if spec.extra is None:
            continue
        dists = extras.get(spec.extra) or ([spec.package] if spec.package else [])
        report = BackendReport(
            scheme=scheme,
            extra=spec.extra,
            module=_module_present(spec.target),
            packages={dist: installed_version(dist) for dist in dists},
            configured=[],
            referenced_by=_referenced_by(scheme, references),
        )
        _ask_class(report, references)
        reports.append(report)
    for scheme in sorted(_registry.known_schemes() - set(_registry.KNOWN_BACKENDS)):
        report = BackendReport(
            scheme=scheme,
            extra=None,
            module=True,
            packages={},
            configured=["plugin (entry point)"],
            referenced_by=_referenced_by(scheme, references),
        )
        _ask_class(report, references)
        reports.append(report)
    return reports


def check_reachability(reports: list[BackendReport], timeout: float) -> None:
    """Probe, in parallel, the server of each backend whose class said what to probe."""
    probed = [report for report in reports if report.probe is not None]
    found = reach_all([report.probe for report in probed if report.probe is not None], timeout)
    for report, reach in zip(probed, found, strict=True):
        report.reach = reach


def _referenced_by(scheme: str, references: Mapping[str, str]) -> list[str]:
    return sorted(public_name(var) for var, ref in references.items() if reference_scheme(ref) == scheme)


def _ask_class(report: BackendReport, references: Mapping[str, str]) -> None:
    """Fill in what the scheme's class declares: the settings found, and its probe."""
    try:
        cls = _registry.backend_class(report.scheme)  # its module only: SDKs are imported when built
    except Exception as exc:  # a plugin that cannot be imported is a finding
        report.module = False
        report.note = error_message(exc)
        return
    env = os.environ
    report.configured += _configured(cls, env)
    if not (report.configured or report.referenced_by):
        return  # nothing says this backend is in use: no request to its server
    refs = []
    for text in references.values():
        if reference_scheme(text) == report.scheme:
            try:
                refs.append(SecretRef.parse(text))
            except InvalidReference:
                continue  # reported where the name is traced; nothing to probe in it
    try:
        probe = reachability_of(cls, env, refs)
    except Exception as exc:  # a probe's failure is a finding, not a crash
        report.reach = Reach("?", False, error_message(exc))
        return
    if probe is None:
        return
    report.note = probe.note
    if probe.url is not None or probe.refused is not None:
        report.probe = probe


def _configured(cls: type[Any], env: Mapping[str, str]) -> list[str]:
    """The settings ``cls`` reads that are set: shown where the class allows, else named only."""
    found: list[str] = []
    for setting in settings_of(cls):
        if setting.file:
            path = Path(setting.name).expanduser()
            if path.is_dir() if setting.name.endswith("/") else path.is_file():
                found.append(setting.name)
            continue
        value = env.get(setting.name)
        if value:
            found.append(
                f"{setting.name}={shown_setting(value)}" if setting.shown else f"{setting.name} (set)"
            )
    return found
