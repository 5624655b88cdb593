"""The ``--json PATH`` option every benchmark offers, so ``run_all.py`` reads figures, not printouts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the figures to PATH as JSON")


def write_json(path: Path | None, results: dict[str, Any]) -> None:
    """Write ``results`` to ``path`` (nothing without one); units are in the keys' names."""
    if path is not None:
        path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n", encoding="utf-8")
