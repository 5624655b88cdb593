"""What a registry and a new user get: an sdist and a wheel that build cleanly, say what they are, install."""

from __future__ import annotations

import ast
import email
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from dataclasses import dataclass
from email.message import Message
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# The build reads the tree, never writes into it: it runs on a copy without local state.
SKIP_IN_COPY = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", ".*_cache", "build", "dist", "site", ".coverage"
)
SDK_ROOTS = ("boto3", "botocore", "hvac", "google", "azure", "pydantic", "pydantic_settings", "grpc")


@dataclass(frozen=True)
class Built:
    output: str
    sdist: Path
    wheel: Path


def quiet_env() -> dict[str, str]:
    """The environment for the build and the clean venv, without settings that change their output."""
    env = dict(os.environ)
    # with this set, setuptools warns that byte-compiling is off: a fact about the machine, not the package
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.pop("PYTHONPATH", None)
    return env


def source_version() -> str:
    """`secretkit.__version__` as written in the source, read without importing it."""
    tree = ast.parse((ROOT / "src" / "secretkit" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__version__" for t in node.targets
        ):
            assert isinstance(node.value, ast.Constant)
            return str(node.value.value)
    raise AssertionError("src/secretkit/__init__.py defines no __version__")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tree = tmp_path_factory.mktemp("tree") / "secretkit"
    shutil.copytree(ROOT, tree, ignore=SKIP_IN_COPY)
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(out), str(tree)],
        capture_output=True,
        text=True,
        timeout=300,
        env=quiet_env(),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return Built(output, sdist, wheel)


def wheel_metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(zf.read(name))


@pytest.mark.slow
def test_the_build_prints_no_warning(built: Built) -> None:
    """Building the sdist and the wheel (the wheel from the sdist) prints no warning or deprecation."""
    noisy = [line for line in built.output.splitlines() if re.search(r"warn|deprecat", line, re.IGNORECASE)]
    assert noisy == []


@pytest.mark.slow
def test_twine_check_passes(built: Built) -> None:
    """`twine check --strict` accepts both distributions, long description included."""
    result = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(built.sdist), str(built.wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_wheel_holds_the_package_its_marker_and_no_tests(built: Built) -> None:
    """The wheel has every module of src/secretkit and py.typed, the licence, and nothing from tests/."""
    with zipfile.ZipFile(built.wheel) as zf:
        names = set(zf.namelist())
    package = ROOT / "src" / "secretkit"
    modules = {
        p.relative_to(package.parent).as_posix()
        for p in package.rglob("*.py")
        if "__pycache__" not in p.parts
    }
    assert modules - names == set()
    assert "secretkit/py.typed" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert [n for n in names if n.split("/")[0] not in {"secretkit", *_dist_info(names)}] == []
    assert [n for n in names if "conftest" in n or "/tests/" in f"/{n}"] == []


def _dist_info(names: set[str]) -> set[str]:
    return {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}


@pytest.mark.slow
def test_the_sdist_can_be_rebuilt_and_tested(built: Built) -> None:
    """The sdist carries the licence, the changelog, the typed marker and the whole test suite."""
    with tarfile.open(built.sdist) as tf:
        names = {n.split("/", 1)[1] for n in tf.getnames() if "/" in n}
    expected = {"LICENSE", "CHANGELOG.md", "pyproject.toml", "src/secretkit/py.typed", "tests/conftest.py"}
    assert expected - names == set()
    assert [n for n in names if "__pycache__" in n or n.endswith(".pyc")] == []


@pytest.mark.slow
def test_metadata_states_licence_version_and_supported_pythons(built: Built) -> None:
    """METADATA has the SPDX licence, the source's __version__, and a classifier per supported Python."""
    meta = wheel_metadata(built.wheel)
    assert meta["License-Expression"] == "MIT"
    assert meta["Version"] == source_version()
    classifiers = meta.get_all("Classifier") or []
    assert {"Typing :: Typed", "Topic :: Security"} <= set(classifiers)
    minors = sorted(
        int(m.group(1))
        for c in classifiers
        if (m := re.fullmatch(r"Programming Language :: Python :: 3\.(\d+)", c))
    )
    assert meta["Requires-Python"] == f">=3.{minors[0]}"
    assert minors == list(range(minors[0], minors[-1] + 1))


def test_every_classifier_is_one_the_registry_knows() -> None:
    """PyPI refuses an upload with an unknown classifier; every one in pyproject.toml is on its list."""
    from trove_classifiers import classifiers as known

    with (ROOT / "pyproject.toml").open("rb") as f:
        declared = tomllib.load(f)["project"]["classifiers"]
    assert [c for c in declared if c not in known] == []


@pytest.mark.slow
def test_the_wheel_installs_into_a_clean_venv_and_runs(built: Built, tmp_path: Path) -> None:
    """In a fresh venv with only the core dependency, `import secretkit` loads no SDK and the CLI runs."""
    venv = tmp_path / "venv"
    env = quiet_env()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120, env=env)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(built.wheel)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    probe = (
        "import importlib.metadata as md, json, sys; import secretkit, secretkit.backends; "
        f"print(json.dumps({{'file': secretkit.__file__, 'version': secretkit.__version__, "
        f"'dist': md.version('secretkit'), 'sdks': sorted(m for m in sys.modules "
        f"if m.split('.')[0] in {SDK_ROOTS!r})}}))"
    )
    # run outside the checkout, so the import can only come from the installed wheel
    result = subprocess.run(
        [str(python), "-c", probe], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seen = json.loads(result.stdout)
    assert Path(seen["file"]).is_relative_to(venv)
    assert seen["version"] == seen["dist"] == source_version()
    assert seen["sdks"] == []
    cli = subprocess.run(
        [str(venv / "bin" / "secretkit"), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert cli.returncode == 0, cli.stderr[-3000:]
    assert "usage:" in cli.stdout
    for command in ("get", "run", "check", "doctor"):
        assert command in cli.stdout


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    """.ci/run runs the README's whole-suite command exactly as a new user would type it."""
    readme = (ROOT / "README.md").read_text()
    commands = [
        line for line in readme.splitlines() if line.startswith("python3 -m venv") and "pytest" in line
    ]
    assert len(commands) == 1
    assert commands[0] in (ROOT / ".ci" / "run").read_text().splitlines()
