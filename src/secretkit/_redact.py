"""Which values are secret right now, and masking them in text and streams.

A value is registered when a Secret is built (on a cache miss, never on the hot read path),
in every form it can take once written out (see :func:`~secretkit._redact_forms.forms`).
It stays registered while something holds it: a Secret (the store's cache holds one for
each cached value) or an owner passed to :func:`remember`. When the last holder is
collected, the value joins a window of the most recently released values, since the text
``reveal()`` handed out may still be in use; only when it falls out of that window is it
forgotten. So memory stays bounded and a value in use is never forgotten.

Log redaction is built on this module and never the other way: ``_redact_logs`` reads
:func:`version` to know that text it found clean is still clean.
"""

from __future__ import annotations

import codecs
import re
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from typing import AnyStr, Generic, Literal, overload
from urllib.parse import unquote

from . import _fork
from ._redact_engine import MIN_LENGTH, Matcher, merge, replace
from ._redact_forms import forms

__all__ = ["MIN_LENGTH", "REPLACEMENT", "StreamRedactor", "redact", "remember"]

REPLACEMENT = "**********"
#: How many released (or owner-less) forms stay masked after their last holder has gone.
RECENT_VALUES = 8192

_lock = threading.Lock()
_matcher = Matcher()
_held: dict[str, int] = {}  # form -> how many live holders registered it
_recent: OrderedDict[str, None] = OrderedDict()  # released or owner-less forms, oldest first
_holders: dict[int, tuple[weakref.ref[object], tuple[str, ...]]] = {}
# The forms of values registered lately: a value read again (each refresh, each cache miss)
# costs a look-up instead of some 60 us of encoding. Bounded to short values, and fewer of
# them than the forms ``_recent`` keeps masked after their holders have gone. Keyed on
# whether a parsed document came too: ``forms`` finds a document's leaves only in JSON it
# parses itself, and bytes json.loads reads (a UTF-8 BOM, UTF-16) it does not.
_forms_of: dict[tuple[str | bytes, bool], tuple[str, ...]] = {}
_MEMO_SIZE = 512
_MEMO_LONGEST = 4096
# Filled by weakref callbacks, which run wherever the collector runs (even inside this
# module, with the lock held): they only append here, and the next write drains it.
_released: deque[tuple[str, ...]] = deque()


def remember(value: object, parsed: object = None, *, owner: object = None) -> None:
    """Make redaction mask ``value`` (and the string leaves of a JSON value).

    ``parsed``, when the caller has already parsed ``value`` as JSON, saves parsing it again.
    With an ``owner`` (any object that supports weak references) the value stays
    registered while the owner lives, then joins the recently released window; without
    one it joins that window at once.
    """
    key = None
    # The exact types: a subclass may hash or compare as it likes.
    if (type(value) is str or type(value) is bytes) and len(value) <= _MEMO_LONGEST:
        key = (value, parsed is None)
    found = _forms_of.get(key) if key is not None else None
    if found is None:
        found = tuple(forms(value, parsed))
    if not found:
        return
    with _lock:
        if key is not None and key not in _forms_of:
            _forms_of[key] = found
            if len(_forms_of) > _MEMO_SIZE:
                del _forms_of[next(iter(_forms_of))]
        _drain()
        if owner is None:
            for form in found:
                _touch(form)
            return
        ref = weakref.ref(owner, _on_release)
        _holders[id(ref)] = (ref, found)
        for form in found:
            count = _held.get(form, 0)
            _held[form] = count + 1
            if not count:
                _matcher.add(form)


# `scheme://user:password@host`: user-info runs to the last "@" before the path, as urllib
# splits it (a password may hold an unescaped "@").
_USERINFO = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://([^/?#\s]*)@")


def url_passwords(text: str) -> Iterator[str]:
    """The password of each URL in ``text`` (``postgres://app:pw@db/app``), as written and decoded."""
    for match in _USERINFO.finditer(text):
        _, colon, password = match[1].partition(":")
        if colon and password:
            yield password
            decoded = unquote(password)
            if decoded != password:
                yield decoded


def remember_url_passwords(text: str, *, owner: object) -> None:
    """Register the password of each URL in ``text`` while ``owner`` lives (whatever its name).

    A ``DATABASE_URL`` or ``REDIS_URL`` read as configuration stays readable in logs,
    except its password: no URL's password is configuration.
    """
    if "://" in text and "@" in text:
        for password in url_passwords(text):
            remember(password, owner=owner)


def _on_release(ref: weakref.ref[object]) -> None:
    entry = _holders.pop(id(ref), None)
    if entry is not None:
        _released.append(entry[1])


def _drain() -> None:
    while _released:
        for form in _released.popleft():
            count = _held[form] - 1
            if count:
                _held[form] = count
            else:
                del _held[form]
                _touch(form)


def _touch(form: str) -> None:
    if form in _recent:
        _recent.move_to_end(form)
        return
    _recent[form] = None
    _matcher.add(form)  # a no-op when a holder registered it already
    while len(_recent) > RECENT_VALUES:
        oldest, _ = _recent.popitem(last=False)
        if oldest not in _held:
            _matcher.discard(oldest)


def registered() -> int:
    """How many forms are masked now (for tests and benchmarks)."""
    return len(_matcher)


def version() -> int:
    """A number that grows whenever a value is added: text checked clean stays clean until it grows."""
    return _matcher.version


def redact(text: str) -> str:
    """``text`` with every registered value replaced by a mask."""
    if not text:
        return text
    return _matcher.redact(text, REPLACEMENT)


def holds_value(text: str) -> bool:
    """Whether ``text`` shows a registered value."""
    return bool(_matcher.spans(text))


class StreamRedactor(Generic[AnyStr]):
    """Masks values in a stream read in arbitrary chunks, with the log redactor's rules.

    ::

        redactor = StreamRedactor()                  # every value this process registered
        redactor = StreamRedactor(["s3cr3t", b"k"])  # or exactly these (in all their forms)
        out.write(redactor.feed(chunk))              # bytes in, bytes out
        out.write(redactor.flush())                  # once, at the end of the stream
        StreamRedactor(text=True).feed("...")        # str in, str out

    A value split across chunks is still masked: the tail of what was fed that could be
    the start of a value (at most the longest value minus one character, or a whole match
    that such a tail overlaps) waits for the next chunk or :meth:`flush`. Everything else
    comes out at once, so a prompt without a newline shows. Bytes are matched as UTF-8
    text (decoded with ``surrogateescape``) and, for values that are not UTF-8, byte for
    byte too: the byte before such a value may make one character with its first byte.
    What is not a value comes out byte for byte. A redactor holds one stream's tail: use
    one per stream (:meth:`clone` gives another with the same values, :meth:`continuing`
    one that carries on another's stream).
    """

    @overload
    def __init__(
        self: StreamRedactor[bytes],
        values: Iterable[object] | None = None,
        *,
        text: Literal[False] = False,
        mask: str = REPLACEMENT,
    ) -> None: ...

    @overload
    def __init__(
        self: StreamRedactor[str],
        values: Iterable[object] | None = None,
        *,
        text: Literal[True],
        mask: str = REPLACEMENT,
    ) -> None: ...

    def __init__(
        self, values: Iterable[object] | None = None, *, text: bool = False, mask: str = REPLACEMENT
    ):
        self._values = None if values is None else list(values)
        self._matcher = _matcher if self._values is None else Matcher(_all_forms(self._values))
        self._text = text
        self._mask = mask
        self._carry = ""  # a text stream's held-back tail
        self._pending = b""  # a byte stream's held-back tail, undecoded

    def clone(self) -> StreamRedactor[AnyStr]:
        """A redactor for another stream: the same values, its own held-back tail."""
        twin: StreamRedactor[AnyStr] = StreamRedactor.__new__(StreamRedactor)
        twin._values, twin._matcher, twin._text, twin._mask = (
            self._values,
            self._matcher,
            self._text,
            self._mask,
        )
        twin._carry, twin._pending = "", b""
        return twin

    def continuing(self, other: StreamRedactor[AnyStr]) -> StreamRedactor[AnyStr]:
        """A redactor with these values that carries on ``other``'s stream (its held-back tail).

        For a set of values that grew mid-stream: the tail ``other`` held could start one
        of its values, so these values (a superset) hold or mask it just the same.
        """
        twin = self.clone()
        twin._carry, twin._pending = other._carry, other._pending
        return twin

    def feed(self, data: AnyStr) -> AnyStr:
        """What can be written now of everything fed so far, masked."""
        if isinstance(data, str):
            if not self._text:
                raise TypeError("this StreamRedactor masks bytes; build it with text=True for str")
            return self._step(data, final=False)
        if self._text:
            raise TypeError("this StreamRedactor masks str; build it without text=True for bytes")
        return self._step_bytes(data, final=False)

    def flush(self) -> AnyStr:
        """The held-back tail, masked, at the end of the stream."""
        if self._text:
            return self._step("", final=True)  # type: ignore[return-value]
        return self._step_bytes(b"", final=True)  # type: ignore[return-value]

    def _step(self, data: str, *, final: bool) -> str:
        buf = self._carry + data
        matcher = self._matcher
        spans = matcher.spans(buf)
        cut = len(buf)
        if not final:
            cut = _uncrossed(spans, cut - matcher.held(buf))
        self._carry = buf[cut:]
        return replace(buf, spans, cut, self._mask)

    def _step_bytes(self, data: bytes, *, final: bool) -> bytes:
        raw = self._pending + data
        matcher = self._matcher
        # `used` stops before a character the end of `raw` has only begun: it is held.
        text, used = codecs.utf_8_decode(raw, "surrogateescape", final)
        spans = matcher.spans(text)
        cut = len(text) - (0 if final else matcher.held(text))
        if used != len(text):  # some characters are several bytes: positions move
            spans = _byte_spans(text, spans)
            cut = used - len(text[cut:].encode("utf-8", "surrogateescape"))
        binary = matcher.binary
        if binary is not None and len(binary):
            view = raw.decode("latin-1")  # one character per byte
            found = binary.spans(view)
            if found:
                spans = merge(spans + found)
            if not final:
                cut = min(cut, len(raw) - binary.held(view))
        if not final:
            cut = _uncrossed(spans, cut)
        self._pending = raw[cut:]
        return replace(raw, spans, cut, self._mask.encode("utf-8", "surrogateescape"))


def _uncrossed(spans: list[tuple[int, int]], cut: int) -> int:
    """``cut``, or the start of the match it falls inside: that match is decided next time, whole."""
    for begin, end in reversed(spans):
        if begin < cut < end:
            return begin
        if end <= cut:
            break
    return cut


def _byte_spans(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``spans`` of ``text`` as positions in its UTF-8 (``surrogateescape``) bytes."""
    out: list[tuple[int, int]] = []
    char = byte = 0
    for begin, end in spans:
        byte += len(text[char:begin].encode("utf-8", "surrogateescape"))
        start = byte
        byte += len(text[begin:end].encode("utf-8", "surrogateescape"))
        char = end
        out.append((start, byte))
    return out


def _all_forms(values: Iterable[object]) -> list[str]:
    return [form for value in values for form in forms(value)]


@_fork.in_child
def _after_fork_in_child() -> None:
    # A parent thread may have held the lock mid-registration: the child gets a free one.
    global _lock
    _lock = threading.Lock()
