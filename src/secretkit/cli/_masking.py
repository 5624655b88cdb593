"""The values ``run`` masks in its child's output, and the stream masker that does it."""

from __future__ import annotations

import json
from collections.abc import Iterable

from .._redact import MIN_LENGTH
from .._secret import MASK


def mask_values(values: Iterable[object]) -> list[bytes]:
    """What to mask for injected values: each whole, each JSON leaf, each line of a multi-line one."""
    out: list[str] = []

    def collect(value: object, depth: int) -> None:
        if depth > 8:
            return
        if isinstance(value, bytes):
            value = value.decode("utf-8", "surrogateescape")
        if isinstance(value, str):
            out.append(value)
            if "\n" in value:
                out.extend(line.rstrip("\r") for line in value.split("\n"))
            stripped = value.strip()
            if depth == 0 and stripped[:1] in ("{", "["):
                try:
                    collect(json.loads(stripped), depth + 1)
                except ValueError:
                    pass
        elif isinstance(value, dict):
            out.append(json.dumps(value))
            for item in value.values():
                collect(item, depth + 1)
        elif isinstance(value, list):
            out.append(json.dumps(value))
            for item in value:
                collect(item, depth + 1)

    for value in values:
        collect(value, 0)
    return [v.encode("utf-8", "surrogateescape") for v in dict.fromkeys(out) if len(v) >= MIN_LENGTH]


class Masker:
    """Replaces known values in a byte stream fed in arbitrary chunks.

    A value split across two chunks is still masked: the tail of a chunk that could be the
    start of a value is held back until the next chunk (or the end) decides. Nothing else is
    held back, so a prompt without a newline still shows at once.
    """

    def __init__(self, values: Iterable[bytes], mask: bytes = MASK.encode()) -> None:
        self._values = sorted({v for v in values if v}, key=len, reverse=True)
        self._mask = mask
        self._carry = b""

    def clone(self) -> Masker:
        """A masker for another stream: the same values, its own held-back tail."""
        return Masker(self._values, self._mask)

    def feed(self, data: bytes) -> bytes:
        """What can be written now of everything fed so far."""
        if not self._values:
            return data
        buf = self._carry + data
        spans = self._spans(buf)
        cut = len(buf) - self._held(buf)
        for start, end in reversed(spans):
            if start < cut < end:
                cut = start  # a value that reaches into the held tail is decided next time, whole
                break
            if end <= cut:
                break
        self._carry = buf[cut:]
        return self._replace(buf, spans, cut)

    def flush(self) -> bytes:
        """The held-back tail, masked, at the end of the stream."""
        buf, self._carry = self._carry, b""
        return self._replace(buf, self._spans(buf), len(buf))

    def _spans(self, buf: bytes) -> list[tuple[int, int]]:
        # Every occurrence of every value, overlaps merged: overlapping values are masked as one.
        found: list[tuple[int, int]] = []
        for value in self._values:
            at = buf.find(value)
            while at >= 0:
                found.append((at, at + len(value)))
                at = buf.find(value, at + 1)
        found.sort()
        merged: list[tuple[int, int]] = []
        for start, end in found:
            if merged and start < merged[-1][1]:
                if end > merged[-1][1]:
                    merged[-1] = (merged[-1][0], end)
            else:
                merged.append((start, end))
        return merged

    def _held(self, buf: bytes) -> int:
        """The length of the longest tail of ``buf`` that is a proper prefix of some value."""
        best = 0
        size = len(buf)
        for value in self._values:
            longest = min(len(value) - 1, size)
            if longest <= best:
                continue
            first = value[:1]
            at = buf.find(first, size - longest)
            while at >= 0 and size - at > best:
                if value.startswith(buf[at:]):
                    best = size - at
                    break
                at = buf.find(first, at + 1)
        return best

    def _replace(self, buf: bytes, spans: list[tuple[int, int]], cut: int) -> bytes:
        parts: list[bytes] = []
        pos = 0
        for start, end in spans:
            if end > cut:
                break
            parts.append(buf[pos:start])
            parts.append(self._mask)
            pos = end
        parts.append(buf[pos:cut])
        return b"".join(parts)
