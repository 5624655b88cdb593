"""What a secret looks like once written out, and which parts of a JSON secret count as secret.

A value shows in a log or a stream escaped, encoded or split into lines, not only as
itself; :func:`forms` lists every such text, and the matcher of :mod:`secretkit._redact_engine`
finds them all. A JSON secret counts by its leaves as well as whole, except what is
configuration: where a database secret points, and numbers under keys that do not mark
them as secret (``"timeout": 3000``).
"""

from __future__ import annotations

import functools
import re

from ._redact_engine import MIN_LENGTH
from ._secret_names import marks_secret

__all__ = ["DESCRIPTIVE_KEYS", "forms"]

_MAX_DEPTH = 8
#: Keys of a JSON secret whose values say where a credential is used, not what it is: the
#: descriptive fields of the JSON that AWS Secrets Manager keeps for a database. Registering
#: them would mask every log line that names the engine ("postgres") or the port ("5432").
#: Compared without case; a value picked on its own (``#host``) is still masked.
DESCRIPTIVE_KEYS = frozenset(
    {"engine", "host", "port", "dbname", "dbinstanceidentifier", "dbclusteridentifier", "masterarn"}
)


def forms(value: object, parsed: object = None) -> list[str]:
    """Every text in which ``value`` (and each leaf of a JSON value) shows when written out.

    The value itself; its ``repr()`` and JSON-escaped forms (and the ``repr()`` of those,
    as a dict holding a JSON document prints); its URL-encoded form; each line of a
    multi-line value (lines end at ``\\n``, ``\\r\\n`` or ``\\r``, as a terminal ends them).
    Bytes count in every form they decode to: UTF-8, and for other bytes their ``repr()``
    contents, Latin-1, and the ``surrogateescape`` text a stream decodes them to.
    ``parsed``, when the caller has parsed ``value`` as JSON already, saves parsing it
    again. Leaves under :data:`DESCRIPTIVE_KEYS` (a database secret's ``host``,
    ``port``, ...) are left out: they are configuration, and the whole document still counts.
    So are a document's numbers (``"timeout": 3000``) unless a key above them marks them as
    secret (``SECRET_NAME_MARKERS``: ``"pin_secret": 4821``); its strings always count, and a
    number given on its own (``#port`` picked as a secret) counts. Booleans never do.
    """
    out: dict[str, None] = {}
    if parsed is not None:
        _walk(value, out, depth=1)  # the whole document, not parsed again
        _walk(parsed, out, depth=1)
    else:
        _walk(value, out, depth=0)
    return [form for form in out if len(form) >= MIN_LENGTH]


def _walk(value: object, out: dict[str, None], depth: int, marked: bool | None = None) -> None:
    # ``marked``: None while no key of a document is above ``value``, else whether one of
    # them marks it as secret. A number under keys only is configuration: ports, timeouts
    # and counts would otherwise be masked in every line that prints them.
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value)
        if len(value) < MIN_LENGTH:
            return
        out[repr(value)[2:-1]] = None
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            out[value.decode("utf-8", "surrogateescape")] = None
            out[value.decode("latin-1")] = None
            return
        _walk(text, out, depth)
    elif isinstance(value, str):
        if len(value) < MIN_LENGTH:
            return
        _text_forms(value, out)
        if "\n" in value or "\r" in value:
            for line in _LINE_BREAK.split(value):
                line = line.strip()
                if len(line) >= MIN_LENGTH:
                    _text_forms(line, out)
        stripped = value.strip()
        if depth == 0 and stripped[:1] in ("{", "["):
            import json  # here, as below: `import secretkit` registers nothing yet

            try:
                document = json.loads(stripped)
            except (ValueError, RecursionError):
                return
            _walk(document, out, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                _walk(item, out, depth + 1, marked)
            elif key.lower() in DESCRIPTIVE_KEYS and not isinstance(item, (dict, list)):
                continue
            else:
                _walk(item, out, depth + 1, bool(marked) or marks_secret(key))
    elif isinstance(value, (list, tuple)):
        for item in value:
            _walk(item, out, depth + 1, marked)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and marked is not False:
        text = repr(value)
        if len(text) >= MIN_LENGTH:
            out[text] = None


def _text_forms(text: str, out: dict[str, None]) -> None:
    out[text] = None
    if _UNCHANGED.fullmatch(text):
        return  # a token of letters, digits and `-_.~` reads the same in every form below
    import json

    quoted = repr(text)[1:-1]
    escaped = json.dumps(text)[1:-1]
    out[quoted] = None
    out[escaped] = None
    # A JSON document inside a str prints, in a dict's repr(), with the quote repr() picks
    # for the whole document: both choices.
    out[repr(escaped)[1:-1]] = None
    out[repr(escaped + "'\"")[1:-4]] = None
    unescaped = json.dumps(text, ensure_ascii=False)[1:-1]
    out[unescaped] = None
    # Other serializers' JSON: PHP writes `\/`; Java writes upper-case `\u00E9`; Go writes
    # `<`, `>`, `&` as `\u003c`... (other non-ASCII as is); .NET escapes those, quotes and
    # `+` too, in upper case.
    out[escaped.replace("/", "\\/")] = None
    upper = _UNICODE_ESCAPE.sub(_upper_escape, escaped)
    out[upper] = None
    out[_escape_each(unescaped, _GO_ESCAPES)] = None
    out[_escape_each(upper.replace('\\"', '"'), _DOTNET_ESCAPES)] = None
    # libpq's conninfo quoting (`password='it\'s'`) and SQL's doubled quote.
    out[text.replace("\\", "\\\\").replace("'", "\\'")] = None
    out[text.replace("'", "''")] = None
    # URL-encoded: urllib's quote() (safe="" and its default "/"), quote_plus() and
    # urlencode(), JavaScript's encodeURIComponent() and encodeURI(), each also with the
    # lower-case hex digits some encoders write. A regular expression finds the few
    # characters to encode in C: quote() itself costs microseconds a form.
    for encoder in _URL_ENCODERS:
        out[encoder.sub(_percent_upper, text)] = None
        out[encoder.sub(_percent_lower, text)] = None
    try:
        encoded_bytes = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return
    if not encoded_bytes.isascii():
        out[repr(encoded_bytes)[2:-1]] = None


_UNCHANGED = re.compile(r"[A-Za-z0-9_.~-]*")
# Where a log line or a terminal ends a line. Not str.splitlines(), which also breaks at
# \x0b, \x0c, \x1c-\x1e, \x85, U+2028 and U+2029: a printed line holding one of them would
# be registered only as pieces, each perhaps too short to mask.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_UNICODE_ESCAPE = re.compile(r"\\u[0-9a-f]{4}")


def _upper_escape(match: re.Match[str]) -> str:
    return "\\u" + match[0][2:].upper()


def _percent_upper(match: re.Match[str]) -> str:
    char = match[0]
    if char == " " and match.re.pattern.endswith(_PLUS):
        return "+"
    return _percent(char)


def _percent_lower(match: re.Match[str]) -> str:
    char = match[0]
    if char == " " and match.re.pattern.endswith(_PLUS):
        return "+"
    return _percent(char).lower()


@functools.lru_cache(maxsize=1024)
def _percent(char: str) -> str:
    return "".join(f"%{b:02X}" for b in char.encode("utf-8", "surrogatepass"))


# Each matches one character its encoder writes as %XX: anything outside the letters,
# digits and `_.-~` urllib never encodes, and the encoder's own safe characters. The
# quote_plus() one ends with _PLUS: it writes a space as "+".
_PLUS = "(?#plus)"
_URL_ENCODERS = tuple(
    re.compile(f"[^A-Za-z0-9_.~\\-{re.escape(safe)}]" + tail)
    for safe, tail in (
        ("", ""),  # quote(safe=""), encodeURIComponent's stricter cousin
        ("/", ""),  # quote()'s default
        ("", _PLUS),  # quote_plus(), urlencode()
        ("!~*'()", ""),  # encodeURIComponent()
        (";,/?:@&=+$!~*'()#", ""),  # encodeURI()
    )
)


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
_DOTNET_ESCAPES = {
    "<": "\\u003C",
    ">": "\\u003E",
    "&": "\\u0026",
    "'": "\\u0027",
    '"': "\\u0022",
    "+": "\\u002B",
    "`": "\\u0060",
}


def _escape_each(escaped: str, table: dict[str, str]) -> str:
    for char, replacement in table.items():
        if char in escaped:
            escaped = escaped.replace(char, replacement)
    return escaped
