"""What a backend class says about itself before it is built: settings, probe, pending reference.

The CLI and the credential consumers ask the class (``secretkit._backend_class``) instead of
switching on its scheme, so a backend, built in or from an entry point, brings its own.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from secretkit import _registry
from secretkit._backend_class import Probe, Setting, pending_of, reachability_of, settings_of
from secretkit._refs import SecretRef
from secretkit.integrations import pending_reference
from test_cli import blocker
from test_cli_doctor import plugin_path

SDKS = ("boto3", "botocore", "hvac", "google", "grpc", "azure", "pyrage")


@pytest.fixture
def acme_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The ``acme`` backend of test_cli_doctor installed in this process through its entry point."""
    directory = plugin_path(tmp_path / "plugin")
    (directory / "acme_backend.py").write_text(
        (directory / "acme_backend.py").read_text()
        + "\n    @classmethod\n"
        + "    def pending_reference(cls, ref):\n"
        + "        return ref.replace(options={**ref.options, 'slot': 'next'})\n"
    )
    monkeypatch.syspath_prepend(str(directory))
    _registry._reset_for_tests()
    yield
    _registry._reset_for_tests()
    sys.modules.pop("acme_backend", None)


def test_a_plugin_backend_names_its_own_pending_reference(acme_installed: None) -> None:
    """``pending_reference`` asks the scheme's class: a plugin's rule applies with no edit to secretkit."""
    assert pending_reference("acme://db#password") == "acme://db#password?slot=next"


@pytest.mark.parametrize(
    ("name", "pending"),
    [
        ("aws-sm://prod/db", "aws-sm://prod/db?stage=AWSPENDING"),
        ("aws-ssm://prod/db", None),
        ("vault://database/creds/app?engine=generic", "vault://database/creds/app?engine=generic&lease=new"),
        ("gcp-sm://p/db", None),
        ("nosuchscheme://db", None),
    ],
)
def test_each_backend_class_says_its_pending_version(name: str, pending: str | None) -> None:
    """AWS Secrets Manager has a pending stage and a Vault lease a next one; the others have none."""
    assert pending_reference(name) == pending


def test_the_built_in_declarations_need_no_sdk(tmp_path: Path) -> None:
    """Every remote backend's settings, probe and pending rule are read with every SDK unimportable."""
    code = (
        "import sys\n"
        "from secretkit import _registry\n"
        "from secretkit._backend_class import pending_of, reachability_of, settings_of\n"
        "from secretkit._refs import SecretRef\n"
        "for scheme, spec in sorted(_registry.KNOWN_BACKENDS.items()):\n"
        "    cls = _registry.backend_class(scheme)\n"
        "    env = {'AWS_REGION': 'eu-west-1', 'VAULT_ADDR': 'http://127.0.0.1:1'}\n"
        "    probe = reachability_of(cls, env, [SecretRef.parse(f'{scheme}://my-vault/name')])\n"
        "    pending = pending_of(cls, SecretRef.parse(f'{scheme}://my-vault/name'))\n"
        "    print(scheme, len(settings_of(cls)), probe is not None and probe.url is not None, pending)\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {SDKS!r})\n"
        "assert not loaded, loaded\n"
    )
    env = {"PYTHONPATH": str(blocker(tmp_path / "block", *SDKS)), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    found = {line.split()[0]: line.split()[1:] for line in result.stdout.splitlines()}
    assert found["vault"] == ["8", "True", "None"]
    assert found["aws-sm"][:2] == ["13", "True"] and found["aws-sm"][2].endswith("stage=AWSPENDING")
    assert found["aws-ssm"] == ["13", "True", "None"]
    assert found["gcp-sm"] == ["3", "True", "None"]
    assert found["azure-kv"] == ["7", "True", "None"]
    assert found["env"] == ["0", "False", "None"]


class Declares:
    settings = (Setting("A", shown=True), "not a setting")
    reachability = staticmethod(lambda env, refs: "not a probe")
    pending_reference = staticmethod(lambda ref: "not a reference")


class DeclaresNothing:
    pass


def test_a_class_that_declares_something_else_gets_the_defaults() -> None:
    """Declarations of the wrong type are ignored rather than crash doctor or a credential consumer."""
    ref = SecretRef.parse("x://a/b")
    assert settings_of(Declares) == (Setting("A", shown=True),)
    assert reachability_of(Declares, {}, [ref]) is None
    assert pending_of(Declares, ref) is None
    assert settings_of(DeclaresNothing) == ()
    assert reachability_of(DeclaresNothing, {}, []) is None
    assert pending_of(DeclaresNothing, ref) is None
    assert Probe().judge(403) == (True, "HTTP 403")
