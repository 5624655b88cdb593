"""The ``secretkit`` logger, made on first use: the store logs only when something fails.

``import logging`` (with the traceback and linecache modules it brings) is a tenth of
``import secretkit``; a process that never logs through secretkit should not pay for it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["log"]


class _Logger:
    """Stands for ``logging.getLogger("secretkit")``; every attribute is the real logger's."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        import logging

        return getattr(logging.getLogger("secretkit"), name)


#: Use as the logger itself: ``log.warning("...", exc_info=True)``.
log: Any = _Logger()
