"""A ``requests`` session's connection pool sized to a backend's concurrency, and the Retry-After it saw.

requests keeps 10 connections per host: with 64 calls in flight the other 54 each open a
connection (a TLS handshake, a round trip) and drop it after one request. So the Vault and
Azure backends mount a pool as large as their concurrency ceiling. The same session notes
the ``Retry-After`` of a 429 or 503 for the thread that received it, because hvac and
azure-core raise for those statuses without the headers; the backend then raises
:class:`~secretkit._throttled.Throttled` with it, which the store's limiter obeys.
"""

from __future__ import annotations

import threading
from typing import Any

from .._throttled import retry_after

__all__ = ["CEILING", "last_retry_after", "pooled"]

#: The most calls a backend without batch reads has in flight (its ``concurrency``), and so
#: the connections its pool keeps per host.
CEILING = 64
#: The statuses a server answers when it is overloaded (or, for Vault, sealed or a standby).
THROTTLED = frozenset({429, 503})

_seen = threading.local()


def pooled(session: Any, size: int = CEILING) -> Any:
    """``session`` with a pool of ``size`` connections per host and Retry-After noted; returned."""
    from requests.adapters import HTTPAdapter

    for prefix in ("https://", "http://"):
        session.mount(prefix, HTTPAdapter(pool_connections=4, pool_maxsize=size))
    session.hooks["response"].append(_note)
    return session


def _note(response: Any, *args: object, **kwargs: object) -> Any:
    if response.status_code in THROTTLED:
        _seen.retry_after = retry_after(response.headers.get("Retry-After"))
    return response


def last_retry_after() -> float | None:
    """The Retry-After (seconds) of the last 429/503 this thread received, once; ``None`` if none."""
    wait: float | None = getattr(_seen, "retry_after", None)
    _seen.retry_after = None
    return wait
