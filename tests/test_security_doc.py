"""docs/security.md stays true: every test it cites exists, every protection cites one, each limit is real."""

from __future__ import annotations

import ast
import base64
import gc
import re
from pathlib import Path

from secretkit import Secret
from secretkit._redact import MIN_LENGTH, REPLACEMENT, redact, remember

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "security.md"
# A pytest node id in backticks: `tests/path/file.py::test_name` (or ::Class::test_name).
NODE = re.compile(r"`(tests/[\w/]+\.py)((?:::\w+)+)`")
VALUE = "sk-limit-demo-2f9c41e7"


def section(text: str, title: str) -> str:
    """The text under the level-2 heading ``title``, up to the next level-2 heading."""
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def defined(path: Path, names: list[str]) -> bool:
    """Whether ``path`` defines the function (or class, then method) that ``names`` spell out."""
    scope: list[ast.stmt] = ast.parse(path.read_text()).body
    for i, name in enumerate(names):
        found = [
            node
            for node in scope
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == name
        ]
        if not found:
            return False
        if i < len(names) - 1:
            if not isinstance(found[0], ast.ClassDef):
                return False
            scope = found[0].body
    return True


def test_every_cited_test_exists() -> None:
    """Every test node id in docs/security.md and SECURITY.md names a test that is in the suite."""
    cited = [
        (path, ids) for page in (PAGE, ROOT / "SECURITY.md") for path, ids in NODE.findall(page.read_text())
    ]
    assert len(cited) > 30
    missing = [
        f"{path}{ids}"
        for path, ids in cited
        if not (ROOT / path).is_file() or not defined(ROOT / path, ids.split("::")[1:])
    ]
    assert missing == []


def test_every_protection_cites_a_test() -> None:
    """Each row of the tables under "What secretkit protects against" names at least one test."""
    protects = section(PAGE.read_text(), "What secretkit protects against")
    rows = [
        line
        for line in protects.splitlines()
        if line.startswith("| ") and not line.startswith("| Protection |") and not line.startswith("| ---")
    ]
    assert len(rows) > 20
    assert [row[:80] for row in rows if not NODE.search(row)] == []


def test_the_stated_masking_minimum_is_the_codes() -> None:
    """The masking minimum the page states is `secretkit._redact.MIN_LENGTH`."""
    stated = re.search(
        r"shorter than (\d+) characters \(`secretkit\._redact\.MIN_LENGTH`\)", PAGE.read_text()
    )
    assert stated is not None
    assert int(stated.group(1)) == MIN_LENGTH


def test_the_page_is_in_the_site_navigation() -> None:
    """docs/security.md is reachable from the documentation site's navigation."""
    assert re.search(r"^\s*- [^:]+: security\.md$", (ROOT / "mkdocs.yml").read_text(), re.M)


# -- the limits are real: each stated "does not protect" holds ---------------------------------


def test_limit_a_format_template_with_attribute_access_reaches_the_value() -> None:
    """`"{0._value}".format(secret)` gives the value, while `"{0}".format(secret)` is masked."""
    secret = Secret("API_KEY", VALUE, register=False)
    # templates held in variables, as a template from users or configuration would be
    hostile, plain = "{0._value}", "{0}"
    reached = hostile.format(secret) == VALUE
    masked = VALUE not in plain.format(secret)
    assert (reached, masked) == (True, True)


def test_limit_code_in_the_process_reaches_the_value() -> None:
    """`object.__getattribute__` and `gc.get_referents` reach the value: Python has no private memory."""
    secret = Secret("API_KEY", VALUE, register=False)
    by_attribute = object.__getattribute__(secret, "_value") == VALUE
    by_gc = any(ref is secret.reveal() for ref in gc.get_referents(secret))
    assert (by_attribute, by_gc) == (True, True)


def test_limit_encoded_forms_are_not_masked() -> None:
    """Masking finds a registered value as written, but not its base64 or hex form."""
    remember(VALUE)
    as_base64 = base64.b64encode(VALUE.encode()).decode()
    as_hex = VALUE.encode().hex()
    masked_as_written = redact(f"key={VALUE}") == f"key={REPLACEMENT}"
    assert (masked_as_written, redact(as_base64) == as_base64, redact(as_hex) == as_hex) == (True, True, True)
