"""The docs build, and every code block in them runs: a renamed function breaks the build, not the reader.

Every ```python block of docs/**/*.md and README.md (collected by pytest-examples):

- compiles, and each ``import``/``from ... import`` in it resolves to a real module and name;
- uses only names it binds, an earlier block of the same page binds (a page reads as one
  session), builtins, or the reader's own names listed for that page in ``READER_NAMES``
  (``stripe``, ``pool``: the application the page talks about);
- runs, page by page in a fresh interpreter, in a sandbox: an empty working directory, a
  fixed environment, and in-memory backends serving ``aws-sm``, ``aws-ssm``, ``vault``,
  ``gcp-sm`` and ``azure-kv`` with the secrets the pages name (``SEED``). A block that
  needs a real server, or uses a reader's name, is not run; each such block is named in
  ``NOT_RUN`` with the reason.

Every ```console/bash/sh block's ``secretkit ...`` command lines parse with the CLI's own
parser, so a renamed option or command fails here too.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_examples import CodeExample, find_examples

import secretkit

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]


def page_of(example: CodeExample) -> str:
    return example.path.relative_to(ROOT).as_posix()


EXAMPLES: list[CodeExample] = [e for e in find_examples(*PAGES) if e.prefix in ("py", "python")]

# -- what a page may use without defining it ---------------------------------------------------

_APP = "the reader's application code, which the page talks about"
READER_NAMES: dict[str, dict[str, str]] = {
    "README.md": {"stripe": _APP, "log": "the reader's logger", "pool": _APP, "AuthError": _APP},
    "docs/index.md": {"stripe": _APP},
    "docs/caching.md": {"pool": _APP, "stripe": _APP, "AuthError": _APP, "call_api": _APP},
    "docs/testing.md": {"my_app": _APP},
    "docs/settings.md": {"pool": _APP},
    "docs/backends/vault.md": {"connect": _APP, "pool": _APP},
    "docs/backends/aws.md": {"services": "the reader's list of service names"},
    "docs/writing-a-backend.md": {"onepassword_server": "the vendor's test server fixture, the reader's"},
}

# Blocks that are checked but not run, by page and a line that picks out one block.
_POSTGRES = (
    "connects to PostgreSQL at db.internal (tests/integrations/ run these calls against a real server)"
)
_PARTNER = "calls a partner's HTTPS API (tests/integrations/ run SecretAuth against a local server)"
_SOPS = "reads a SOPS-encrypted file with its age key (tests/sops/ run these reads on real files)"
NOT_RUN: dict[tuple[str, str], str] = {
    ("README.md", "stripe.api_key"): "uses the reader's stripe module and logger",
    ("README.md", "store.on_rotate"): "uses the reader's pool and AuthError",
    ("docs/index.md", "stripe.api_key"): "uses the reader's stripe module",
    ("docs/caching.md", "stripe.error"): "uses the reader's stripe module",
    ("docs/caching.md", "call_api("): "calls the reader's API client",
    ("docs/settings.md", "pool.reconnect"): "uses the reader's pool",
    ("docs/testing.md", "def test_charges"): "test functions for the reader's app, run by pytest there",
    ("docs/settings.md", "def test_settings"): "a test function, run by pytest with the fixture",
    ("docs/writing-a-backend.md", "import onepassword"): "needs the vendor's SDK, which is fictional",
    ("docs/writing-a-backend.md", "class TestOnePassword"): "a contract test class, run by pytest there",
    ("docs/operations.md", "./worker"): "starts the reader's worker program",
    ("docs/operations.md", "FileHandler"): "writes to /var/log/app, which a sandbox does not have",
    (
        "docs/operations.md",
        "OTLPSpanExporter",
    ): "exports to an OpenTelemetry collector (opentelemetry-exporter-otlp)",
    ("docs/integrations/databases.md", "pool_pre_ping"): _POSTGRES,
    ("docs/integrations/databases.md", "create_async_engine"): _POSTGRES,
    ("docs/integrations/databases.md", "connection_pool("): _POSTGRES,
    ("docs/integrations/databases.md", "await create_pool"): _POSTGRES,
    ("docs/integrations/http.md", "httpx.Client"): _PARTNER,
    ("docs/integrations/http.md", "requests.Session"): _PARTNER,
    (
        "docs/backends/vault.md",
        'database/creds/app?engine=generic")  #',
    ): "needs Vault's database secrets engine",
    ("docs/backends/vault.md", "connect(user="): "uses the reader's connect()",
    ("docs/backends/vault.md", "@secretkit.on_rotate(name)"): "needs Vault's database secrets engine",
    (
        "docs/backends/aws.md",
        "AWSPREVIOUS",
    ): "needs Secrets Manager's staging labels (tests/aws/ run them on moto)",
    ("docs/backends/aws.md", "for name in services"): "uses the reader's list of services",
    ("docs/backends/sops.md", "import secretkit"): _SOPS,
    ("docs/backends/sops.md", 'SopsBackend("config/secrets.enc.env")'): _SOPS,
    ("docs/backends/sops.md", 'decrypt_dotenv("secrets.enc.env")'): _SOPS,
}
# Imports of packages no extra installs: the reader picks them.
NOT_INSTALLED = {"opentelemetry.exporter.otlp": "the OTLP exporter is the reader's choice of exporter"}


def example_id(example: CodeExample) -> str:
    return f"{page_of(example)}:{example.start_line}"


def not_run_reason(example: CodeExample) -> str | None:
    page = page_of(example)
    for (listed_page, marker), reason in NOT_RUN.items():
        if listed_page == page and marker in example.source:
            return reason
    return None


def test_each_not_run_entry_names_exactly_one_block() -> None:
    """An entry that matches no block (the block was fixed or removed) or several is stale: say which."""
    stale = []
    for page, marker in NOT_RUN:
        matches = [e for e in EXAMPLES if page_of(e) == page and marker in e.source]
        if len(matches) != 1:
            stale.append((page, marker, len(matches)))
    assert stale == []


# -- static checks -----------------------------------------------------------------------------


def parse(example: CodeExample) -> ast.Module:
    # Snippets may `await` at top level, as they would in an async function or a REPL.
    tree = compile(
        example.source, example_id(example), "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    )
    assert isinstance(tree, ast.Module)
    return tree


def guarded_by_import_error(tree: ast.Module) -> set[int]:
    """Ids of imports inside ``try: ... except ImportError``: the block shows the SDK may be missing."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in {"ImportError", "ModuleNotFoundError"}
            for h in node.handlers
        ):
            for statement in node.body:
                guarded.update(id(n) for n in ast.walk(statement))
    return guarded


@pytest.mark.parametrize("example", EXAMPLES, ids=example_id)
def test_a_python_block_compiles_and_its_imports_resolve(example: CodeExample) -> None:
    """Every import names a module that exists and names in it; every ``secretkit.X`` exists."""
    tree = parse(example)
    guarded = guarded_by_import_error(tree)
    wrong = []
    for node in ast.walk(tree):
        if id(node) in guarded:
            continue
        if isinstance(node, ast.Import):
            modules = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            modules = [(node.module or "", alias.name) for alias in node.names]
        else:
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "secretkit"
            ):
                if not hasattr(secretkit, node.attr):
                    wrong.append(f"secretkit.{node.attr}")
            continue
        for module, name in modules:
            if any(module == m or module.startswith(m + ".") for m in NOT_INSTALLED):
                continue
            try:
                imported = importlib.import_module(module)
            except ImportError as exc:
                wrong.append(f"import {module}: {exc}")
                continue
            if name is not None and not hasattr(imported, name):
                try:
                    importlib.import_module(f"{module}.{name}")
                except ImportError:
                    wrong.append(f"from {module} import {name}")
    assert wrong == []


def bound_names(tree: ast.Module) -> set[str]:
    """Every name a block binds anywhere: assignments, defs, imports, arguments, loop targets."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def used_names(tree: ast.Module) -> set[str]:
    return {
        node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
    }


def blocks_by_page() -> dict[str, list[CodeExample]]:
    pages: dict[str, list[CodeExample]] = {}
    for example in EXAMPLES:
        pages.setdefault(page_of(example), []).append(example)
    return pages


@pytest.mark.parametrize("example", EXAMPLES, ids=example_id)
def test_a_python_block_uses_only_names_something_defines(example: CodeExample) -> None:
    """A name a block uses is bound by it, by an earlier block of its page, or listed as the reader's.

    This is what fails when a page shows ``database_login(...)`` without importing it.
    """
    page = page_of(example)
    earlier: set[str] = set()
    for block in blocks_by_page()[page]:
        if block is example:
            break
        earlier |= bound_names(parse(block))
    tree = parse(example)
    allowed = bound_names(tree) | earlier | set(dir(builtins)) | set(READER_NAMES.get(page, {}))
    assert sorted(used_names(tree) - allowed) == []


def test_reader_names_are_used() -> None:
    """Each name listed as the reader's is used on its page, so the list cannot hide a missing import."""
    unused = []
    for page, names in READER_NAMES.items():
        used = set().union(*(used_names(parse(e)) for e in blocks_by_page().get(page, [])))
        unused += [f"{page}: {name}" for name in names if name not in used]
    assert unused == []


# -- running them ------------------------------------------------------------------------------

# What the in-memory stand-ins for the remote stores hold: the secrets the pages name.
_DB = json.dumps(
    {"username": "app", "password": "db-pw-doc-1", "host": "db.internal", "port": 5432, "dbname": "app"}
)
SEED: dict[str, dict[str, str]] = {
    "aws-sm": {
        "prod/db": _DB,
        "prod/app/db": _DB,
        "prod/stripe": json.dumps({"api_key": "sk-doc-stripe", "webhook": "whsec-doc"}),
    },
    "aws-ssm": {"/prod/app/api_key": "ssm-doc-key"},
    "vault": {
        "secret/app/db": json.dumps({"username": "app", "password": "vault-doc-pw", "port": 5432}),
        "secret/app/github": json.dumps({"token": "ghp-doc"}),
        "secret/app/partner": json.dumps({"api_key": "partner-doc"}),
    },
    "gcp-sm": {
        "my-project/db-password": "gcp-doc-pw",
        "my-project/db-config": json.dumps({"password": "gcp-doc-pw2"}),
    },
    "azure-kv": {"my-vault/db-password": "azure-doc-pw"},
}
ENVIRONMENT = {
    "STRIPE_API_KEY": "sk-test-doc-env",
    "API_KEY": "api-key-doc-env",
    "DB_PASSWORD": "vault://secret/app/db#password",
    "APP_DATABASE_URL": "postgresql://app@db.internal/app",
    "APP_API_TOKEN": "token-doc-env",
    "LEGACY_API_KEY": "legacy-doc-env",
    "PARTNER_TOKEN": "partner-doc-env",
}
# Versions the pages ask for by number: the memory backend numbers each set from 1.
VERSIONS = {
    ("vault", "secret/app/db"): 3,
    ("vault", "secret/app/github"): 3,
    ("gcp-sm", "my-project/db-password"): 5,
}

_SANDBOX = """
import asyncio, ast, json, os, sys, traceback
os.chdir(sys.argv[1])
import secretkit
from secretkit.backends import DotenvBackend, EnvBackend, FileBackend, MemoryBackend

seed, versions, blocks = json.loads(sys.stdin.read())
remote = []
for scheme, secrets in seed.items():
    backend = MemoryBackend(scheme=scheme)
    for path, value in secrets.items():
        for _ in range(versions.get(scheme + " " + path, 1)):
            backend.set(path, value)
    remote.append(backend)
secretkit.configure(backends=[EnvBackend(), DotenvBackend(".env"), FileBackend()], reference_backends=remote)
namespace = {"__name__": "__doc_page__"}
failed = 0
for where, source in blocks:
    try:
        code = compile(source, where, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)
        if asyncio.iscoroutine(result):
            asyncio.run(result)
    except BaseException:
        failed += 1
        print("FAILED", where, file=sys.stderr)
        traceback.print_exc()
sys.exit(1 if failed else 0)
"""


def imports_only(example: CodeExample) -> str:
    """The top-level imports of a block that is not run, so later blocks of its page have those names."""
    imports = [node for node in parse(example).body if isinstance(node, (ast.Import, ast.ImportFrom))]
    return "\n".join(
        ast.unparse(node) for node in imports if not any(m in ast.unparse(node) for m in NOT_INSTALLED)
    )


def runnable_pages() -> Iterator[str]:
    for page, blocks in blocks_by_page().items():
        if any(not_run_reason(block) is None for block in blocks):
            yield page


@pytest.mark.parametrize("page", sorted(runnable_pages()))
def test_the_python_blocks_of_a_page_run(page: str, tmp_path: Path) -> None:
    """The page's blocks, bar those in NOT_RUN, run in order in one fresh interpreter, in the sandbox."""
    blocks = [
        (example_id(b), b.source if not_run_reason(b) is None else imports_only(b))
        for b in blocks_by_page()[page]
    ]
    versions = {f"{scheme} {path}": n for (scheme, path), n in VERSIONS.items()}
    home = tmp_path / "home"
    home.mkdir()
    # The AWS profiles the pages name, so building a backend with one succeeds; no credentials.
    (home / "aws-config").write_text(
        "[profile prod]\nregion = eu-west-1\n[profile deploy]\nregion = eu-west-1\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "PYTHONDONTWRITEBYTECODE": "1",
        **ENVIRONMENT,
    }
    result = subprocess.run(
        [sys.executable, "-c", _SANDBOX, str(tmp_path)],
        input=json.dumps([SEED, versions, blocks]),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-6000:]


# -- shell blocks ------------------------------------------------------------------------------


def shell_commands() -> Iterator[tuple[str, str]]:
    """``secretkit ...`` command lines of console/bash/sh blocks.

    In a block with ``$ `` prompts only the prompted lines are commands (the rest is their
    output); in a block without, every line is.
    """
    for page in PAGES:
        text = page.read_text()
        for match in re.finditer(r"^```(?:console|bash|sh)\n(.*?)^```", text, re.S | re.M):
            first = text.count("\n", 0, match.start()) + 2
            lines = match[1].splitlines()
            prompted = any(line.startswith("$ ") for line in lines)
            for offset, line in enumerate(lines):
                if prompted and not line.startswith("$ "):
                    continue
                command = line.removeprefix("$ ").strip()
                if command.startswith("secretkit "):
                    yield f"{page.relative_to(ROOT).as_posix()}:{first + offset}", command


SHELL = list(shell_commands())
# A synopsis line (`secretkit get NAME|REF [--reveal] [--json]`) is not a command to parse whole.
_SYNOPSIS = re.compile(r"\[|\.\.\.|\|")


@pytest.mark.parametrize(("where", "command"), SHELL, ids=[w for w, _ in SHELL])
def test_a_secretkit_command_in_the_docs_parses(where: str, command: str) -> None:
    """The command and its options exist: argparse accepts the line (nothing is run).

    For a synopsis line, the command and each ``--option`` it shows must exist.
    """
    from secretkit.cli._parser import build_parser

    parser = build_parser()
    words = shlex.split(command, comments=True)[1:]
    if _SYNOPSIS.search(command.split(" -- ")[0]):
        options = re.findall(r"--[a-z][a-z-]*", command.split(" -- ")[0])
        help_text = subprocess.run(
            [sys.executable, "-m", "secretkit", words[0], "--help"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert [option for option in options if option not in help_text] == []
        return
    parser.parse_args(words)


def test_shell_blocks_are_found() -> None:
    """The collector sees the CLI's examples (it would pass vacuously if it found none)."""
    assert len(SHELL) > 10


# -- the site ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_mkdocs_builds_strict(tmp_path: Path) -> None:
    """`mkdocs build --strict` succeeds: every page in the nav exists, links resolve, API docs render."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-6000:]
    assert (tmp_path / "site" / "index.html").exists()


def test_blocks_are_found() -> None:
    """Every page's python blocks are collected (a fence the collector missed would go unchecked)."""
    fences = sum(len(re.findall(r"^```python\n", page.read_text(), re.M)) for page in PAGES)
    assert len(EXAMPLES) == fences > 40
