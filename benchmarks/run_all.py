"""Run every benchmark the README's figures come from, in one sitting, and write the figures table.

    python benchmarks/run_all.py                  # the table to stdout, each script's report to stderr
    python benchmarks/run_all.py --write-readme   # replace the block between README.md's figure markers
    python benchmarks/run_all.py --quick          # a smoke run of every script: not figures

Figures measured under different loads cannot be compared, so one command measures them all,
one process per script and one script at a time, and writes under the table the machine
(CPU, cores, memory, Python) and its load average at the start and at the end, with the date.
Run it on a quiet machine; a full run takes about 15 minutes (see ``MINUTES``).

Each script writes its figures with ``--json PATH``; its printed report is passed through to
stderr (and to ``--log``). ``--results DIR`` keeps the JSON files and ``run.json`` (the machine,
the loads, each script's exit status); ``--from-results DIR`` writes the table again from them
without measuring. The pydantic-settings row is not a timing and comes from
``compat/pydantic_settings_suite.py``: it is carried over from the README as it stands.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
README = ROOT / "README.md"
BEGIN = (
    "<!-- figures:begin (written by `python benchmarks/run_all.py --write-readme`; do not edit by hand) -->"
)
END = "<!-- figures:end -->"

#: Rows whose result is not measured by a benchmark here, kept from the README as they are.
CARRIED = ("pydantic-settings' own suite",)


@dataclass(frozen=True)
class Benchmark:
    name: str
    script: str
    args: tuple[str, ...] = ()


BENCHMARKS = (
    Benchmark("core", "bench_core.py"),
    # One by one is what the cold-start and settings rows compare prefetch against.
    Benchmark("coldstart", "bench_coldstart.py", ("--sequential",)),
    # The table reports the faults; the 3-minute soak is a leak check, not a figure.
    Benchmark("faults", "bench_faults.py", ("--part", "faults")),
    Benchmark("redact", "bench_redact.py"),
    Benchmark("aws", "bench_aws.py"),
    Benchmark("vault", "bench_vault.py"),
    Benchmark("gcp", "bench_gcp.py"),
    Benchmark("azure", "bench_azure.py"),
    Benchmark("sops", "bench_sops.py"),
    Benchmark("rotation", "bench_rotation.py"),
)

#: Minutes a full run of each script takes, estimated from its own settings and its quick run
#: on 2 cores: the fixed-length parts dominate (20 faults of 2 s + 10 s + recovery, up to 60 s
#: each; 4 rotation scenarios of 60 s; 600 one-by-one fetches at 50 ms).
MINUTES = {
    "core": 0.75,
    "coldstart": 1.75,
    "faults": 5.5,
    "redact": 0.75,
    "aws": 0.5,
    "vault": 0.5,
    "gcp": 0.25,
    "azure": 0.25,
    "sops": 0.25,
    "rotation": 4.25,
}

# -- the table ------------------------------------------------------------------------------------

Results = dict[str, dict[str, Any]]
Row = tuple[str, str]


def signed(value: float, digits: int = 1) -> str:
    """``+2.6``, or a negative number with a true minus sign (U+2212), as the README writes it."""
    text = f"{value:+.{digits}f}"
    return text.replace("-", "\u2212")


def core_rows(core: dict[str, Any]) -> dict[str, Row]:
    hot = core["hot_path"]
    env = hot["os.environ[name]"]["ns"]
    remote = hot["get_secret(reference) from a remote backend"]
    variable = hot["get_secret(name): a variable"]
    holding = hot["get_secret(name): a variable holding a reference"]
    window = core["refresh_window"]
    waited = window["max_ms"] >= window["backend_s"] * 1000 / 2
    imported = core["import"]
    first = core["first_read_us"]
    return {
        "reference": (
            f"cached `get_secret(reference).reveal()` vs `os.environ[name]` (bound {remote['bound']:.1f}x)",
            f"{remote['vs_environ']:.2f}x ({remote['ns']:.0f} ns vs {env:.0f} ns)",
        ),
        "name": (
            f"cached `get_secret(name)` of a variable, read live (bound {variable['bound']:.1f}x) / "
            f"of a variable holding a reference (bound {holding['bound']:.1f}x)",
            f"{variable['vs_environ']:.2f}x / {holding['vs_environ']:.2f}x",
        ),
        "ttlcache": (
            "a `cachetools.TTLCache` behind a `threading.Lock` vs `os.environ[name]`",
            f"{hot['cachetools.TTLCache + threading.Lock']['vs_environ']:.2f}x",
        ),
        "live": (
            "`LiveSecret.reveal()` vs `os.environ[name]`",
            f"{hot['LiveSecret.reveal() (a live handle)']['vs_environ']:.2f}x",
        ),
        "cold readers": (
            f"backend calls from {core['cold_readers']['threads']} threads reading one cold key",
            f"{core['cold_readers']['secretkit_calls']} "
            f"(a hand-rolled TTLCache + Lock: {core['cold_readers']['diy_calls']})",
        ),
        "refresh": (
            f"reads through refresh-ahead windows, backend taking {window['backend_s'] * 1000:.0f} ms",
            f"median {window['median_us']:.1f} µs, p99 {window['p99_us']:.1f} µs, "
            f"max {window['max_ms']:.2f} ms: {'a read waited' if waited else 'no read waited'}",
        ),
        "import": (
            "`import secretkit`",
            f"{imported['secretkit_ms']:.0f} ms, of which the standard-library modules it uses take "
            f"{imported['stdlib_ms']:.0f} ms; "
            + (
                f"imported: {', '.join(imported['heavy_modules'])}"
                if imported["heavy_modules"]
                else "no cloud SDK, no pydantic"
            ),
        ),
        "first read": (
            "the store's own cost of a first read, with a backend that answers at once: all of it "
            "(a text / a JSON value) / the handoff to the backend's deadline lane",
            f"{first['remote, on a lane, text value']:.0f} µs / "
            f"{first['remote, on a lane, JSON value']:.0f} µs / {core['lane_handoff_us']:.0f} µs",
        ),
    }


FAULT_NAMES = {"close_after": "cut"}


def faults_row(faults: dict[str, Any]) -> Row:
    rows = faults["rows"]
    kinds = list(dict.fromkeys(FAULT_NAMES.get(row["fault"], row["fault"]) for row in rows))
    return (
        f"reads of held keys during a {faults['hold_s']:g} s fault ({', '.join(kinds)}) "
        "on AWS, Vault, GCP, Azure",
        f"{sum(row['failed'] for row in rows)} failed within `max_stale`; "
        f"worst {max(row['worst_ms'] for row in rows):.1f} ms",
    )


def coldstart_rows(cold: dict[str, Any]) -> dict[str, Row]:
    every = min((row for row in cold["rows"] if row["backend"] == "all four"), key=lambda row: row["secrets"])
    latency = cold["latency_ms"]
    settings = cold["settings"]

    def ms(value: float | None) -> str:
        return "not measured" if value is None else f"{value:,.0f} ms"

    return {
        "coldstart": (
            f"cold start, {every['secrets']} secrets over AWS, Vault, GCP and Azure at {latency:g} ms "
            "latency: one by one / `prefetch`",
            f"{ms(every.get('one_by_one_ms'))} / {ms(every['prefetch_ms'])}",
        ),
        "settings": (
            f"`SecretkitSettings()` with {settings['fields']} remote fields at {latency:g} ms: "
            "one by one / secretkit",
            f"{ms(settings['one_by_one_ms'])} / {ms(settings['secretkit_ms'])}",
        ),
    }


def redact_row(redact: dict[str, Any]) -> Row:
    row = max(redact["rows"], key=lambda row: row["values"])
    return (
        f"log redaction with {row['values']:,} values registered: per-line overhead / "
        "a new value + one log line",
        f"{row['per_line_ratio']:.2f}x / {row['new_value_and_line_us']:.0f} µs",
    )


def aws_rows(aws: dict[str, Any]) -> dict[str, Row]:
    cached = {row["label"].split()[0].split(".")[0]: row["x_secretkit"] for row in aws["cached_read"]}
    readers = {label: sum(calls.values()) for label, calls in aws["cold_readers"].items()}
    cache_ops = " + ".join(f"`{op}`" for op in sorted(aws["cold_readers"]["SecretCache"]))
    per_hour = {kind: sum(calls.values()) for kind, calls in aws["requests_per_hour"].items()}
    cold = aws["cold_fetch"]
    return {
        "aws cached": (
            "AWS cached read vs Powertools `parameters.get_secret` / `SecretCache` hits",
            f"{cached['Powertools']:.1f}x / {cached['SecretCache']:.0f}x faster",
        ),
        "aws readers": (
            f"AWS requests from {aws['threads']} cold readers: secretkit / Powertools / `SecretCache`",
            f"{readers['secretkit']} / {readers['Powertools SecretsProvider']} / {readers['SecretCache']} "
            f"({cache_ops})",
        ),
        "aws per hour": (
            "AWS requests per hour, 20 secrets, 5-minute TTL, with / without batching",
            f"{per_hour['batching']} / {per_hour['no_batching']}",
        ),
        "aws cold": (
            "cold fetch over the raw SDK call: AWS (boto3), the call made on a lane thread with a deadline",
            f"{signed(cold['overhead_pct'])} % (of a {cold['raw_us'] / 1000:.1f} ms call)",
        ),
    }


def vault_row(vault: dict[str, Any]) -> Row:
    return (
        "cold fetch over the raw SDK call: Vault (hvac `read_secret_version`)",
        f"{signed(vault['overhead_pct'])} % ({signed(vault['overhead_vs_trust_env_false_pct'])} % over hvac "
        "with `trust_env=False`)",
    )


def overhead_row(cloud: str, call: str, timings: dict[str, float], raw: str, backend: str, store: str) -> Row:
    base = timings[raw]
    return (
        f"cold fetch over the raw SDK call: {cloud} (`{call}`, {base / 1000:.2f} ms on loopback)",
        f"{signed((timings[store] / base - 1) * 100, 0)} % ({signed(timings[store] - base, 0)} µs; "
        f"the backend alone {signed((timings[backend] / base - 1) * 100)} %)",
    )


def gcp_row(gcp: dict[str, Any]) -> Row:
    return overhead_row(
        "GCP",
        "access_secret_version",
        gcp["cold_us"],
        gcp["baseline"],
        "GcpSecretManagerBackend.fetch",
        "SecretStore.get, first read",
    )


def azure_row(azure: dict[str, Any]) -> Row:
    return overhead_row(
        "Azure",
        "SecretClient.get_secret",
        azure["miss_us"],
        azure["miss_baseline"],
        "AzureKeyVaultBackend.fetch",
        "SecretStore.get, cache miss",
    )


def sops_row(sops: dict[str, Any]) -> Row:
    age, extract, calls = sops["cold_ms"]["age"], sops["sops_extract_ms"], sops["key_service_calls"]["age"]
    return (
        f"SOPS {sops['values']}-value file, cold read in-process (age) vs `sops decrypt --extract`",
        f"{age:.1f} ms vs {extract:.0f} ms ({extract / age:.0f}x); {calls} key-service "
        f"call{'' if calls == 1 else 's'} for all {sops['values']} fields",
    )


def rotation_rows(rotation: dict[str, Any]) -> dict[str, Row]:
    scenarios = rotation["scenarios"]
    engine = scenarios["AWS SM single user, SQLAlchemy engine"]
    pool = scenarios["AWS SM single user, psycopg pool"]
    bao = scenarios["OpenBao dynamic users, SQLAlchemy engine"]
    peer = engine["peer"]
    if peer is None:
        wrapper = "AWS's Advanced Python Wrapper: not run (`--peer PYTHON`)"
    else:
        wrapper = (
            f"AWS's Advanced Python Wrapper: {peer['failed'] / max(engine['rotations'], 1):.0f} per rotation"
        )
    low, high = rotation["interval_s"]
    lease, max_lease = rotation["lease_s"]
    return {
        "rotation": (
            f"failed queries, {rotation['threads']} threads, a rotation every "
            f"{low:g}\N{EN DASH}{high:g} s for {rotation['duration_s']:g} s, real PostgreSQL: "
            "SQLAlchemy / psycopg pool on secretkit vs password in the URL",
            f"{engine['secretkit']['failed']:,} / {pool['secretkit']['failed']:,} vs "
            f"{engine['baseline_failed_after_first']:,} / {pool['baseline_failed_after_first']:,} "
            f"(AWS single user); {wrapper}",
        ),
        "openbao": (
            f"failed queries through OpenBao dynamic users ({lease} s leases, {max_lease} s max): "
            "secretkit engine vs first user in the URL",
            f"{bao['secretkit']['failed']:,} vs {bao['baseline']['failed']:,}",
        ),
    }


def each(name: str, build: Callable[[dict[str, Any]], Row]) -> Callable[[dict[str, Any]], dict[str, Row]]:
    return lambda results: {name: build(results)}


#: Each benchmark's rows, by name.
BUILDERS: dict[str, Callable[[dict[str, Any]], dict[str, Row]]] = {
    "core": core_rows,
    "faults": each("faults", faults_row),
    "coldstart": coldstart_rows,
    "redact": each("redact", redact_row),
    "aws": aws_rows,
    "vault": each("vault", vault_row),
    "gcp": each("gcp", gcp_row),
    "azure": each("azure", azure_row),
    "sops": each("sops", sops_row),
    "rotation": rotation_rows,
}

#: The table in the README's order: (benchmark, row, the measure shown when it did not run).
#: A row of no benchmark is carried over from the README.
ROWS: list[tuple[str, str, str]] = [
    ("core", "reference", "cached `get_secret(reference).reveal()` vs `os.environ[name]`"),
    ("core", "name", "cached `get_secret(name)` of a variable / of a variable holding a reference"),
    ("core", "ttlcache", "a `cachetools.TTLCache` behind a `threading.Lock` vs `os.environ[name]`"),
    ("core", "live", "`LiveSecret.reveal()` vs `os.environ[name]`"),
    ("core", "cold readers", "backend calls from 32 threads reading one cold key"),
    ("core", "refresh", "reads through refresh-ahead windows"),
    ("core", "import", "`import secretkit`"),
    ("faults", "faults", "reads of held keys during a fault on AWS, Vault, GCP, Azure"),
    ("coldstart", "coldstart", "cold start over AWS, Vault, GCP and Azure: one by one / `prefetch`"),
    ("coldstart", "settings", "`SecretkitSettings()` with 20 remote fields: one by one / secretkit"),
    ("redact", "redact", "log redaction: per-line overhead / a new value + one log line"),
    ("", CARRIED[0], CARRIED[0]),
    ("aws", "aws cached", "AWS cached read vs Powertools `parameters.get_secret` / `SecretCache` hits"),
    ("aws", "aws readers", "AWS requests from 32 cold readers: secretkit / Powertools / `SecretCache`"),
    ("aws", "aws per hour", "AWS requests per hour, 20 secrets, 5-minute TTL, with / without batching"),
    ("aws", "aws cold", "cold fetch over the raw SDK call: AWS (boto3)"),
    ("vault", "vault", "cold fetch over the raw SDK call: Vault (hvac `read_secret_version`)"),
    ("gcp", "gcp", "cold fetch over the raw SDK call: GCP (`access_secret_version`)"),
    ("azure", "azure", "cold fetch over the raw SDK call: Azure (`SecretClient.get_secret`)"),
    ("core", "first read", "the store's own cost of a first read / the handoff to the deadline lane"),
    ("sops", "sops", "SOPS file, cold read in-process (age) vs `sops decrypt --extract`"),
    (
        "rotation",
        "rotation",
        "failed queries through rotations, real PostgreSQL: secretkit vs password in the URL",
    ),
    (
        "rotation",
        "openbao",
        "failed queries through OpenBao dynamic users: secretkit vs first user in the URL",
    ),
]


def carried_rows(block: str) -> dict[str, str]:
    """The README's table lines for the rows no benchmark here measures, by their prefix."""
    kept: dict[str, str] = {}
    for line in block.splitlines():
        for prefix in CARRIED:
            if line.startswith(f"| {prefix}"):
                kept[prefix] = line
    return kept


def built_rows(results: Results, missing: dict[str, str]) -> dict[str, dict[str, Row]]:
    """Each benchmark's rows; a benchmark whose results lack a figure goes to ``missing``."""
    rows: dict[str, dict[str, Row]] = {}
    for name, figures in results.items():
        try:
            rows[name] = BUILDERS[name](figures)
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as exc:
            missing[name] = f"not measured: its results lack {type(exc).__name__} {exc}"
    return rows


def table(results: Results, missing: dict[str, str], carried: dict[str, str]) -> list[str]:
    rows = built_rows(results, missing)
    lines = ["| measure | result |", "| --- | --- |"]
    for source, row, fallback in ROWS:
        if not source:
            lines.append(carried.get(row, f"| {fallback} | see `compat/pydantic_settings_suite.py` |"))
        elif source in rows:
            measure, result = rows[source][row]
            lines.append(f"| {measure} | {result} |")
        else:
            lines.append(f"| {fallback} | {missing.get(source, 'not measured in this run')} |")
    return lines


# -- the machine ----------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib() -> float | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        return None


def load() -> list[float]:
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def source_version() -> str:
    """secretkit's version and the commit measured (``+ changes`` when the tree differs from it)."""
    try:
        version = importlib.metadata.version("secretkit")
    except importlib.metadata.PackageNotFoundError:
        version = "?"
    git = shutil.which("git")
    if git is None:
        return version
    head = subprocess.run([git, "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode != 0:
        return version
    dirty = subprocess.run(
        [git, "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return f"{version} at commit {head.stdout.strip()}{' + changes' if dirty else ''}"


def machine() -> dict[str, Any]:
    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = cores
    return {
        "cpu": cpu_model(),
        "cores": cores,
        "usable_cores": usable,
        "memory_gib": memory_gib(),
        "system": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "secretkit": source_version(),
    }


def footer(run: dict[str, Any]) -> str:
    box = run["machine"]
    cores = f"{box['cores']} cores" + (
        f" ({box['usable_cores']} usable)" if box["usable_cores"] != box["cores"] else ""
    )
    memory = f", {box['memory_gib']:.1f} GiB memory" if box["memory_gib"] else ""

    minutes = run["minutes"]
    took = f"{minutes:.0f} minutes" if minutes >= 1.5 else f"{minutes * 60:.0f} seconds"

    def loads(values: list[float]) -> str:
        return " / ".join(f"{v:.2f}" for v in values) or "unknown"

    text = (
        f"Measured {run['date']} in {took} on {box['cpu']}, {cores}{memory}, "
        f"{box['system']}, {box['python']}, secretkit {box['secretkit']}. Load average (1 / 5 / 15 min): "
        f"{loads(run['load_start'])} at the start, {loads(run['load_end'])} at the end. "
        "The pydantic-settings row is not a timing: it comes from `compat/pydantic_settings_suite.py`."
    )
    if run["quick"]:
        text += " **A `--quick` smoke run: these are not figures.**"
    return wrap(text)


def wrap(text: str) -> str:
    """Lines of the README's width; a break inside a code span renders as its space."""
    return textwrap.fill(text, width=90, break_long_words=False, break_on_hyphens=False)


def render(results: Results, missing: dict[str, str], run: dict[str, Any], carried: dict[str, str]) -> str:
    intro = (
        "Measured in one run of `python benchmarks/run_all.py` (one process per "
        "`benchmarks/bench_*.py` script, one script at a time): medians, ratios against a "
        "baseline measured in the same run. The machine, its load and the date are under the table."
    )
    return "\n".join([wrap(intro), "", *table(results, missing, carried), "", footer(run)])


def replace_block(text: str, block: str) -> str:
    """``text`` with what lies between the figure markers replaced by ``block``."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise SystemExit(f"README.md needs exactly one {BEGIN!r} followed by one {END!r}")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{block}\n\n{END}{tail}"


def current_block(text: str) -> str:
    if BEGIN in text and END in text:
        return text.split(BEGIN, 1)[1].split(END, 1)[0]
    return text


# -- running --------------------------------------------------------------------------------------


def run_one(bench: Benchmark, quick: bool, out: Path, timeout: float, log: TextIO | None) -> int:
    """Run one script, passing its report through to stderr (and ``log``); its exit status."""
    shown = [f"benchmarks/{bench.script}", *bench.args, *(["--quick"] if quick else [])]
    command = [sys.executable, str(HERE / bench.script), *shown[1:], "--json", str(out)]
    banner = f"\n=== python {' '.join(shown)}\n"
    for stream in (sys.stderr, log):
        if stream is not None:
            stream.write(banner)
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},  # the report shows as it is printed
    )
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            for stream in (sys.stderr, log):
                if stream is not None:
                    stream.write(line)
                    stream.flush()
        return process.wait()
    finally:
        watchdog.cancel()


def measure(args: argparse.Namespace, chosen: list[Benchmark], results_dir: Path) -> dict[str, Any]:
    run: dict[str, Any] = {
        "quick": args.quick,
        "machine": machine(),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_start": load(),
        "scripts": {},
    }
    expected = "quick" if args.quick else f"about {sum(MINUTES[bench.name] for bench in chosen):.0f} minutes"
    print(
        f"running {len(chosen)} benchmark scripts ({expected}); "
        f"load average at the start: {run['load_start']} on {run['machine']['cores']} cores",
        file=sys.stderr,
    )
    if run["load_start"] and run["load_start"][0] > 0.25 * max(run["machine"]["usable_cores"], 1):
        print("warning: the machine is not quiet; the load average goes under the table", file=sys.stderr)
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        log = stack.enter_context(open(args.log, "w", encoding="utf-8")) if args.log else None
        for bench in chosen:
            if bench.name == "rotation" and args.peer:
                bench = Benchmark(bench.name, bench.script, (*bench.args, "--peer", args.peer))
            out = results_dir / f"{bench.name}.json"
            out.unlink(missing_ok=True)
            began = time.monotonic()
            status = run_one(bench, args.quick, out, args.timeout, log)
            run["scripts"][bench.name] = {
                "command": [bench.script, *bench.args],
                "exit": status,
                "seconds": round(time.monotonic() - began, 1),
                "load_after": load(),
                "results": out.exists(),
            }
    run["minutes"] = (time.monotonic() - started) / 60
    run["load_end"] = load()
    (results_dir / "run.json").write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    return run


def collect(run: dict[str, Any], results_dir: Path) -> tuple[Results, dict[str, str]]:
    results: Results = {}
    missing: dict[str, str] = {}
    for name, script in run["scripts"].items():
        path = results_dir / f"{name}.json"
        if path.exists():
            results[name] = json.loads(path.read_text(encoding="utf-8"))
            if script["exit"] != 0:
                note = f"note: {script['command'][0]} exited {script['exit']} (a target it checks was missed)"
                print(note, file=sys.stderr)
        else:
            missing[name] = f"not measured: `{script['command'][0]}` failed (exit {script['exit']})"
    return results, missing


def main(argv: list[str] | None = None) -> int:
    names = [bench.name for bench in BENCHMARKS]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of every script (not figures)")
    parser.add_argument("--only", action="append", choices=names, help="run only this script (repeatable)")
    parser.add_argument("--write-readme", action="store_true", help="replace the figures block of --readme")
    parser.add_argument("--readme", type=Path, default=README, help="the README to read and write")
    parser.add_argument("--output", type=Path, help="write the table here rather than to stdout")
    parser.add_argument("--results", type=Path, help="keep each script's JSON and run.json in this directory")
    parser.add_argument("--from-results", type=Path, metavar="DIR", help="write the table from a kept run")
    parser.add_argument("--log", type=Path, help="also write the scripts' reports to this file")
    parser.add_argument("--peer", help="a Python with aws-advanced-python-wrapper, for bench_rotation.py")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds one script may take")
    args = parser.parse_args(argv)
    if args.write_readme and (args.quick or args.only) and args.readme.resolve() == README:
        parser.error("a quick or partial run does not write README.md (use --readme PATH for a copy)")

    chosen = [bench for bench in BENCHMARKS if not args.only or bench.name in args.only]
    if args.from_results is not None:
        results_dir = args.from_results
        run = json.loads((results_dir / "run.json").read_text(encoding="utf-8"))
        if (
            args.write_readme
            and args.readme.resolve() == README
            and (run["quick"] or set(run["scripts"]) != set(names))
        ):
            parser.error("that run was quick or partial: it does not write README.md")
    else:
        results_dir = args.results or Path(tempfile.mkdtemp(prefix="secretkit-bench-"))
        results_dir.mkdir(parents=True, exist_ok=True)
        run = measure(args, chosen, results_dir)
    try:
        results, missing = collect(run, results_dir)
    finally:
        if args.results is None and args.from_results is None:
            shutil.rmtree(results_dir, ignore_errors=True)

    readme_text = args.readme.read_text(encoding="utf-8")
    block = render(results, missing, run, carried_rows(current_block(readme_text)))
    if args.write_readme and not missing:
        args.readme.write_text(replace_block(readme_text, block), encoding="utf-8")
        print(f"wrote the figures into {args.readme}", file=sys.stderr)
    elif args.write_readme:
        print(f"{args.readme} left as it was: {', '.join(sorted(missing))} did not finish", file=sys.stderr)
    if args.output is not None:
        args.output.write_text(block + "\n", encoding="utf-8")
    elif not args.write_readme:
        print(block)
    if missing:
        print(f"failed: {', '.join(sorted(missing))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
