"""Which names mark a value as secret: a leaf, so that redaction's lowest layers can ask too."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SECRET_NAME_MARKERS", "marks_secret", "set_secret_name_markers"]

#: What in a variable's name marks its value as a secret (matched anywhere in the name,
#: case-insensitively). ``getenv``/``environ`` register such values for log redaction;
#: other configuration (``APP_ENV=production``, ``PORT=8080``) stays readable in logs.
#: Values that came through a reference or from a secret file are always registered.
#: The keys of a JSON secret follow the same rule for its numbers (``"pin_secret": 4821``).
SECRET_NAME_MARKERS: tuple[str, ...] = (
    "AUTH",
    "CERT",
    "COOKIE",
    "CREDENTIAL",
    "CREDS",
    "DSN",
    "KEY",
    "PASSPHRASE",
    "PASSWD",
    "PASSWORD",
    "PRIVATE",
    "SALT",
    "SECRET",
    "SESSION",
    "SIGNING",
    "TOKEN",
)

_markers: tuple[str, ...] = SECRET_NAME_MARKERS
_marked: dict[str, bool] = {}


def set_secret_name_markers(markers: Iterable[str]) -> None:
    """Replace the words that mark a variable's name as holding a secret (see ``SECRET_NAME_MARKERS``).

    ``set_secret_name_markers([*secretkit.SECRET_NAME_MARKERS, "DATABASE_URL"])`` adds one.
    """
    global _markers
    _markers = tuple(m.upper() for m in markers)
    _marked.clear()


def marks_secret(name: str) -> bool:
    """Whether ``name`` holds one of the markers (``DB_PASSWORD``, ``api_key``)."""
    marked = _marked.get(name)
    if marked is None:
        upper = name.upper()
        marked = any(marker in upper for marker in _markers)
        if len(_marked) >= 4096:
            _marked.clear()  # names come from callers: keep the memo small
        _marked[name] = marked
    return marked
