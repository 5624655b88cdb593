"""Exit codes and the error type that carries one: the contract every command keeps."""

from __future__ import annotations

from .._errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    InvalidReference,
    SecretNotFound,
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_DENIED = 4
EXIT_CONFIG = 5
EXIT_INTERNAL = 70
EXIT_CANNOT_EXECUTE = 126
EXIT_COMMAND_NOT_FOUND = 127
EXIT_INTERRUPTED = 130

PROG = "secretkit"


class CliError(Exception):
    """A failure the command reports as one line, with its exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def classify(exc: BaseException) -> tuple[str, int]:
    """The status word and exit code for an error met while resolving a secret."""
    if isinstance(exc, SecretNotFound):
        return "not found", EXIT_FAILED
    if isinstance(exc, AccessDenied):
        return "denied", EXIT_DENIED
    if isinstance(exc, BackendUnavailable):
        return "unavailable", EXIT_UNAVAILABLE
    if isinstance(exc, InvalidReference):
        return "invalid", EXIT_USAGE
    if isinstance(exc, ImportError):  # MissingDependency, or a backend module absent from this install
        return "missing dependency", EXIT_CONFIG
    if isinstance(exc, ConfigurationError):
        return "misconfigured", EXIT_CONFIG
    return "error", EXIT_INTERNAL
