"""``secretkit get``: one secret's metadata, and its value only when asked."""

from __future__ import annotations

import argparse
import base64
import sys
from typing import Any

from .._api import default_store
from .._secret import MASK, Secret
from ._exits import EXIT_OK
from ._output import say, say_json, shown_name
from ._resolve import as_text


def _kind(value: object) -> str:
    if isinstance(value, str):
        return "str"
    if isinstance(value, bytes):
        return "bytes"
    return "json"


def _metadata(secret: Secret[Any]) -> dict[str, Any]:
    return {
        "name": shown_name(secret.name),
        "source": secret.source,
        "version": secret.version,
        "fetched_at": secret.fetched_at.isoformat(timespec="seconds"),
        "type": _kind(secret.reveal()),
    }


def command(args: argparse.Namespace) -> int:
    """Print one secret's metadata, or its value with ``--reveal``."""
    secret = default_store().get(args.name)
    meta = _metadata(secret)
    if args.json:
        if args.reveal:
            value = secret.reveal()
            if isinstance(value, bytes):
                meta["value"] = base64.b64encode(value).decode("ascii")
                meta["encoding"] = "base64"
            else:
                meta["value"] = value
        say_json(meta)
    elif args.reveal:
        _write_value(secret.reveal())
    else:
        for key, val in meta.items():
            say(f"{key + ':':<12}{'-' if val is None else val}")
        say(f"{'value:':<12}{MASK} (use --reveal to print it)")
    return EXIT_OK


def _write_value(value: object) -> None:
    sys.stdout.flush()
    out = sys.stdout.buffer
    if isinstance(value, bytes):
        out.write(value)  # binary as is: `secretkit get --reveal KEY > key.der` must round-trip
    else:
        out.write((as_text(value) + "\n").encode("utf-8", "surrogateescape"))
    out.flush()
