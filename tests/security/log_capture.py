"""A logger that writes through log redaction, for the tests that read what reached a log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import secretkit

__all__ = ["redacted_logger"]


@contextmanager
def redacted_logger(
    name: str, handler: logging.Handler, level: int = logging.INFO
) -> Iterator[logging.Logger]:
    """``redact_logs()`` installed, and logger ``name`` writing to ``handler`` alone; both undone after."""
    previous = logging.getLogRecordFactory()
    secretkit.redact_logs()
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    try:
        yield logger
    finally:
        logger.removeHandler(handler)
        logging.setLogRecordFactory(previous)
