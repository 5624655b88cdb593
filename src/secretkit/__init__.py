"""secretkit: one call to resolve a secret from any store, cached, fresh, and hard to leak."""

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
from ._audit import AuditTrail, audit
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
from ._redact import redact_logs
from ._refs import SecretRef
from ._secret import LiveSecret, Secret
from ._store import SecretStore, TimePolicy
from ._telemetry import instrument, traceparent_env

__version__ = "0.1.0"

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
