"""Every benchmark script runs to completion in quick mode (timing is reported, not asserted).

The scripts the README's figures come from run through ``benchmarks/run_all.py``, one test
each, so the command that writes the figures is tested on every one of them and no script
runs twice; the others run on their own.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUN_ALL = ROOT / "benchmarks" / "run_all.py"


def _load_run_all() -> ModuleType:
    spec = importlib.util.spec_from_file_location("benchmarks_run_all", RUN_ALL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


run_all = _load_run_all()
FIGURES = [bench.name for bench in run_all.BENCHMARKS]
OTHERS = sorted(
    path
    for path in (ROOT / "benchmarks").glob("bench_*.py")
    if path.name not in {bench.script for bench in run_all.BENCHMARKS}
)


def _outside_block(text: str) -> tuple[str, str]:
    head, rest = text.split(run_all.BEGIN)
    return head, rest.split(run_all.END)[1]


def _block(text: str) -> str:
    return text.split(run_all.BEGIN)[1].split(run_all.END)[0].strip()


@pytest.mark.slow
@pytest.mark.parametrize("name", FIGURES)
def test_a_figures_benchmark_runs_through_run_all_and_fills_its_rows_of_the_readme(
    name: str, tmp_path: Path
) -> None:
    """`run_all.py --quick --only <name> --write-readme` rewrites only the figures block, with that
    script's rows measured, the others marked as not measured, and the machine and load under it."""
    original = (ROOT / "README.md").read_text(encoding="utf-8")
    readme, results = tmp_path / "README.md", tmp_path / "results"
    readme.write_text(original, encoding="utf-8")
    command = [sys.executable, str(RUN_ALL), "--quick", "--only", name, "--results", str(results)]
    result = subprocess.run(
        [*command, "--readme", str(readme), "--write-readme"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"{name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    script = next(bench.script for bench in run_all.BENCHMARKS if bench.name == name)
    report = result.stderr.split(f"=== python benchmarks/{script}", 1)[1]
    assert report.strip(), "the script's own report is passed through"
    assert json.loads((results / f"{name}.json").read_text(encoding="utf-8"))["quick"] is True

    written = readme.read_text(encoding="utf-8")
    assert _outside_block(written) == _outside_block(original)
    block = _block(written)
    ours = sum(1 for source, _, _ in run_all.ROWS if source == name)
    others = sum(1 for source, _, _ in run_all.ROWS if source and source != name)
    assert ours > 0
    assert block.count("| not measured in this run |") == others
    assert "not measured:" not in block  # no row of this script is missing a figure
    pydantic_row = next(line for line in original.splitlines() if line.startswith(f"| {run_all.CARRIED[0]}"))
    assert pydantic_row in block.splitlines()
    footer = " ".join(block.split("\n\n")[-1].split())
    assert f"{os.cpu_count()} cores" in footer
    assert "Load average" in footer
    assert "these are not figures" in footer

    again = subprocess.run(
        [sys.executable, str(RUN_ALL), "--from-results", str(results), "--readme", str(readme)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == block, "a kept run writes the same table again without measuring"


@pytest.mark.slow
@pytest.mark.parametrize("script", OTHERS, ids=[p.name for p in OTHERS])
def test_a_benchmark_outside_the_readme_table_runs_in_quick_mode(script: Path) -> None:
    """`python benchmarks/<script> --quick` exits 0 and prints a report."""
    result = subprocess.run(
        [sys.executable, str(script), "--quick"], cwd=ROOT, capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, f"{script.name} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    assert result.stdout.strip()


def test_a_quick_or_partial_run_never_overwrites_the_readme_figures() -> None:
    """Figures from a smoke run, or from part of the scripts, would mix loads again: refused."""
    before = (ROOT / "README.md").read_text(encoding="utf-8")
    for flags in (["--quick"], ["--only", "core"]):
        result = subprocess.run(
            [sys.executable, str(RUN_ALL), *flags, "--write-readme"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 2
        assert "does not write README.md" in result.stderr
        assert "===" not in result.stderr, "nothing was run"
    assert (ROOT / "README.md").read_text(encoding="utf-8") == before


def test_the_readme_has_the_one_figures_block_run_all_replaces() -> None:
    """`run_all.py --write-readme` finds exactly one pair of markers, around the table it writes."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    replaced = run_all.replace_block(text, "NEW")
    assert _block(replaced) == "NEW"
    assert _outside_block(replaced) == _outside_block(text)
    assert _block(text).count("| measure | result |") == 1
    with pytest.raises(SystemExit):
        run_all.replace_block(text.replace(run_all.END, ""), "NEW")


def test_every_row_of_the_table_comes_from_a_script_run_all_runs() -> None:
    """No figure is left to a script the command skips, and every script it runs has rows."""
    assert {source for source, _, _ in run_all.ROWS if source} == set(FIGURES)
    assert set(run_all.BUILDERS) == set(run_all.MINUTES) == set(FIGURES)
