"""Stream masking (what `secretkit run` puts between a child and the terminal), probed for leaks."""

from __future__ import annotations

import json
import time

import pytest

from secretkit import Secret, _redact
from secretkit._redact import StreamRedactor

VALUE = "s3cr3t-stream-value"


def feed_split(redactor: StreamRedactor[bytes], data: bytes, at: int) -> bytes:
    return redactor.feed(data[:at]) + redactor.feed(data[at:]) + redactor.flush()


def test_a_value_split_at_any_point_is_masked() -> None:
    """However the stream is cut in two, the value comes out masked and the rest unchanged."""
    data = f"before {VALUE} after {VALUE}\n".encode()
    for at in range(len(data) + 1):
        assert feed_split(StreamRedactor([VALUE]), data, at) == b"before ********** after **********\n", at


def test_a_value_fed_one_byte_at_a_time_is_masked() -> None:
    """A child that writes one byte per read still has its value masked."""
    redactor = StreamRedactor([VALUE])
    out = b"".join(redactor.feed(bytes([b])) for b in f"x {VALUE} y".encode()) + redactor.flush()
    assert out == b"x ********** y"


def test_a_multibyte_value_split_inside_a_character_is_masked() -> None:
    """A UTF-8 value cut in the middle of a character is masked, and no byte is lost."""
    value = "pässwörd-ünïcode"
    data = f"[{value}] ü\n".encode()
    for at in range(len(data) + 1):
        assert feed_split(StreamRedactor([value]), data, at) == "[**********] ü\n".encode(), at


def test_only_a_possible_start_of_a_value_is_held_back() -> None:
    """A prompt shows at once; at most the longest value minus one character waits."""
    redactor = StreamRedactor([VALUE])
    assert redactor.feed(b"Password: ") == b"Password: "
    assert redactor.feed(b"abc s3c") == b"abc "
    assert redactor.feed(b"ond") == b"s3cond"
    assert redactor.feed(b"x" * 100 + VALUE[:-1].encode()) == b"x" * 100
    assert redactor.flush() == VALUE[:-1].encode()  # what waited: the value minus one character


def test_overlapping_values_are_masked_whole_when_split() -> None:
    """When one value is a prefix of another, the longer one is masked whole at any split."""
    data = b"[token-extended] [token]"
    for at in range(len(data) + 1):
        redactor = StreamRedactor(["token", "token-extended"])
        assert feed_split(redactor, data, at) == b"[**********] [**********]", at
    redactor = StreamRedactor(["token", "token-extended"])
    assert redactor.feed(b"token") == b""  # could still become token-extended
    assert redactor.flush() == b"**********"


def test_output_that_is_not_a_value_passes_byte_for_byte() -> None:
    """Invalid UTF-8, NUL and CR bytes come out exactly as the child wrote them."""
    data = b"\x00\xff\xfe hello \xc3( \r\n\x80"
    for at in range(len(data) + 1):
        assert feed_split(StreamRedactor([VALUE]), data, at) == data, at


def test_a_binary_secret_is_masked_in_the_stream() -> None:
    """A non-UTF-8 bytes secret written raw by the child is masked."""
    value = b"\xff\xfe-binary-secret-\x9c"
    data = b"key=" + value + b"\n"
    for at in range(len(data) + 1):
        assert feed_split(StreamRedactor([value]), data, at) == b"key=**********\n", at


def test_streams_mask_the_same_forms_as_logs() -> None:
    """One engine: escaped, JSON and line forms a log would mask are masked in a stream too."""
    value = 'multi\nline "quoted" sécret\tvalue'
    held = Secret("STREAM_FORMS", value)
    texts = [
        f"raw: {value}",
        f"repr: {value!r}",
        f"json: {json.dumps({'v': value})}",
        f"json-utf8: {json.dumps({'v': value}, ensure_ascii=False)}",
        'one line: line "quoted" sécret\tvalue\n',
    ]
    for text in texts:
        redactor = StreamRedactor([value], text=True)
        streamed = redactor.feed(text) + redactor.flush()
        assert streamed == _redact.redact(text), text
        assert "sécret" not in streamed, text
    assert held.reveal() == value


def test_the_default_redactor_masks_what_the_process_registered() -> None:
    """Without a value list, a redactor masks every registered value, even one registered later."""
    redactor = StreamRedactor()
    held = Secret("STREAM_LATE", "registered-after-start-71")
    assert redactor.feed(b"a registered-after-start-71 b") + redactor.flush() == b"a ********** b"
    assert held.name == "STREAM_LATE"


def test_clones_hold_their_own_tail() -> None:
    """A clone shares the values but not the held-back tail (stdout and stderr are separate)."""
    stdout = StreamRedactor([VALUE])
    stderr = stdout.clone()
    assert stdout.feed(b"s3cr3t-") == b""
    assert stderr.feed(b"plain\n") == b"plain\n"
    assert stdout.feed(b"stream-value!") == b"**********!"


def test_text_mode_takes_and_gives_str() -> None:
    """text=True masks str chunks; mixing types is refused."""
    redactor = StreamRedactor([VALUE], text=True)
    assert redactor.feed(f"a {VALUE[:5]}") == "a "
    assert redactor.feed(f"{VALUE[5:]} b") + redactor.flush() == "********** b"
    with pytest.raises(TypeError):
        redactor.feed(b"bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        StreamRedactor([VALUE]).feed("text")  # type: ignore[arg-type]


def test_many_values_sharing_a_head_do_not_slow_a_feed() -> None:
    """20,000 values sharing their first characters: small feeds ending in that head cost as with 10.

    (Checking every value under a shared head made 2,000 such feeds take ~40 s at 100,000 values.)
    The bound is loose, against a baseline measured in the same test, so load cannot fail it.
    """
    values = [f"tok-{i:06d}-{'x' * 20}" for i in range(20_000)]
    chunks = [f"line {i} output tok-0".encode() for i in range(2_000)]

    def feeds(redactor: StreamRedactor[bytes]) -> float:
        started = time.perf_counter()
        out = b"".join(redactor.feed(chunk) for chunk in chunks) + redactor.flush()
        assert out == b"".join(chunks)
        return time.perf_counter() - started

    few, many = StreamRedactor(values[:10]), StreamRedactor(values)
    baseline = min(feeds(few.clone()) for _ in range(3))
    crowded = min(feeds(many.clone()) for _ in range(3))
    assert crowded < 10 * baseline + 0.5


def test_a_value_under_a_crowded_head_is_still_held_and_masked() -> None:
    """Among thousands of values sharing a head, one split across feeds is masked, the rest pass."""
    values = [f"tok-{i:06d}-{'y' * 12}" for i in range(5_000)]
    redactor = StreamRedactor(values)
    target = values[4321]
    data = f"a {target} b tok-999999-not-a-value\n".encode()
    for at in range(len(data) + 1):
        twin = redactor.clone()
        out = twin.feed(data[:at]) + twin.feed(data[at:]) + twin.flush()
        assert out == b"a ********** b tok-999999-not-a-value\n", at
