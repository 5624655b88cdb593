"""A value written out by common encoders (URL, JSON of other languages, libpq) is still masked.

Each case encodes the value the way that encoder does, here or by hand where the encoder is
another language's, and checks the encoded text is masked in a log record and in the stream
masker behind ``secretkit run``.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, quote_plus, urlencode

import pytest
from log_capture import redacted_logger

from secretkit import Secret
from secretkit._redact import StreamRedactor
from test_cli import clean_env, run_cli

# Characters each encoder treats differently: reserved URL characters, a space, quotes,
# HTML-sensitive ones, a backslash, non-ASCII.
VALUE = "pa/ss w+rd&<k>'e\"y\\é=?#!*~"


def encode_uri_component(text: str) -> str:
    """JavaScript's encodeURIComponent."""
    return quote(text, safe="!~*'()")


def go_json(text: str) -> str:
    """Go's encoding/json: <, >, & escaped as \\u003c..., other non-ASCII kept."""
    body = json.dumps(text, ensure_ascii=False)[1:-1]
    return body.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def upper_hex_json(text: str) -> str:
    """JSON with upper-case hex escapes, as Java and .NET write \\u00E9."""
    body = json.dumps(text)[1:-1]
    return body.replace("\\u00e9", "\\u00E9")


def dotnet_json(text: str) -> str:
    """.NET's System.Text.Json default: HTML-sensitive characters, quotes and + escaped, upper-case hex."""
    out = []
    for char in text:
        if char in "<>&'\"+`" or not char.isascii():
            out.append(f"\\u{ord(char):04X}")
        elif char == "\\":
            out.append("\\\\")
        else:
            out.append(char)
    return "".join(out)


def lower_percent(text: str) -> str:
    """Percent-encoding with lower-case hex digits, as some encoders (and hand-written ones) write."""
    return re.sub("%[0-9A-F]{2}", lambda match: match[0].lower(), quote(text, safe=""))


ENCODERS: dict[str, Callable[[str], str]] = {
    "quote-default-safe": quote,  # safe="/"
    "quote-safe-empty": lambda text: quote(text, safe=""),
    "quote_plus": quote_plus,
    "urlencode": lambda text: urlencode({"password": text}).split("=", 1)[1],
    "lower-case-percent": lower_percent,
    "encodeURIComponent": encode_uri_component,
    "encodeURI": lambda text: quote(text, safe=";,/?:@&=+$!~*'()#"),
    "go-json": go_json,
    "escaped-slash-json": lambda text: json.dumps(text)[1:-1].replace("/", "\\/"),
    "upper-case-unicode-escape": upper_hex_json,
    "dotnet-json": dotnet_json,
    "libpq-quoting": lambda text: text.replace("\\", "\\\\").replace("'", "\\'"),
    "sql-doubled-quote": lambda text: text.replace("'", "''"),
}


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    with redacted_logger("encoding_probe", logging.StreamHandler(stream)):
        yield stream


@pytest.mark.parametrize("encoder", ENCODERS, ids=list(ENCODERS))
def test_an_encoded_value_is_masked_in_a_log_record(captured: io.StringIO, encoder: str) -> None:
    """A log line carrying the value as that encoder writes it shows the mask."""
    held = Secret("PROBE", VALUE)
    encoded = ENCODERS[encoder](held.reveal())
    assert encoded != VALUE  # the case really encodes something
    logging.getLogger("encoding_probe").info("GET /login?token=%s HTTP/1.1", encoded)
    assert encoded not in captured.getvalue()
    assert "token=********** HTTP/1.1" in captured.getvalue()


@pytest.mark.parametrize("encoder", ENCODERS, ids=list(ENCODERS))
def test_an_encoded_value_is_masked_in_a_stream_split_anywhere(encoder: str) -> None:
    """The stream masker masks each encoded form, however the output is cut."""
    encoded = ENCODERS[encoder](VALUE).encode()
    data = b"connect " + encoded + b" done\n"
    for at in range(len(data) + 1):
        redactor = StreamRedactor([VALUE])
        out = redactor.feed(data[:at]) + redactor.feed(data[at:]) + redactor.flush()
        assert out == b"connect ********** done\n", at


def test_secretkit_run_masks_encoded_forms_the_child_prints(tmp_path: Path) -> None:
    """A child of `secretkit run` printing the value URL-encoded and Go-JSON-escaped shows masks."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "password").write_text(VALUE)
    env = {**clean_env(tmp_path / "home"), "DB_PASSWORD": f"file://{work}/password"}
    code = (
        "import os, json, urllib.parse as u\n"
        "v = os.environ['DB_PASSWORD']\n"
        "print('url', u.quote(v))\n"
        "print('form', u.urlencode({'p': v}))\n"
        "b = json.dumps(v, ensure_ascii=False)[1:-1]\n"
        "print('go', b.replace('<', '\\\\u003c').replace('>', '\\\\u003e').replace('&', '\\\\u0026'))\n"
    )
    result = run_cli("run", "--", sys.executable, "-c", code, env=env, cwd=work, secrets=[VALUE])
    assert result.code == 0, result.describe()
    assert result.out == "url **********\nform p=**********\ngo **********\n", result.describe()
    for encoder in ("quote-default-safe", "urlencode", "go-json"):
        assert ENCODERS[encoder](VALUE) not in result.out
