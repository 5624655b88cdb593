"""The signal a backend gives when its server says "too many requests": a leaf, so backends can raise it.

A backend maps its server's 429 / 503 (or its SDK's throttling error) to :class:`Throttled`,
with the server's ``Retry-After`` when it sent one; the store's concurrency limiter reads
it, halves the calls it lets through to that backend and holds new ones until the server's
time has passed. To a caller it is a :class:`~secretkit.BackendUnavailable` like any outage.
"""

from __future__ import annotations

from ._errors import BackendUnavailable

__all__ = ["MAX_RETRY_AFTER", "Throttled", "retry_after"]

#: The longest pause a server's ``Retry-After`` may impose, seconds: a header of a year (or
#: a hostile one) must not stop a process from ever asking again.
MAX_RETRY_AFTER = 60.0


class Throttled(BackendUnavailable):
    """The server refused the call for load (HTTP 429 or 503); ``retry_after``: its wait, seconds."""

    def __init__(self, message: str, *, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


def retry_after(value: object, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header value asks to wait (delta-seconds or an HTTP date), capped.

    ``None`` when absent or unreadable. ``now`` is the wall clock (``time.time()``) for dates.
    """
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
    text = text.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        from email.utils import parsedate_to_datetime  # here: only a server sending a date pays for it

        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        if now is None:
            import time

            now = time.time()
        seconds = when.timestamp() - now
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
