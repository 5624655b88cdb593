"""Run pydantic-settings' own test suite with ``BaseSettings`` swapped for ``SecretkitSettings``.

``SecretkitSettings`` promises to be ``BaseSettings`` plus secrets. This script measures that
promise: it downloads the sdist of a pydantic-settings release from PyPI, runs the ``tests/``
in it twice (unchanged, then with the swap) against that release, and lists the tests that
fail only with the swap, grouped by where they fail. It exits 1 when a test outside the
allowed lists below fails only with the swap, for any release it ran.

    python compat/pydantic_settings_suite.py                            # the installed release
    python compat/pydantic_settings_suite.py --version newest --version oldest
    python compat/pydantic_settings_suite.py --version 2.10.1 --cache /tmp/psc

``--version`` takes ``installed``, ``newest`` (the newest release on PyPI), ``oldest`` (the
newest patch of the lower bound in pyproject.toml) or a release number, and may be given
several times; CI runs all three names. A release other than the installed one runs in a
virtualenv of its own under ``--cache``, with secretkit installed from this checkout.
Output is test ids, exception types and source locations only: no test output, no
assertion text, so no value a test used is printed.
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import xml.etree.ElementTree as ElementTree
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# Tests whose ValidationError input is a secret by secretkit's rule, which they read back:
# a ``.env`` entry named ``dbx_token`` refused by ``extra='forbid'`` is masked, as log
# redaction masks a variable whose name marks a secret (docs/settings.md, Validation errors).
SECRET_INPUT: frozenset[str] = frozenset(
    {
        "tests/test_settings.py::test_dotenv_extra_forbid_similar_complex_fields",
        "tests/test_settings.py::test_dotenv_extra_forbid_similar_union_complex_fields",
    }
)

# Tests that check the class is pydantic_settings.main.BaseSettings itself: pydantic's error
# for a field named like a BaseSettings method quotes the class the method is found on.
NAMES_THE_CLASS: frozenset[str] = frozenset(
    {
        "tests/test_settings.py::test_protected_namespace_defaults",
    }
)
ALLOWED = SECRET_INPUT | NAMES_THE_CLASS

# What a release's suite needs beyond pydantic-settings and secretkit (the cloud SDKs are left
# out: their modules fail to import in both runs, and the rest still run).
_SUITE_NEEDS = ["pytest", "pytest-mock", "pytest-examples", "pyyaml"]
# Suites of releases before this one predate pytest 9's deprecations (their filterwarnings=error
# turns those into failures in both runs), and their docs examples, which fail in both runs
# against today's pydantic, crash pytest's traceback printer on Python 3.11 (an INTERNALERROR
# that ends the run): they run with pytest<9 and without the docs examples.
_CURRENT_SUITE_FROM = (2, 11)

# Where a failure is attributed: the deepest frame in one of these packages, else the test file.
_OWN_CODE = re.compile(r'File "([^"]*/(?:secretkit|pydantic_settings)/[^"]+)", line (\d+)')
_TEST_LINE = re.compile(r"^(tests/[\w/]+\.py):(\d+): ", re.MULTILINE)
_EXC_TYPE = re.compile(r"^E\s+([A-Za-z_][\w.]*(?:Error|Exception|Warning|Failed|Exit))\b", re.MULTILINE)
_MASK = "**********"
_SDIST = re.compile(r"pydantic_settings-(\d+(?:\.\d+)*)\.tar\.gz")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--version",
        dest="versions",
        action="append",
        help="installed (default), newest, oldest, or a release number; may be repeated",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "secretkit-compat",
        help="where sdists, suites and virtualenvs are kept (default: %(default)s)",
    )
    parser.add_argument("-k", dest="keyword", help="only tests matching this pytest -k expression")
    args = parser.parse_args(argv)

    installed = importlib.metadata.version("pydantic-settings")
    releases: dict[str, list[str]] = {}
    for name in args.versions or ["installed"]:
        releases.setdefault(_resolve(name, installed, args.cache), []).append(name)
    failed = 0
    for version, names in releases.items():
        started = time.monotonic()
        python = sys.executable if version == installed else _virtualenv(version, args.cache)
        print(f"\n== pydantic-settings {version} ({', '.join(names)})", flush=True)
        failed += _measure(version, python, args.cache, args.keyword)
        print(f"  {time.monotonic() - started:.0f} s in all")
    return 1 if failed else 0


def _measure(version: str, python: str, cache: Path, keyword: str | None) -> int:
    """Run one release's suite both ways and print what fails only with the swap; 1 if not allowed."""
    suite = _fetch_suite(version, cache)
    started = time.monotonic()
    if _old_suite(version):
        keyword = f"({keyword}) and not test_docs_examples" if keyword else "not test_docs_examples"
    plain = _run(suite, python, swap=False, keyword=keyword)
    plain_seconds = time.monotonic() - started
    started = time.monotonic()
    swapped = _run(suite, python, swap=True, keyword=keyword)
    swapped_seconds = time.monotonic() - started

    for label, results, seconds in (
        ("BaseSettings", plain, plain_seconds),
        ("SecretkitSettings", swapped, swapped_seconds),
    ):
        counts = collections.Counter(outcome for outcome, _ in results.values())
        shown = ", ".join(f"{counts[o]} {o}" for o in ("passed", "failed", "error", "skipped") if counts[o])
        print(f"  {label:<18} {len(results)} tests: {shown} ({seconds:.0f} s)")
    if not plain:
        print("  error: the suite ran no test (see the pytest command above)")
        return 1

    # A test that passed unchanged and did not pass with the swap, including one that did not run
    # at all (its module failed to import, or the run stopped).
    new = {
        test: swapped.get(test, ("missing", "not run with SecretkitSettings"))[1]
        for test, (outcome, _) in plain.items()
        if outcome == "passed" and swapped.get(test, ("missing", ""))[0] not in ("passed", "skipped")
    }
    unexpected = {test: detail for test, detail in new.items() if test not in ALLOWED}
    secret = [test for test in new if test in SECRET_INPUT]
    named = [test for test in new if test in NAMES_THE_CLASS]
    print(
        f"  new failures: {len(new)} = {len(named)} names BaseSettings + {len(secret)} secret input"
        f" (both allowed) + {len(unexpected)} other"
    )

    groups: dict[str, list[str]] = collections.defaultdict(list)
    for test, detail in unexpected.items():
        groups[_cause(detail)].append(test)
    for cause, tests in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
        print(f"\n  {len(tests)} x {cause}")
        for test in sorted(tests):
            print(f"      {test}")
    return 1 if unexpected else 0


def _resolve(name: str, installed: str, cache: Path) -> str:
    """The release a ``--version`` name means."""
    if name == "installed":
        return installed
    if name == "newest":
        return _download("pydantic-settings", cache)
    if name == "oldest":
        # The lower bound of the extra, as users get it: its newest patch release.
        extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
        lower = re.compile(r"pydantic-settings>=(\d+\.\d+)\S*")
        bound = next(m[1] for spec in extras["pydantic"] if (m := lower.fullmatch(spec)))
        return _download(f"pydantic-settings~={bound}.0", cache)
    if not re.fullmatch(r"\d+(\.\d+)*", name):
        raise SystemExit(f"--version {name!r}: expected installed, newest, oldest or a release number")
    return name


def _download(requirement: str, cache: Path) -> str:
    """Download the newest sdist that meets ``requirement`` into ``cache``; its version."""
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as staging:
        _pip(sys.executable, "download", "--no-deps", "--no-binary", ":all:", requirement, "--dest", staging)
        (sdist,) = Path(staging).glob("pydantic_settings-*.tar.gz")
        match = _SDIST.fullmatch(sdist.name)
        if match is None:
            raise SystemExit(f"unexpected sdist name {sdist.name!r} for {requirement!r}")
        target = cache / sdist.name
        if not target.exists():
            shutil.move(sdist, target)
        return match[1]


def _virtualenv(version: str, cache: Path) -> str:
    """A virtualenv with this release, secretkit from this checkout and the suite's needs; its python.

    Kept in ``cache`` between runs; the install runs every time (a no-op when nothing changed),
    so secretkit is always this checkout, wherever it is.
    """
    root = cache / f"venv-{version}"
    python = root / "bin" / "python"
    if not python.exists():
        shutil.rmtree(root, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)  # noqa: S603 - our own interpreter
    needs = list(_SUITE_NEEDS)
    if _old_suite(version):
        needs[needs.index("pytest")] = "pytest<9"
    _pip(str(python), "install", "-e", f"{REPO}[pydantic]", f"pydantic-settings=={version}", *needs)
    return str(python)


def _old_suite(version: str) -> bool:
    return tuple(int(part) for part in version.split(".")[:2]) < _CURRENT_SUITE_FROM


def _pip(python: str, *args: str) -> None:
    subprocess.run(  # noqa: S603 - pip, with a version from PyPI or the user
        [python, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"], check=True
    )


def _fetch_suite(version: str, cache: Path) -> Path:
    """The ``tests/`` and ``docs/`` of the sdist, with its pyproject.toml (pytest settings), unpacked once."""
    root = cache / f"pydantic_settings-{version}"
    if (root / "tests").is_dir():
        return root
    sdist = cache / f"pydantic_settings-{version}.tar.gz"
    if not sdist.is_file():
        _download(f"pydantic-settings=={version}", cache)
    staging = cache / f".unpack-{version}"
    with tarfile.open(sdist) as archive:
        top = f"pydantic_settings-{version}/"
        # The tests, the docs they run the examples of, and the pytest settings: the package
        # itself stays out, so the installed one is tested.
        keep = tuple(top + name for name in ("tests/", "docs/", "pyproject.toml", "README.md"))
        wanted = [m for m in archive.getmembers() if m.name.startswith(keep)]
        archive.extractall(staging, members=wanted, filter="data")
    (staging / f"pydantic_settings-{version}").rename(root)
    staging.rmdir()
    return root


def _run(suite: Path, python: str, *, swap: bool, keyword: str | None) -> dict[str, tuple[str, str]]:
    """Each test's outcome (passed/failed/error/skipped) and, when it did not pass, its traceback."""
    report = suite / ("swapped.xml" if swap else "plain.xml")
    report.unlink(missing_ok=True)
    command = [python, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"]
    command += ["--junitxml", str(report), "-o", "junit_logging=no", "-o", "junit_family=xunit1"]
    # A module that fails to import (a test dependency missing here) fails in both runs; the rest still run.
    command += ["--continue-on-collection-errors"]
    # pytest-asyncio, if installed, warns at start-up about a setting their suite does not make, and
    # their filterwarnings = error turns that into an internal error; the suite has no async tests.
    command += ["-p", "no:asyncio"]
    if keyword:
        command += ["-k", keyword]
    env = dict(os.environ)
    # A clean environment for the suite: variables secretkit or pydantic-settings read are the test's.
    for name in list(env):
        if name.startswith(("SECRETKIT_", "PYDANTIC_SETTINGS_", "VAULT_", "AWS_", "AZURE_", "GOOGLE_")):
            del env[name]
    if swap:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
        command += ["-p", "_swap_plugin"]
    subprocess.run(  # noqa: S603 - pytest, on the suite this script unpacked
        command, cwd=suite, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    results: dict[str, tuple[str, str]] = {}
    if not report.is_file():
        print(f"  pytest wrote no report: {' '.join(command)}")
        return results
    for case in ElementTree.parse(report).getroot().iter("testcase"):  # noqa: S314 - pytest's own report
        file = case.get("file", "")
        module = file.removesuffix(".py").replace("/", ".")
        inner = case.get("classname", "")[len(module) + 1 :]
        test = "::".join(filter(None, [file, inner, case.get("name")]))
        if swap:
            # Parametrized over classes, a test's id names the class: the same test, either way.
            test = test.replace("SecretkitSettings", "BaseSettings")
        outcome, detail = "passed", ""
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, detail = ("failed" if child.tag == "failure" else "error"), child.text or ""
            elif child.tag == "skipped":
                outcome = "skipped"
        results[test] = (outcome, detail)
    return results


def _cause(detail: str) -> str:
    """A value-free label for a failure: the exception type and where it was raised."""
    if detail == "not run with SecretkitSettings":
        return detail
    types = _EXC_TYPE.findall(detail)
    kind = types[-1] if types else "failure"
    frames = _OWN_CODE.findall(detail)
    if frames:
        path, line = frames[-1]
        package = "secretkit" if "/secretkit/" in path else "pydantic_settings"
        where = f"{package}/{path.rsplit('/' + package + '/', 1)[-1]}:{line}"
    else:
        tests = _TEST_LINE.findall(detail)
        where = f"{tests[-1][0]}:{tests[-1][1]}" if tests else "?"
    masked = " (the failure shows a masked value)" if _MASK in detail else ""
    return f"{kind} at {where}{masked}"


if __name__ == "__main__":
    sys.exit(main())
