"""Reachability probes for remote backends: one bounded HTTP request each, run in parallel.

What to ask is each backend class's to say (its ``reachability``, a
:class:`~secretkit._backend_class.Probe`); this module only asks, and says what came back.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._backend_class import Judge, Probe
from .._redact import redact
from ._output import error_message
from ._urls import NOT_A_URL, NOT_SHOWN, safe_url, scrub_credentials, split_url

__all__ = ["Reach", "reach", "reach_all"]


@dataclass
class Reach:
    target: str
    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"target": self.target, "ok": self.ok, "detail": self.detail}


def reach_all(probes: Sequence[Probe], timeout: float) -> list[Reach]:
    """Each probe's finding, in order; the probes run in parallel, each bounded by ``timeout``."""
    found: list[Reach] = [Reach("?", False, f"no answer within {timeout:g}s") for _ in probes]

    def run(i: int, probe: Probe) -> None:
        try:
            found[i] = reach(probe, timeout)
        except Exception as exc:  # a probe's failure is a finding, not a crash
            found[i] = Reach("?", False, error_message(exc))

    threads = [threading.Thread(target=run, args=(i, probe), daemon=True) for i, probe in enumerate(probes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout + 2.0)
    return found


def reach(probe: Probe, timeout: float) -> Reach:
    """What asking ``probe`` found: the URL is checked first, and shown without credentials."""
    if probe.refused is not None:
        return Reach(NOT_SHOWN, False, probe.refused)
    if probe.url is None:
        return Reach("?", False, "nothing to probe")
    parts, problem = split_url(probe.url)
    if parts is None:
        what = f"{probe.setting} is not a valid URL" if probe.setting else "not a valid URL"
        return Reach(NOT_A_URL, False, f"{what}: {problem}")
    url = safe_url(probe.url).rstrip("/") + probe.path if probe.path else probe.url
    context = None
    if parts.scheme.lower() == "https":
        import ssl

        if not probe.verify:
            context = ssl._create_unverified_context()  # noqa: S323 - the user asked for it, as the backend does
        elif probe.cafile:
            try:
                context = ssl.create_default_context(cafile=probe.cafile)
            except (OSError, ValueError):  # ssl.SSLError is an OSError
                what = probe.cafile_setting or "the CA file"
                return Reach(safe_url(url), False, f"{what} is not a readable file of PEM certificates")
    return _probe_http(url, timeout, probe.judge, context=context)


def _probe_http(
    url: str,
    timeout: float,
    judge: Judge,
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
