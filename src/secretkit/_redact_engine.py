"""The matcher behind log redaction and stream masking: many values, one pass, flat cost.

One regular expression of every value has to be recompiled for each new value, and it
costs more per line as values are added. Here each value is indexed by a few of its
4-character grams and a text is probed only at every ``step``-th position, so adding a
value is a handful of dict writes, and a scan costs the same with ten values or ten
thousand. A gram names only the offsets at which values hold it, never the values: a probe
that hits checks each offset by walking a tree of the values (one tree per 4-character
head), so values that share a head or a gram (``postgres://app:``, numbered tokens) cost a
scan no more than one value does. The same trees say whether the end of a stream chunk
could be the start of a value. What a value looks like once it is written out (escaped,
encoded, split into lines) is :mod:`secretkit._redact_forms`'s: logs and streams mask the
same forms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import AnyStr

__all__ = ["GRAM", "MIN_LENGTH", "Matcher", "merge", "replace"]

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

#: The offsets at which values filed under a gram hold it: a bare offset while one value is
#: filed there (most grams of random tokens), else how many values hold it at each offset.
#: A reader iterates a dict that is never resized in place: a new offset replaces it whole.
Bucket = int | dict[int, int]

#: Lone surrogates that a ``surrogateescape`` decoding writes for bytes that are not UTF-8.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


class Matcher:
    """A set of strings that finds all of them in a text at once.

    Writes (:meth:`add`, :meth:`discard`) must be serialised by the caller; reads
    (:meth:`spans`, :meth:`redact`, :meth:`held`) need no lock: a bucket that gains or loses
    an offset is replaced whole and a tree edge that splits is replaced by one dict store,
    so a reader sees each before or after a write, never half of one.
    """

    __slots__ = (
        "__weakref__",  # tests check the process registry is the same object after swapping it
        "_heads",
        "_index",
        "_keys",
        "_lengths",
        "_raw",
        "_starts",
        "_steps",
        "_values",
        "binary",
        "longest",
        "step",
        "version",
    )

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._index: dict[str, Bucket] = {}
        self._keys = self._index.keys()
        # Each value after its first GRAM characters, in a tree per head: which values start
        # at a position, and whether the end of a stream chunk could start one, each cost
        # one walk down a tree, however many values share that head (``churn-``, ``postgres``).
        self._heads: dict[str, Suffixes] = {}
        self._starts: dict[str, int] = {}  # every prefix shorter than GRAM, counted
        self._values: dict[str, int] = {}  # value -> offset of the first gram it is filed under
        self._steps = [0] * (MAX_STEP + 1)
        self._lengths: dict[int, int] = {}
        self.step = MAX_STEP
        self.longest = 0
        self.version = 0  # grows with every value added: "checked clean since" is comparable
        # Values holding bytes that are not UTF-8 (a binary key's ``surrogateescape`` text),
        # again as their raw bytes read as Latin-1: a byte stream matches them byte for byte,
        # since the byte before such a value can make a character with its first byte.
        self.binary: Matcher | None = None
        self._raw: dict[str, int] = {}  # raw form -> how many values have it
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
        head = self._heads.get(value[:GRAM])
        if head is None:
            head = self._heads[value[:GRAM]] = Suffixes()
        head.add(value[GRAM:])  # in the tree before any gram points at it
        index = self._index
        for offset in range(start, start + step):
            gram = value[offset : offset + GRAM]
            bucket = index.get(gram)
            if bucket is None:
                index[gram] = offset
            elif isinstance(bucket, int):
                index[gram] = {offset: 2} if bucket == offset else {bucket: 1, offset: 1}
            elif offset in bucket:
                bucket[offset] += 1  # a count, not a key: readers iterating it are unaffected
            else:
                index[gram] = {**bucket, offset: 1}
        for n in range(1, GRAM):
            self._starts[value[:n]] = self._starts.get(value[:n], 0) + 1
        if not value.isascii() and _ESCAPED_BYTE.search(value):
            self._add_raw(value)
        self.version += 1

    def discard(self, value: str) -> None:
        """Stop finding ``value``."""
        start = self._values.pop(value, None)
        if start is None:
            return
        size = len(value)
        step = min(MAX_STEP, size - GRAM + 1)
        index = self._index
        for offset in range(start, start + step):
            gram = value[offset : offset + GRAM]
            bucket = index[gram]
            if isinstance(bucket, int):
                del index[gram]
                continue
            count = bucket[offset] - 1
            if count:
                if count == 1 and len(bucket) == 1:
                    index[gram] = offset  # one value left: back to a bare offset
                else:
                    bucket[offset] = count
                continue
            kept = {at: n for at, n in bucket.items() if at != offset}
            if len(kept) == 1 and next(iter(kept.values())) == 1:
                index[gram] = next(iter(kept))
            else:
                index[gram] = kept  # not empty: a dict bucket holds two values or more
        head = self._heads.get(value[:GRAM])
        if head is not None and head.discard(value[GRAM:]):
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
        if not value.isascii() and _ESCAPED_BYTE.search(value):
            self._discard_raw(value)

    def _add_raw(self, value: str) -> None:
        try:
            raw = value.encode("utf-8", "surrogateescape").decode("latin-1")
        except UnicodeEncodeError:
            return  # a surrogate no decoding writes for a byte: no byte stream shows it
        count = self._raw.get(raw, 0)
        self._raw[raw] = count + 1
        if not count:
            if self.binary is None:
                self.binary = Matcher()
            self.binary.add(raw)

    def _discard_raw(self, value: str) -> None:
        try:
            raw = value.encode("utf-8", "surrogateescape").decode("latin-1")
        except UnicodeEncodeError:
            return
        count = self._raw[raw] - 1
        if count:
            self._raw[raw] = count
            return
        del self._raw[raw]
        if self.binary is not None:
            self.binary.discard(raw)

    def load(self, gram: str) -> int:
        """How many values are filed under ``gram``."""
        return self._load(gram)

    def _quietest_window(self, value: str, step: int) -> int:
        # A crowded gram costs a scan no more than a quiet one (a probe walks one tree per
        # offset, not one entry per value), but every text showing it leaves the fast path:
        # values that share a prefix are filed where their grams are rarest, so a line that
        # only shows that prefix stays on it.
        last = len(value) - GRAM - step + 1
        stride = last // (_WINDOWS - 1)
        if stride > 1:  # a long value: a few windows, spread along it
            best, best_load = 0, -1
            for start in range(0, last + 1, stride):
                load = sum(self._load(value[o : o + GRAM]) for o in range(start, start + step))
                if best_load < 0 or load < best_load:
                    best, best_load = start, load
                    if load <= step:
                        break  # about one other value per gram: as quiet as it usefully gets
            return best
        # Every window, one gram further each: a sliding sum looks each gram up once.
        loads = [self._load(value[o : o + GRAM]) for o in range(step)]
        load = best_load = sum(loads)
        best = 0
        for start in range(1, last + 1):
            if best_load <= step:
                break
            loads.append(self._load(value[start + step - 1 : start + step - 1 + GRAM]))
            load += loads[-1] - loads[start - 1]
            if load < best_load:
                best, best_load = start, load
        return best

    def _load(self, gram: str) -> int:
        bucket = self._index.get(gram)
        if bucket is None:
            return 0
        return 1 if isinstance(bucket, int) else sum(bucket.values())

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Where values occur in ``text``: sorted, overlaps merged into one span."""
        step = self.step
        if len(text) < GRAM or not self._index:
            return []
        grams = [text[i : i + GRAM] for i in range(0, len(text) - GRAM + 1, step)]
        if self._keys.isdisjoint(grams):
            return []  # the common case: one pass in C over a few grams
        index, heads = self._index, self._heads
        ends: dict[int, int] = {}  # a position checked -> the end of the longest value there, or -1
        for k, gram in enumerate(grams):
            bucket = index.get(gram)
            if bucket is None:
                continue
            at = k * step
            # One walk per offset, however many values are filed at it: they all start at
            # the same position, and the tree of that position's head holds every one.
            for offset in (bucket,) if isinstance(bucket, int) else bucket:
                begin = at - offset
                if begin < 0 or begin in ends:
                    continue
                head = heads.get(text[begin : begin + GRAM])
                n = -1 if head is None else head.longest(text, begin + GRAM)
                ends[begin] = begin + GRAM + n if n >= 0 else -1
        return merge([(begin, end) for begin, end in ends.items() if end >= 0])

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
            head = heads.get(text[begin : begin + GRAM])
            if head is not None and head.continues(text, begin + GRAM):
                return tail
        return 0


class _Edge:
    __slots__ = ("count", "label", "node")

    def __init__(self, label: str, node: _Node, count: int) -> None:
        self.label = label  # never empty
        self.node = node
        self.count = count  # how many strings pass through this edge


class _Node:
    __slots__ = ("edges", "ends")

    def __init__(self) -> None:
        self.edges: dict[str, _Edge] = {}  # by the first character of the edge's label
        self.ends = 0  # how many strings end here


class Suffixes:
    """A multiset of strings in a compressed trie: is a text a proper prefix of one of them?

    Answering walks one edge per branching point, however many strings are held. Writes
    are serialised by the caller; a reader needs no lock: an edge that splits is replaced
    by one dict store, so a reader sees the tree before or after the split, never between.
    """

    __slots__ = ("_root",)

    def __init__(self) -> None:
        self._root = _Node()

    def add(self, text: str) -> None:
        node, i = self._root, 0
        while i < len(text):
            edge = node.edges.get(text[i])
            if edge is None:
                leaf = _Node()
                leaf.ends = 1
                node.edges[text[i]] = _Edge(text[i:], leaf, 1)
                return
            label = edge.label
            k = 1
            limit = min(len(label), len(text) - i)
            while k < limit and label[k] == text[i + k]:
                k += 1
            if k < len(label):
                middle = _Node()
                middle.edges[label[k]] = _Edge(label[k:], edge.node, edge.count)
                edge = _Edge(label[:k], middle, edge.count)
                node.edges[text[i]] = edge  # the split, published whole
            edge.count += 1
            node, i = edge.node, i + k
        node.ends += 1

    def discard(self, text: str) -> bool:
        """Remove one occurrence of ``text`` (which must have been added); ``True`` when empty."""
        node, i = self._root, 0
        while i < len(text):
            edge = node.edges[text[i]]
            edge.count -= 1
            if not edge.count:
                del node.edges[text[i]]
                break
            node, i = edge.node, i + len(edge.label)
        else:
            node.ends -= 1
        root = self._root
        return not root.edges and not root.ends

    def longest(self, text: str, i: int) -> int:
        """The length of the longest string held that ``text[i:]`` starts with; -1 for none."""
        node, start, size = self._root, i, len(text)
        found = 0 if node.ends else -1
        while i < size:
            edge = node.edges.get(text[i])
            if edge is None or not text.startswith(edge.label, i):
                break
            node, i = edge.node, i + len(edge.label)
            if node.ends:
                found = i - start
        return found

    def continues(self, text: str, i: int) -> bool:
        """Whether ``text[i:]`` is a proper prefix of a string held."""
        node, size = self._root, len(text)
        while i < size:
            edge = node.edges.get(text[i])
            if edge is None:
                return False
            label = edge.label
            if size - i < len(label):
                return label.startswith(text[i:])
            if not text.startswith(label, i):
                return False
            node, i = edge.node, i + len(label)
        return bool(node.edges)


def merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``spans`` sorted, with spans that overlap merged into one (spans that only touch stay apart)."""
    merged: list[tuple[int, int]] = []
    for begin, end in sorted(spans):
        if merged and begin < merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((begin, end))
    return merged


def replace(text: AnyStr, spans: list[tuple[int, int]], cut: int, mask: AnyStr) -> AnyStr:
    """``text[:cut]`` with each span that ends by ``cut`` replaced by ``mask``."""
    parts: list[AnyStr] = []
    pos = 0
    for begin, end in spans:
        if end > cut:
            break
        parts.append(text[pos:begin])
        parts.append(mask)
        pos = end
    parts.append(text[pos:cut])
    return text[:0].join(parts)
