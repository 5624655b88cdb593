"""Every benchmark script runs to completion in quick mode (timing is reported, not asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = sorted((ROOT / "benchmarks").glob("bench_*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("script", BENCHMARKS, ids=[p.name for p in BENCHMARKS])
def test_benchmark_runs_in_quick_mode(script: Path) -> None:
    """`python benchmarks/<script> --quick` exits 0 and prints a report."""
    result = subprocess.run(
        [sys.executable, str(script), "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert result.stdout.strip()
