"""``python -m secretkit``: the same command as the ``secretkit`` script, for when it is not on PATH."""

from __future__ import annotations

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
