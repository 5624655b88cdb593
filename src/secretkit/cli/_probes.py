"""Reachability probes for remote backends: one bounded HTTP request each, run in parallel."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._errors import public_name
from .._redact import redact
from ._output import error_message
from ._urls import NOT_A_URL, NOT_SHOWN, safe_url, scrub_credentials, split_url

if TYPE_CHECKING:
    from ._inventory import BackendReport

_VAULT_DEFAULT_ADDR = "https://127.0.0.1:8200"
_AWS_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+-[0-9]+", re.ASCII)
_AZURE_VAULT = re.compile(r"[A-Za-z0-9-]{3,24}", re.ASCII)
_VAULT_HEALTH = {
    200: (True, "active, unsealed"),
    429: (True, "standby, unsealed"),
    472: (True, "disaster-recovery secondary"),
    473: (True, "performance standby"),
    501: (False, "not initialized"),
    503: (False, "sealed"),
}


@dataclass
class Reach:
    target: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"target": self.target, "ok": self.ok, "detail": self.detail}


def check_reachability(reports: list[BackendReport], timeout: float, references: Mapping[str, str]) -> None:
    """Probe, in parallel, the endpoint of each remote backend that is configured or referenced."""
    jobs: list[tuple[BackendReport, Callable[[], Reach]]] = []
    for report in reports:
        if not (report.configured or report.referenced_by):
            continue
        probe = _probe_for(report, timeout, references)
        if probe is not None:
            jobs.append((report, probe))
    threads = []
    for report, probe in jobs:

        def run(report: BackendReport = report, probe: Callable[[], Reach] = probe) -> None:
            try:
                report.reach = probe()
            except Exception as exc:  # a probe's failure is a finding, not a crash
                report.reach = Reach("?", False, error_message(exc))

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join(timeout + 2.0)


def _probe_for(
    report: BackendReport, timeout: float, references: Mapping[str, str]
) -> Callable[[], Reach] | None:
    env = os.environ
    if report.scheme == "vault":
        addr = env.get("VAULT_ADDR")
        if not addr:
            addr = _VAULT_DEFAULT_ADDR
            report.note = f"VAULT_ADDR is not set: the backend uses {addr}, as the vault CLI does"
        return lambda: _probe_vault(addr, timeout)
    if report.scheme in ("aws-sm", "aws-ssm"):
        service, specific = (
            ("secretsmanager", "AWS_ENDPOINT_URL_SECRETS_MANAGER")
            if report.scheme == "aws-sm"
            else ("ssm", "AWS_ENDPOINT_URL_SSM")
        )
        endpoint = env.get(specific) or env.get("AWS_ENDPOINT_URL")
        if not endpoint:
            variable = "AWS_REGION" if env.get("AWS_REGION") else "AWS_DEFAULT_REGION"
            region = env.get(variable)
            if not region:
                report.note = "no AWS_REGION or AWS_ENDPOINT_URL: the region comes from the profile, if any"
                return None
            if not _AWS_REGION.fullmatch(region):
                # Pasted into a host name, "x@evil/" would send the probe elsewhere.
                return lambda: Reach(NOT_SHOWN, False, f"{variable} is not a region name such as eu-west-1")
            endpoint = f"https://{service}.{region}.amazonaws.com"
        url = endpoint
        return lambda: _probe_http(url, timeout, _any_status)
    if report.scheme == "gcp-sm":
        return lambda: _probe_http("https://secretmanager.googleapis.com/", timeout, _any_status)
    if report.scheme == "azure-kv":
        vaults = sorted(
            {
                ref.split("://", 1)[1].split("/", 1)[0]
                for var, ref in references.items()
                if public_name(var) in report.referenced_by
            }
        )
        if not vaults:
            report.note = "reachability is checked per vault: reference a secret (azure-kv://VAULT/NAME)"
            return None
        if not _AZURE_VAULT.fullmatch(vaults[0]):
            report.note = "reachability is checked for vault names (azure-kv://VAULT/NAME) only"
            return None
        url = f"https://{vaults[0]}.vault.azure.net/"
        return lambda: _probe_http(url, timeout, _any_status)
    return None


def _any_status(status: int) -> tuple[bool, str]:
    return True, f"HTTP {status}"


def _probe_vault(addr: str, timeout: float) -> Reach:
    def judge(status: int) -> tuple[bool, str]:
        return _VAULT_HEALTH.get(status, (False, f"unexpected HTTP {status}"))

    parts, problem = split_url(addr)
    if parts is None:
        return Reach(NOT_A_URL, False, f"VAULT_ADDR is not a valid URL: {problem}")
    base = safe_url(addr).rstrip("/")
    context = None
    if parts.scheme.lower() == "https":
        import ssl

        if os.environ.get("VAULT_SKIP_VERIFY", "").lower() in ("1", "true", "yes"):
            context = ssl._create_unverified_context()  # noqa: S323 - the user asked for it, as the vault CLI does
        elif os.environ.get("VAULT_CACERT"):
            try:
                context = ssl.create_default_context(cafile=os.environ["VAULT_CACERT"])
            except (OSError, ValueError):  # ssl.SSLError is an OSError
                return Reach(base, False, "VAULT_CACERT is not a readable file of PEM certificates")
    return _probe_http(base + "/v1/sys/health", timeout, judge, context=context)


def _probe_http(
    url: str,
    timeout: float,
    judge: Callable[[int], tuple[bool, str]],
    *,
    context: Any = None,
) -> Reach:
    """GET ``url``: any HTTP answer means reachable; ``judge`` reads the status."""
    import socket
    import ssl
    import urllib.error
    import urllib.request

    parts, problem = split_url(url)
    if parts is None:
        return Reach(NOT_A_URL, False, f"not a valid URL: {problem}")
    shown = safe_url(url)
    if parts.scheme.lower() not in ("http", "https"):
        return Reach(shown, False, "not an http(s) URL")
    # The URL as shown is the one asked: user-info and query stay off the wire as off the screen.
    request = urllib.request.Request(shown, method="GET", headers={"User-Agent": "secretkit-doctor"})  # noqa: S310 - http(s) only, checked above
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            ok, detail = judge(response.status)
    except urllib.error.HTTPError as exc:
        ok, detail = judge(exc.code)
        exc.close()
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ConnectionRefusedError):
            return Reach(shown, False, "connection refused")
        if isinstance(reason, TimeoutError):
            return Reach(shown, False, f"timed out after {timeout:g}s")
        if isinstance(reason, socket.gaierror):
            return Reach(shown, False, "cannot resolve the host name")
        if isinstance(reason, ssl.SSLError):
            return Reach(shown, False, f"TLS error: {reason.reason or reason}")
        return Reach(shown, False, scrub_credentials(redact(str(reason))))
    except TimeoutError:
        return Reach(shown, False, f"timed out after {timeout:g}s")
    except OSError as exc:
        return Reach(shown, False, scrub_credentials(redact(exc.strerror or str(exc))))
    return Reach(shown, ok, detail)
