"""The error hierarchy, factored out so every layer can raise without import loops.

::

    SecretkitError
    ├── SecretNotFound        (also LookupError / KeyError, for code written for os.environ)
    ├── BackendUnavailable    (also ConnectionError)
    ├── AccessDenied          (also PermissionError)
    ├── InvalidReference      (also ValueError)
    ├── ConfigurationError    (also ValueError)
    └── MissingDependency     (also ImportError)

No message that secretkit builds contains a secret value: errors name secrets, backends
and versions, never what a secret holds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = [
    "AccessDenied",
    "fresh",
    "shown",
    "without_userinfo",
    "BackendUnavailable",
    "ConfigurationError",
    "InvalidReference",
    "MissingDependency",
    "SecretNotFound",
    "SecretkitError",
]


class SecretkitError(Exception):
    """Base class of every error secretkit raises."""

    #: The secret the error is about (a name or a reference), when there is one.
    name: str | None = None
    #: The scheme of the backend that raised, when there is one.
    backend: str | None = None


class SecretNotFound(SecretkitError, KeyError):
    """No backend has the secret.

    A backend raises ``SecretNotFound(ref.path)``; the store re-raises it with every
    backend it tried, so the message says where it looked.
    """

    def __init__(
        self,
        name: str,
        *,
        backends: Sequence[str] = (),
        detail: str | None = None,
    ) -> None:
        super().__init__(name)
        self.name = name
        self.backends = tuple(backends)
        self.backend = self.backends[0] if len(self.backends) == 1 else None
        self.detail = detail

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the argument; we want a sentence.
        where = ", ".join(self.backends) if self.backends else "no backend"
        msg = f"secret {shown(self.name or '')} not found (tried: {where})"
        if self.detail:
            msg += f": {self.detail}"
        if self.backends:
            msg += "; set it in one of these backends or check the name for a typo"
        return msg

    def __reduce__(self) -> tuple[type[SecretNotFound], tuple[str]]:
        return (type(self), (self.name or "",))


class BackendUnavailable(SecretkitError, ConnectionError):
    """A backend could not be reached or failed; the cause is chained."""


class AccessDenied(SecretkitError, PermissionError):
    """The backend refused access, or the store's allow-list refused the name."""


class InvalidReference(SecretkitError, ValueError):
    """A ``scheme://path#field?query`` reference that cannot be parsed or used."""


class ConfigurationError(SecretkitError, ValueError):
    """secretkit or a backend is configured in a way that cannot work (a malformed .env, ...)."""


class MissingDependency(SecretkitError, ImportError):
    """A backend needs a package that is not installed; the message names the extra."""

    def __init__(self, scheme: str, package: str, extra: str) -> None:
        super().__init__(f'the {scheme} backend needs {package}: pip install "secretkit[{extra}]"')
        self.backend = scheme
        self.package = package
        self.extra = extra

    def __reduce__(self) -> tuple[type[MissingDependency], tuple[str, str, str]]:
        return (type(self), (self.backend or "", self.package, self.extra))


#: Names longer than this are cut in messages: a name comes from the caller, and a 1 MB
#: name would make a 1 MB error.
SHOWN_MAX = 120

_USERINFO = re.compile(r"(://)[^/@#?]*@")
_QUERY_VALUE = re.compile(r"(=)[^&#]*")


def without_userinfo(text: str) -> str:
    """``text`` with the user-info of every URL in it replaced (``https://***@vault:8200``).

    Backends and SDKs put addresses in their messages, and an address may carry a token
    (``VAULT_ADDR=https://s.abc@vault``): no message secretkit passes on shows one.
    """
    return _USERINFO.sub(r"\1***@", text) if "@" in text else text


def shown(name: str) -> str:
    """``name`` as an error message may show it: quoted, cut, without URL user-info or query values.

    A name can be a secret pasted into the wrong place (``postgres://admin:pw@db/app``).
    """
    text = without_userinfo(name)
    query_at = text.find("?")
    if query_at >= 0:
        text = text[:query_at] + _QUERY_VALUE.sub(r"\1***", text[query_at:])
    if len(text) > SHOWN_MAX:
        text = f"{text[:SHOWN_MAX]}... ({len(name)} characters)"
    return repr(text)


def fresh(err: BaseException) -> BaseException:
    """A copy of ``err`` to raise once more: same type, message, attributes and cause.

    Raising one instance in several places would grow its traceback with every caller's
    frames (and their locals) and let one caller's ``__context__`` show in another's.
    """
    new = err.__class__.__new__(err.__class__)
    new.args = err.args
    if hasattr(err, "__dict__"):
        new.__dict__.update(err.__dict__)
    new.__cause__ = err.__cause__
    new.__suppress_context__ = True
    return new
