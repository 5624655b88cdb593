"""Redaction benchmarks: what log redaction costs per line and per new value, as values pile up.

Run by hand: ``python benchmarks/bench_redact.py`` (``--quick`` for a smoke run). With 10,
1,000 and 100,000 values registered (each held by a live Secret, as a cache holds them, all
sharing the head ``sk_live_`` as API keys of one vendor do), it times a log line through a
handler with and without ``redact_logs()``, a new secret plus one log line, and a small
``secretkit run`` stream feed that ends in that shared head. Ratios are against a baseline
measured in the same rounds (plain logging; a stream redactor with no values), so a slow or
noisy machine shifts both sides together. Then: the memory and build time of a matcher of
100,000 values, and stream feeds against values that share a long head and differ only in
their last digits (numbered tokens), the case that once made a feed walk every value.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import add_json_option, write_json
from _rounds import interleaved

from secretkit import Secret, _redact, redact_logs
from secretkit._redact_engine import Matcher

COUNTS = (10, 1_000, 100_000)
HEAD = "sk_live_"  # shared by every registered value: the crowded case for streams
FEEDS = 200


def make_logger() -> logging.Logger:
    logger = logging.getLogger("bench_redact")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    handler = logging.StreamHandler(open(os.devnull, "w"))  # lives as long as the run
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    return logger


def log_lines(logger: logging.Logger, lines: int) -> Callable[[], object]:
    def run() -> None:
        for i in range(lines):
            logger.info(
                "user %s logged in from %s (request %d, session %s)", "alice", "10.0.0.1", i, "a1b2c3"
            )

    return run


def with_factory(
    factory: Callable[..., logging.LogRecord], body: Callable[[], object]
) -> Callable[[], object]:
    def run() -> object:
        logging.setLogRecordFactory(factory)
        return body()

    return run


def stream_feeds(redactor: _redact.StreamRedactor[bytes]) -> Callable[[], object]:
    # Child output written a little at a time, each write ending where a key could start.
    chunks = [f"[{i:04d}] GET /api/items 200 12ms auth={HEAD}".encode() for i in range(FEEDS)]

    def run() -> None:
        for chunk in chunks:
            redactor.feed(chunk)
        redactor.flush()

    return run


Row = tuple[int, int, float, float, float, float, float, float, float]


def bench(counts: tuple[int, ...], rounds: int, lines: int) -> list[Row]:
    logger = make_logger()
    plain = logging.LogRecord
    logging.setLogRecordFactory(plain)
    redact_logs()
    redacting = logging.getLogRecordFactory()
    held: list[Secret[str]] = []
    rows = []
    for count in counts:
        while len(held) < count:
            held.append(Secret(f"S{len(held)}", HEAD + secrets.token_urlsafe(24)))
        fresh: list[Secret[str]] = []

        def new_value_and_line(fresh: list[Secret[str]] = fresh) -> None:
            fresh.append(Secret("NEW", HEAD + secrets.token_urlsafe(24)))
            logger.info("rotated %s for user %s", "db-password", "alice")

        samples = interleaved(
            {
                "plain": with_factory(plain, log_lines(logger, lines)),
                "redacted": with_factory(redacting, log_lines(logger, lines)),
                "new value + line": with_factory(redacting, new_value_and_line),
                "plain line": with_factory(plain, log_lines(logger, 1)),
                "stream": stream_feeds(_redact.StreamRedactor()),
                "stream, no values": stream_feeds(_redact.StreamRedactor([])),
            },
            rounds,
        )
        fresh.clear()
        plain_us = statistics.median(samples["plain"]) / lines * 1e6
        redacted_us = statistics.median(samples["redacted"]) / lines * 1e6
        ratio = statistics.median(r / p for r, p in zip(samples["redacted"], samples["plain"], strict=True))
        new_us = statistics.median(samples["new value + line"]) * 1e6
        new_ratio = statistics.median(
            n / p for n, p in zip(samples["new value + line"], samples["plain line"], strict=True)
        )
        feed_us = statistics.median(samples["stream"]) / FEEDS * 1e6
        feed_ratio = statistics.median(
            f / b for f, b in zip(samples["stream"], samples["stream, no values"], strict=True)
        )
        rows.append(
            (
                count,
                _redact.registered(),
                plain_us,
                redacted_us,
                ratio,
                new_us,
                new_ratio,
                feed_us,
                feed_ratio,
            )
        )
    logging.setLogRecordFactory(plain)
    return rows


def bench_stream(megabytes: int) -> tuple[float, float]:
    """Seconds to mask ``megabytes`` of log-like output in 64 KiB reads, and to just copy it."""
    chunk = (b"GET /api/v1/items?page=3 200 12ms user=alice session=a1b2c3d4\n" * 1100)[:65536]
    reads = megabytes * 16
    redactor = _redact.StreamRedactor()
    started = time.perf_counter()
    for _ in range(reads):
        redactor.feed(chunk)
    redactor.flush()
    masked = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(reads):
        bytes(chunk)
    copied = time.perf_counter() - started
    return masked, copied


def matcher_memory(count: int) -> tuple[float, float]:
    """Seconds to build a matcher of ``count`` values like the table's, and its size (values excluded)."""
    values = [HEAD + secrets.token_urlsafe(24) for _ in range(count)]
    started = time.perf_counter()
    Matcher(values)
    built = time.perf_counter() - started
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        matcher = Matcher(values)
        size = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    del matcher
    return built, size


def numbered_feeds(counts: tuple[int, ...], rounds: int) -> dict[int, float]:
    """Microseconds per stream feed against ``count`` values ``sk_live_0000000``, ``sk_live_0000001``..."""
    timed: dict[int, float] = {}
    for count in counts:
        values = [f"{HEAD}{i:07d}" for i in range(count)]
        probe = values[count // 2]
        chunks = [f"[{i:04d}] GET /api 200 auth={probe} next={HEAD}00".encode() for i in range(FEEDS)]
        redactor = _redact.StreamRedactor(values)

        def run(redactor: _redact.StreamRedactor[bytes] = redactor, chunks: list[bytes] = chunks) -> None:
            for chunk in chunks:
                redactor.feed(chunk)
            redactor.flush()

        timed[count] = statistics.median(interleaved({"feeds": run}, rounds)["feeds"]) / FEEDS * 1e6
    return timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="few rounds: a smoke run")
    add_json_option(parser)
    args = parser.parse_args()
    rounds, lines = (15, 50) if args.quick else (201, 200)
    rows: list[dict[str, object]] = []
    results: dict[str, object] = {"quick": args.quick, "rows": rows}
    counts = COUNTS

    mode = "quick" if args.quick else "full"
    print(f"secretkit redaction benchmarks (python {sys.version.split()[0]}, {mode})")
    print()
    print(
        f"{'values':>7} {'forms':>7} {'plain line':>11} {'redacted':>9} {'per-line':>9} "
        f"{'new value + line':>17} {'vs plain line':>14} {'stream feed':>12} {'vs no values':>13}"
    )
    for row in bench(counts, rounds, lines):
        count, forms, plain_us, redacted_us, ratio, new_us, new_ratio, feed_us, feed_ratio = row
        keys = ("values", "forms", "plain_line_us", "redacted_line_us", "per_line_ratio")
        keys += ("new_value_and_line_us", "new_value_vs_plain_line", "stream_feed_us", "stream_feed_ratio")
        rows.append(dict(zip(keys, row, strict=True)))
        print(
            f"{count:>7,} {forms:>7,} {plain_us:>9.2f}us {redacted_us:>7.2f}us {ratio:>8.2f}x "
            f"{new_us:>15.1f}us {new_ratio:>13.1f}x {feed_us:>10.2f}us {feed_ratio:>12.2f}x"
        )
    print()
    built, size_bytes = matcher_memory(COUNTS[-1])
    print(
        f"matcher of {COUNTS[-1]:,} values: built in {built:.2f} s, {size_bytes / 1e6:.1f} MB "
        f"({size_bytes / COUNTS[-1]:.0f} bytes a value, the values themselves not counted)"
    )
    results["matcher"] = {"values": COUNTS[-1], "built_s": built, "bytes": size_bytes}
    timed = numbered_feeds(COUNTS, rounds)
    results["numbered_feed_us"] = {str(count): us for count, us in timed.items()}
    print(
        f"stream feed, values numbered after one head ({HEAD}0000000...): "
        + ", ".join(f"{us:.2f}us at {count:,}" for count, us in timed.items())
    )
    print()
    size = 2 if args.quick else 16
    masked, copied = bench_stream(size)
    print(
        f"stream masking ({_redact.registered():,} forms registered): {size / masked:.1f} MB/s "
        f"({masked / size * 1e3:.1f} ms per MB; copying alone {copied / size * 1e3:.2f} ms per MB)"
    )
    results["stream_mb_per_s"] = size / masked
    write_json(args.json, results)


if __name__ == "__main__":
    main()
