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
    "copied",
    "fresh",
    "shown",
    "printable",
    "public_name",
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
        # args make the repr (and KeyError's str): the shaped name, as the message shows it.
        super().__init__(public_name(name))
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


#: Names longer than this are cut wherever they are shown: a name comes from the caller, and
#: a 1 MB name would make a 1 MB error, audit record or span.
SHOWN_MAX = 120

_USERINFO = re.compile(r"(://)[^/@#?]*@")
_QUERY_VALUE = re.compile(r"(=)[^&#]*")
# "Password=...", "AccountKey=...", "api_token=...": a connection string or a .env line pasted
# where a name goes, whose separators are not a URL's. Split into pairs first, so the cost
# stays linear in the name whatever it holds.
_PAIR_SEPARATORS = re.compile(r"([\s;&,?]+)")
_CREDENTIAL_KEY = re.compile(r"token|secret|passw(?:or)?d|pwd|key|sig|credential|auth", re.IGNORECASE)


def without_userinfo(text: str) -> str:
    """``text`` with the user-info of every URL in it replaced (``https://***@vault:8200``).

    Backends and SDKs put addresses in their messages, and an address may carry a token
    (``VAULT_ADDR=https://s.abc@vault``): no message secretkit passes on shows one.
    """
    return _USERINFO.sub(r"\1***@", text) if "@" in text else text


def public_name(name: str) -> str:
    """``name`` as it may leave the process: the one shape of every name in an error, a line the
    CLI prints, an audit record, a span attribute and an access event.

    A name can be a secret pasted into the wrong place (``postgres://admin:pw@db/app``,
    ``Server=db;Password=pw``), so the user-info, every query value and every credential-named
    ``key=value`` are replaced by ``***``; control characters (ANSI escapes, bidi overrides,
    undecodable bytes) are escaped as ``\\x1b``; a long name is cut to ``SHOWN_MAX`` characters.
    Linear in the name's length; a shaped name comes through again unchanged (bar a cut one,
    which may be cut again), so layers may each apply it.
    """
    if len(name) <= SHOWN_MAX and "@" not in name and "=" not in name and name.isprintable():
        return name  # what almost every name is: nothing to do
    text = _name_without_userinfo(name) if "@" in name else name
    # Past the part a shown name can hold nothing needs masking, and the cost stays bounded.
    cut = len(text) > 4 * SHOWN_MAX
    text = text[: 4 * SHOWN_MAX]
    if "=" in text:
        query_at = text.find("?")
        if query_at >= 0:
            text = text[:query_at] + _QUERY_VALUE.sub(r"\1***", text[query_at:])
        text = "".join(_without_credential_value(part) for part in _PAIR_SEPARATORS.split(text))
    # Escaping never shortens, so the first SHOWN_MAX characters are all a shown name can hold.
    head = printable(text[:SHOWN_MAX])
    if not cut and len(text) <= SHOWN_MAX and len(head) <= SHOWN_MAX:
        return head
    suffix = f"... ({len(name)} characters)"
    return head[: SHOWN_MAX - len(suffix)] + suffix


def printable(text: str) -> str:
    """``text`` with every character that is not printable escaped as Python writes it.

    C0 and C1 controls, ESC, DEL, line and paragraph separators, bidi overrides, zero-width
    and unassigned characters, lone surrogates (undecodable bytes): ``\\x1b``, ``\\u202e``.
    What a terminal or a log viewer would act on becomes text it shows.
    """
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _without_credential_value(pair: str) -> str:
    key, equals, value = pair.partition("=")
    if not equals or not _CREDENTIAL_KEY.search(key):
        return pair
    _, hash_sign, field = value.partition("#")
    return f"{key}=***{hash_sign}{field}"


def _name_without_userinfo(text: str) -> str:
    # Everything from the scheme to the last "@" goes: a password may hold "/", "@" or ":"
    # unencoded, and a name is one token, so more of it lost is the safe side. A segment with
    # a "/" and no ":" is a path holding an "@" (an AWS secret "team/user@corp"), kept.
    at = text.rfind("@")
    start = text.find("://")
    start = 0 if start < 0 or start > at else start + 3
    segment = text[start:at]
    if "/" in segment and ":" not in segment:
        return text
    return f"{text[:start]}***{text[at:]}"


def shown(name: str) -> str:
    """``name`` quoted, as an error message shows it: ``public_name(name)`` between quotes."""
    return f"'{public_name(name)}'"


def copied(err: BaseException) -> BaseException:
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


#: The old name of :func:`copied` ("fresh" is the cache's word for a value within its TTL).
fresh = copied
