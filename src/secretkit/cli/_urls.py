"""Addresses and settings read from the environment: checked before use, shown without credentials.

A variable such as ``VAULT_ADDR`` is the user's to set and may be anything - a typo, a
pasted URL with a token in it, undecodable bytes - so nothing here raises, and what
``doctor`` prints of it never includes the user-info, the query or a value it cannot vouch for.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit, urlunsplit

NOT_A_URL = "(set, not a valid URL)"
NOT_SHOWN = "(set, not shown: unexpected characters)"

# Regions, profiles, project ids, namespaces, paths and flags: what such settings look like.
# Anything else (an "@", a "?", a quote, a control character) is not echoed, since it may be
# a credential pasted into the wrong variable.
_PLAIN_SETTING = re.compile(r"[\w.,:/~+= -]{1,256}", re.ASCII)


def split_url(value: str) -> tuple[SplitResult | None, str | None]:
    """``value`` parsed as an absolute http(s)-style URL, or why it is not one (never echoing it)."""
    if not value.isprintable() or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return None, "it holds control characters or undecodable bytes"
    if len(value) > 2048:
        return None, "it is longer than 2048 characters"
    try:
        parts = urlsplit(value)
        port = parts.port  # parsed lazily by urllib: "host:82OO" fails here, not in urlsplit
    except ValueError as exc:
        reason = (
            "the port is not a number from 0 to 65535" if "port" in str(exc).lower() else "malformed host"
        )
        return None, reason
    if not parts.scheme or not parts.netloc or not parts.hostname:
        return None, "it is not of the form scheme://host[:port]"
    if port == 0:
        return None, "the port is not a number from 1 to 65535"
    return parts, None


def safe_url(value: str) -> str:
    """A URL without its user-info or query (either may hold a credential); a placeholder if malformed."""
    parts, _problem = split_url(value)
    if parts is None:
        return NOT_A_URL
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal keeps its brackets
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def shown_setting(value: str) -> str:
    """How ``doctor`` shows a setting that is safe to show: a URL without credentials, else plain text."""
    if "://" in value:
        return safe_url(value)
    return value if _PLAIN_SETTING.fullmatch(value) else NOT_SHOWN


# "scheme://user:password@host" (also with one or three slashes, as typos have it), and a
# bare "user:password@host" as a backend may echo a URL it cut the scheme off: the user-info
# goes (the local part of an e-mail address with it - a small loss in an error line). A query
# parameter named like a credential ("?token=...") loses its value.
_USER_INFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*:/{1,3}|(?<![:/])//)(?:[^\s/?#@\[\]]*@)+")
_BARE_USER_INFO = re.compile(r"""(?<![^\s'"(<=,;])(?:[^\s'"@/\\<>()=]+@)+(?=[\w\[%])""")
_CREDENTIAL_PARAM = re.compile(
    r"(?i)([?&;](?:[\w.-]*(?:token|secret|passw(?:or)?d|pwd|key|sig|signature|credential|auth)[\w.-]*)=)"
    r"[^&#\s'\"]+"
)


def scrub_credentials(text: str) -> str:
    """``text`` without URL user-info or credential-named query values, which a vendor error may echo."""
    if "@" in text:
        text = _BARE_USER_INFO.sub("***@", _USER_INFO.sub(r"\1***@", text))
    if "=" in text:
        text = _CREDENTIAL_PARAM.sub(r"\1***", text)
    return text
