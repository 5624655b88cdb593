"""secretkit: one call to resolve a secret from any store, cached, fresh, and hard to leak."""

import typing as _typing

from ._api import (
    SECRET_NAME_MARKERS,
    aget_secret,
    configure,
    default_store,
    environ,
    get_secret,
    getenv,
    live,
    on_rotate,
    refresh_on_auth_error,
    set_secret_name_markers,
)
from ._backend import Backend, BackendBase, BatchBackend, Fetched
from ._errors import (
    AccessDenied,
    BackendUnavailable,
    ConfigurationError,
    InvalidReference,
    MissingDependency,
    SecretkitError,
    SecretNotFound,
)
from ._events import AccessEvent
from ._refs import SecretRef
from ._secret import LiveSecret, Secret
from ._store import SecretStore, TimePolicy

if _typing.TYPE_CHECKING:
    from ._audit import AuditTrail, audit
    from ._redact_logs import redact_logs
    from ._telemetry import instrument, traceparent_env

__version__ = "0.1.0"

# Imported on first use: audit, telemetry and log redaction bring logging and hashlib,
# which most imports of secretkit never need (an import this light is half of a CLI's start).
_LAZY = {
    "AuditTrail": "_audit",
    "audit": "_audit",
    "instrument": "_telemetry",
    "redact_logs": "_redact_logs",
    "traceparent_env": "_telemetry",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'secretkit' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AccessDenied",
    "AccessEvent",
    "AuditTrail",
    "Backend",
    "BackendBase",
    "BackendUnavailable",
    "BatchBackend",
    "ConfigurationError",
    "Fetched",
    "InvalidReference",
    "LiveSecret",
    "MissingDependency",
    "SECRET_NAME_MARKERS",
    "Secret",
    "SecretNotFound",
    "SecretRef",
    "SecretStore",
    "SecretkitError",
    "TimePolicy",
    "aget_secret",
    "audit",
    "configure",
    "default_store",
    "environ",
    "get_secret",
    "getenv",
    "instrument",
    "live",
    "on_rotate",
    "redact_logs",
    "refresh_on_auth_error",
    "set_secret_name_markers",
    "traceparent_env",
]
