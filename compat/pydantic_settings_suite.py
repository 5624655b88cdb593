"""Run pydantic-settings' own test suite with ``BaseSettings`` swapped for ``SecretkitSettings``.

``SecretkitSettings`` promises to be ``BaseSettings`` plus secrets. This script measures that
promise: it downloads the sdist of a pydantic-settings release from PyPI, runs the ``tests/``
in it twice (unchanged, then with the swap) against the installed pydantic-settings, and
lists the tests that fail only with the swap, grouped by where they fail. It exits 1 when a
test outside ``MASKED_INPUT`` fails only with the swap.

    python compat/pydantic_settings_suite.py                 # the installed version
    python compat/pydantic_settings_suite.py --version 2.16.3 --cache /tmp/psc

The test of another version needs that version installed in the interpreter running this
script. Output is test ids, exception types and source locations only: no test output, no
assertion text, so no value a test used is printed.
"""

from __future__ import annotations

import argparse
import collections
import importlib.metadata
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

HERE = Path(__file__).resolve().parent

# Tests that read a raw input back out of a ValidationError (``input_value=...`` in its text,
# or ``"input"`` in ``.errors()``). SecretkitSettings masks every input on purpose, so these
# fail with it; docs/settings.md lists them too.
MASKED_INPUT: frozenset[str] = frozenset(
    {
        "tests/test_docs.py::test_docs_examples[docs/index.md:501-532]",
        "tests/test_settings.py::test_annotated",
        "tests/test_settings.py::test_annotated_list",
        "tests/test_settings.py::test_case_sensitive",
        "tests/test_settings.py::test_case_sensitive_from_args",
        "tests/test_settings.py::test_case_sensitive_no_nested_delimiter[None]",
        "tests/test_settings.py::test_case_sensitive_no_nested_delimiter[]",
        "tests/test_settings.py::test_dotenv_extra_forbid",
        "tests/test_settings.py::test_dotenv_extra_forbid_similar_complex_fields",
        "tests/test_settings.py::test_dotenv_extra_forbid_similar_union_complex_fields",
        "tests/test_settings.py::test_dotenv_with_alias_and_env_prefix",
        "tests/test_settings.py::test_env_file_config_case_sensitive",
        "tests/test_settings.py::test_env_file_with_env_prefix_invalid",
        "tests/test_settings.py::test_env_json_field",
        "tests/test_settings.py::test_env_json_field_dict",
        "tests/test_settings.py::test_env_parse_enums",
        "tests/test_settings.py::test_env_strict_coercion_json_decodes_to_str",
        "tests/test_settings.py::test_env_strict_coercion_non_json_value",
        "tests/test_settings.py::test_generic_basemodel",
        "tests/test_settings.py::test_generic_dataclass[dataclass0]",
        "tests/test_settings.py::test_generic_dataclass[dataclass1]",
        "tests/test_settings.py::test_nested_model_field_with_alias_case_sensitive",
        "tests/test_settings.py::test_secrets_missing",
        "tests/test_settings.py::test_sub_env_missing",
        "tests/test_settings.py::test_validation_alias_with_env_prefix",
        "tests/test_settings.py::test_validation_alias_with_env_prefix_and_env_prefix_target[alias]",
        "tests/test_settings.py::test_validation_alias_with_env_prefix_and_env_prefix_target[all]",
        "tests/test_source_cli.py::test_cli_enums",
        "tests/test_source_cli.py::test_cli_literals",
        "tests/test_source_cli.py::test_cli_union_dict_arg",
    }
)

# Tests that check the class is pydantic_settings.main.BaseSettings itself: pydantic's error
# for a field named like a BaseSettings method quotes the class the method is found on.
NAMES_THE_CLASS: frozenset[str] = frozenset(
    {
        "tests/test_settings.py::test_protected_namespace_defaults",
    }
)
ALLOWED = MASKED_INPUT | NAMES_THE_CLASS

# Where a failure is attributed: the deepest frame in one of these packages, else the test file.
_OWN_CODE = re.compile(r'File "([^"]*/(?:secretkit|pydantic_settings)/[^"]+)", line (\d+)')
_TEST_LINE = re.compile(r"^(tests/[\w/]+\.py):(\d+): ", re.MULTILINE)
_EXC_TYPE = re.compile(r"^E\s+([A-Za-z_][\w.]*(?:Error|Exception|Warning|Failed|Exit))\b", re.MULTILINE)
_MASK = "**********"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", help="pydantic-settings version (default: the installed one)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "secretkit-compat",
        help="where the sdist is downloaded and unpacked (default: %(default)s)",
    )
    parser.add_argument("-k", dest="keyword", help="only tests matching this pytest -k expression")
    parser.add_argument(
        "--unmasked",
        action="store_true",
        help="keep inputs in SecretkitSettings' validation errors, to check MASKED_INPUT: with it, "
        "no test of that list should fail (for diagnosis only; never in CI)",
    )
    args = parser.parse_args(argv)

    installed = importlib.metadata.version("pydantic-settings")
    version = args.version or installed
    if version != installed:
        print(f"note: testing the {version} suite against installed pydantic-settings {installed}")
    suite = _fetch_suite(version, args.cache)

    started = time.monotonic()
    plain = _run(suite, swap=False, keyword=args.keyword)
    plain_seconds = time.monotonic() - started
    started = time.monotonic()
    swapped = _run(suite, swap=True, keyword=args.keyword, unmasked=args.unmasked)
    swapped_seconds = time.monotonic() - started

    print(f"pydantic-settings {version} suite, installed {installed}")
    for label, results, seconds in (
        ("BaseSettings", plain, plain_seconds),
        ("SecretkitSettings", swapped, swapped_seconds),
    ):
        counts = collections.Counter(outcome for outcome, _ in results.values())
        shown = ", ".join(f"{counts[o]} {o}" for o in ("passed", "failed", "error", "skipped") if counts[o])
        print(f"  {label:<18} {len(results)} tests: {shown} ({seconds:.0f} s)")

    # A test that passed unchanged and did not pass with the swap, including one that did not run
    # at all (its module failed to import, or the run stopped).
    new = {
        test: swapped.get(test, ("missing", "not run with SecretkitSettings"))[1]
        for test, (outcome, _) in plain.items()
        if outcome == "passed" and swapped.get(test, ("missing", ""))[0] not in ("passed", "skipped")
    }
    # With inputs unmasked, a masked-input test that still fails fails for another reason.
    allowed = NAMES_THE_CLASS if args.unmasked else ALLOWED
    unexpected = {test: detail for test, detail in new.items() if test not in allowed}
    masked = [test for test in new if test in MASKED_INPUT and test in allowed]
    named = [test for test in new if test in NAMES_THE_CLASS]
    stale = sorted(test for test in allowed if swapped.get(test, ("missing", ""))[0] == "passed")
    print(
        f"  new failures: {len(new)} = {len(masked)} masked input + {len(named)} names BaseSettings"
        f" (both allowed) + {len(unexpected)} other"
    )

    groups: dict[str, list[str]] = collections.defaultdict(list)
    for test, detail in unexpected.items():
        groups[_cause(detail)].append(test)
    for cause, tests in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0])):
        print(f"\n{len(tests)} x {cause}")
        for test in sorted(tests):
            print(f"    {test}")
    if stale:
        print("\nallowed to fail but passing now (remove them from the lists):")
        for test in stale:
            print(f"    {test}")
    return 1 if unexpected else 0


def _fetch_suite(version: str, cache: Path) -> Path:
    """The ``tests/`` and ``docs/`` of the sdist, with its pyproject.toml (pytest settings), unpacked once."""
    root = cache / f"pydantic_settings-{version}"
    if (root / "tests").is_dir():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run(  # noqa: S603 - pip, with a version the user gave as an argument
        [
            sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
            "--no-binary", ":all:", f"pydantic-settings=={version}", "--dest", str(cache),
        ],
        check=True,
    )  # fmt: skip
    sdist = cache / f"pydantic_settings-{version}.tar.gz"
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


def _run(
    suite: Path, *, swap: bool, keyword: str | None, unmasked: bool = False
) -> dict[str, tuple[str, str]]:
    """Each test's outcome (passed/failed/error/skipped) and, when it did not pass, its traceback."""
    report = suite / ("swapped.xml" if swap else "plain.xml")
    command = [sys.executable, "-m", "pytest", "tests", "-q", "-p", "no:cacheprovider"]
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
        if unmasked:
            env["SECRETKIT_COMPAT_UNMASKED"] = "1"
    subprocess.run(  # noqa: S603 - pytest, on the suite this script unpacked
        command, cwd=suite, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False
    )
    results: dict[str, tuple[str, str]] = {}
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
