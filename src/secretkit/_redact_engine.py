"""The matcher behind log redaction and stream masking: many values, one pass, flat cost.

One regular expression of every value has to be recompiled for each new value, and it
costs more per line as values are added. Here each value is indexed by a few of its
4-character grams and a text is probed only at every ``step``-th position, so adding a
value is a handful of dict writes, and a scan costs the same with ten values or ten
thousand. :func:`forms` holds the rules for what a value looks like once it is written
out (escaped, encoded, split into lines): logs and streams mask the same forms.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import quote

__all__ = ["DESCRIPTIVE_KEYS", "GRAM", "MIN_LENGTH", "Matcher", "forms"]

#: Shorter values are not masked: masking every "1" or "on" in a log would make it unreadable.
MIN_LENGTH = 4
#: The length of the grams values are indexed by; no value is shorter, so each has one.
GRAM = MIN_LENGTH
#: Texts are probed at every MAX_STEP-th position when every value is long enough
#: (GRAM + MAX_STEP - 1 characters or more); shorter values lower the step for all.
MAX_STEP = 8
#: How many alternative windows of grams a new value compares, to avoid crowded grams
#: (connection strings that share ``postgres://``, say).
_WINDOWS = 16
_MAX_DEPTH = 8
#: Keys of a JSON secret whose values say where a credential is used, not what it is: the
#: descriptive fields of the JSON that AWS Secrets Manager keeps for a database. Registering
#: them would mask every log line that names the engine ("postgres") or the port ("5432").
#: Compared without case; a value picked on its own (``#host``) is still masked.
DESCRIPTIVE_KEYS = frozenset(
    {"engine", "host", "port", "dbname", "dbinstanceidentifier", "dbclusteridentifier", "masterarn"}
)

Entry = tuple[str, int]  # a value, and the offset in it of the gram it is filed under


class Matcher:
    """A set of strings that finds all of them in a text at once.

    Writes (:meth:`add`, :meth:`discard`) must be serialised by the caller; reads
    (:meth:`spans`, :meth:`redact`, :meth:`held`) need no lock: buckets are tuples,
    replaced whole, so a reader sees a bucket before or after a write, never half of one.
    """

    __slots__ = ("_heads", "_index", "_keys", "_lengths", "_starts", "_steps", "_values", "longest", "step")

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._index: dict[str, tuple[Entry, ...]] = {}
        self._keys = self._index.keys()
        # The first GRAM characters of each value, for streams that must know whether the
        # end of a chunk could be the start of a value.
        # Buckets here are dicts, changed in place: values sharing a head (``churn-``,
        # ``postgres``) would make copy-on-write cost a copy of the bucket per change.
        self._heads: dict[str, dict[str, None]] = {}
        self._starts: dict[str, int] = {}  # every prefix shorter than GRAM, counted
        self._values: dict[str, int] = {}  # value -> offset of the first gram it is filed under
        self._steps = [0] * (MAX_STEP + 1)
        self._lengths: dict[int, int] = {}
        self.step = MAX_STEP
        self.longest = 0
        for value in values:
            self.add(value)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, value: object) -> bool:
        return value in self._values

    def add(self, value: str) -> None:
        """Find ``value`` from now on (at least ``MIN_LENGTH`` characters)."""
        if value in self._values or len(value) < GRAM:
            return
        size = len(value)
        # An occurrence at p covers a probed position in [p, p + step - 1]; filing the value
        # under `step` consecutive grams, all inside it, makes sure one of them is probed.
        step = min(MAX_STEP, size - GRAM + 1)
        start = self._quietest_window(value, step)
        self._values[value] = start
        self._steps[step] += 1
        self._lengths[size] = self._lengths.get(size, 0) + 1
        self.longest = max(self.longest, size)
        if step < self.step:
            self.step = step  # lowered before filing: a reader never probes too sparsely
        index = self._index
        for offset in range(start, start + step):
            gram = value[offset : offset + GRAM]
            index[gram] = (*index.get(gram, ()), (value, offset))
        self._heads.setdefault(value[:GRAM], {})[value] = None
        for n in range(1, GRAM):
            self._starts[value[:n]] = self._starts.get(value[:n], 0) + 1

    def discard(self, value: str) -> None:
        """Stop finding ``value``."""
        start = self._values.pop(value, None)
        if start is None:
            return
        size = len(value)
        step = min(MAX_STEP, size - GRAM + 1)
        index = self._index
        for gram in {value[offset : offset + GRAM] for offset in range(start, start + step)}:
            kept = tuple(entry for entry in index.get(gram, ()) if entry[0] != value)
            if kept:
                index[gram] = kept
            else:
                index.pop(gram, None)
        bucket = self._heads.get(value[:GRAM], {})
        bucket.pop(value, None)
        if not bucket:
            self._heads.pop(value[:GRAM], None)
        for n in range(1, GRAM):
            left = self._starts[value[:n]] - 1
            if left:
                self._starts[value[:n]] = left
            else:
                del self._starts[value[:n]]
        self._steps[step] -= 1
        if step == self.step and not self._steps[step]:
            self.step = next((s for s in range(step, MAX_STEP + 1) if self._steps[s]), MAX_STEP)
        count = self._lengths[size] - 1
        if count:
            self._lengths[size] = count
        else:
            del self._lengths[size]
            if size == self.longest:
                self.longest = max(self._lengths, default=0)

    def _quietest_window(self, value: str, step: int) -> int:
        # Values that share a prefix would all land in the same buckets, and every text with
        # that prefix would check each of them: file the value where its grams are rarest.
        index = self._index
        last = len(value) - GRAM - step + 1
        best, best_load = 0, -1
        for start in range(0, last + 1, max(1, last // (_WINDOWS - 1)) if last else 1):
            load = sum(len(index.get(value[o : o + GRAM], ())) for o in range(start, start + step))
            if best_load < 0 or load < best_load:
                best, best_load = start, load
                if load <= step:
                    break  # about one other value per gram: as quiet as it usefully gets
        return best

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where values occur in ``text``: sorted, overlaps merged into one span."""
        step = self.step
        if len(text) < GRAM or not self._index:
            return []
        grams = [text[i : i + GRAM] for i in range(0, len(text) - GRAM + 1, step)]
        if self._keys.isdisjoint(grams):
            return []  # the common case: one pass in C over a few grams
        index = self._index
        found: set[tuple[int, int]] = set()
        for k, gram in enumerate(grams):
            entries = index.get(gram)
            if entries:
                at = k * step
                for value, offset in entries:
                    begin = at - offset
                    if begin >= 0 and text.startswith(value, begin):
                        found.add((begin, begin + len(value)))
        merged: list[tuple[int, int]] = []
        for begin, end in sorted(found):
            if merged and begin <= merged[-1][1] - 1:
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
            else:
                merged.append((begin, end))
        return merged

    def redact(self, text: str, mask: str) -> str:
        """``text`` with each span of values replaced by ``mask``."""
        spans = self.spans(text)
        if not spans:
            return text
        return replace(text, spans, len(text), mask)

    def held(self, text: str) -> int:
        """The length of the longest tail of ``text`` that is a proper prefix of some value."""
        size = len(text)
        heads, starts = self._heads, self._starts
        for begin in range(max(0, size - self.longest + 1), size):
            tail = size - begin
            if tail < GRAM:
                if text[begin:] in starts:
                    return tail
                continue
            # list(): one copy in C, so a value added meanwhile cannot break the loop
            for value in list(heads.get(text[begin : begin + GRAM], ())):
                if len(value) > tail and text.endswith(value[:tail]):
                    return tail
        return 0


def replace(text: str, spans: list[tuple[int, int]], cut: int, mask: str) -> str:
    """``text[:cut]`` with each span that ends by ``cut`` replaced by ``mask``."""
    parts: list[str] = []
    pos = 0
    for begin, end in spans:
        if end > cut:
            break
        parts.append(text[pos:begin])
        parts.append(mask)
        pos = end
    parts.append(text[pos:cut])
    return "".join(parts)


def forms(value: object, parsed: object = None) -> list[str]:
    """Every text in which ``value`` (and each leaf of a JSON value) shows when written out.

    The value itself; its ``repr()`` and JSON-escaped forms (and the ``repr()`` of those,
    as a dict holding a JSON document prints); its URL-encoded form; each line of a
    multi-line value. Bytes count in every form they decode to: UTF-8, and for other bytes
    their ``repr()`` contents, Latin-1, and the ``surrogateescape`` text a stream decodes
    them to. ``parsed``, when the caller has parsed ``value`` as JSON already, saves
    parsing it again. Leaves under :data:`DESCRIPTIVE_KEYS` (a database secret's ``host``,
    ``port``, ...) are left out: they are configuration, and the whole document still counts.
    """
    out: dict[str, None] = {}
    if parsed is not None:
        _walk(value, out, depth=1)  # the whole document, not parsed again
        _walk(parsed, out, depth=1)
    else:
        _walk(value, out, depth=0)
    return [form for form in out if len(form) >= MIN_LENGTH]


def _walk(value: object, out: dict[str, None], depth: int) -> None:
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
        if "\n" in value:
            for line in value.splitlines():
                line = line.strip()
                if len(line) >= MIN_LENGTH:
                    _text_forms(line, out)
        stripped = value.strip()
        if depth == 0 and stripped[:1] in ("{", "["):
            try:
                document = json.loads(stripped)
            except (ValueError, RecursionError):
                return
            _walk(document, out, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            if (
                isinstance(key, str)
                and key.lower() in DESCRIPTIVE_KEYS
                and not isinstance(item, (dict, list))
            ):
                continue
            _walk(item, out, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _walk(item, out, depth + 1)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = repr(value)
        if len(text) >= MIN_LENGTH:
            out[text] = None


def _text_forms(text: str, out: dict[str, None]) -> None:
    out[text] = None
    quoted = repr(text)[1:-1]
    escaped = json.dumps(text)[1:-1]
    out[quoted] = None
    out[escaped] = None
    # A JSON document inside a str prints, in a dict's repr(), with the quote repr() picks
    # for the whole document: both choices.
    out[repr(escaped)[1:-1]] = None
    out[repr(escaped + "'\"")[1:-4]] = None
    out[json.dumps(text, ensure_ascii=False)[1:-1]] = None
    out[quote(text, safe="")] = None
    try:
        encoded = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return
    if not encoded.isascii():
        out[repr(encoded)[2:-1]] = None
