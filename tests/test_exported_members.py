"""The public names: everything exported, nothing missing, ``__all__`` sorted."""

from __future__ import annotations

import secretkit


def test_all_is_sorted() -> None:
    """``secretkit.__all__`` is kept in sorted order."""
    assert secretkit.__all__ == sorted(secretkit.__all__)


def test_all_is_complete() -> None:
    """Every public name of the package is in ``__all__`` and every name there exists."""
    public = {
        name
        for name in dir(secretkit)
        if not name.startswith("_")
        and name not in {"backends", "annotations"}
        and not isinstance(getattr(secretkit, name), type(secretkit))
    }
    assert public == set(secretkit.__all__)


def test_design_names_are_exported() -> None:
    """The names DESIGN.md promises are importable from the package."""
    for name in [
        "get_secret",
        "aget_secret",
        "getenv",
        "environ",
        "configure",
        "on_rotate",
        "refresh_on_auth_error",
        "redact_logs",
        "live",
        "Secret",
        "SecretStore",
        "SecretRef",
        "Fetched",
        "Backend",
        "SecretkitError",
        "SecretNotFound",
        "BackendUnavailable",
        "AccessDenied",
        "InvalidReference",
        "ConfigurationError",
        "MissingDependency",
    ]:
        assert hasattr(secretkit, name), name
