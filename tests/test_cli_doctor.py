"""``secretkit doctor``: backends configured, installed, reachable; which source wins; never a value."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from servers.moto_server import MotoServer
from servers.openbao_server import OpenBaoServer
from test_cli import API_KEY, SECRETS, CliResult, blocker, clean_env, closed_port_url, run_cli, vault_env

TOKEN = "hvs.doctor-token-never-shown-42"


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    (work / ".env").write_text(f"API_KEY={API_KEY}\nSHARED=from-dotenv-value\n")
    return work


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(tmp_path / "home")


@pytest.fixture(scope="module")
def bao() -> Iterator[OpenBaoServer]:
    with OpenBaoServer() as server:
        yield server


def doctor_json(
    *args: str, env: dict[str, str], cwd: Path, secrets: list[str] | None = None
) -> tuple[CliResult, Any]:
    result = run_cli(
        "doctor", "--json", "--timeout", "2", *args, env=env, cwd=cwd, secrets=secrets or SECRETS
    )
    result.assert_no_secret()
    assert result.out.strip().startswith("{"), result.describe()
    return result, json.loads(result.out)


def backend(data: Any, scheme: str) -> Any:
    (found,) = [b for b in data["backends"] if b["scheme"] == scheme]
    return found


def test_a_clean_environment_has_no_problems(workdir: Path, env: dict[str, str]) -> None:
    """With nothing configured, doctor lists the chain and the extras, and exits 0."""
    result = run_cli("doctor", env=env, cwd=workdir, secrets=SECRETS)
    assert result.code == 0, result.describe()
    result.assert_no_secret()
    assert "1. env" in result.out and "2. dotenv" in result.out and "3. file" in result.out
    assert f"{workdir}/.env (present)" in result.out
    assert "no problems found" in result.out
    for extra in ("aws", "vault", "gcp", "azure", "pydantic"):
        assert f"  {extra} " in result.out


def test_the_first_backend_that_has_a_name_wins(workdir: Path, env: dict[str, str]) -> None:
    """For a name set in the environment and in .env, doctor shows both have it and the environment wins."""
    env = {**env, "SHARED": "from-env-value"}
    result, data = doctor_json(
        "SHARED", "API_KEY", env=env, cwd=workdir, secrets=[*SECRETS, "from-env-value"]
    )
    assert "from-dotenv-value" not in result.out
    assert result.code == 0, result.describe()
    shared, api_key = data["names"]
    assert shared["winner"] == "env"
    assert [s["found"] for s in shared["sources"]] == [True, True, False]
    assert (shared["status"], shared["source"]) == ("ok", "env")
    assert api_key["winner"] == "dotenv"


def test_a_reference_is_shown_with_where_it_resolves(
    workdir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """A name holding a reference shows the reference (a pointer, not a value) and where it resolves."""
    (tmp_path / "db").write_text("file-secret-value-x9")
    env = {**env, "DB_PASSWORD": f"file://{tmp_path}/db"}
    result = run_cli(
        "doctor", "DB_PASSWORD", env=env, cwd=workdir, secrets=[*SECRETS, "file-secret-value-x9"]
    )
    assert result.code == 0, result.describe()
    result.assert_no_secret()
    assert f"a reference to file://{tmp_path}/db" in result.out
    assert "<- wins" in result.out
    assert "resolves: ok from file" in result.out


def test_a_name_that_does_not_resolve_is_a_problem(workdir: Path, env: dict[str, str]) -> None:
    """A requested name no backend has makes doctor exit 1 and list it as a problem."""
    result = run_cli("doctor", "NOWHERE", env=env, cwd=workdir)
    assert result.code == 1, result.describe()
    assert "NOWHERE: secret 'NOWHERE' not found" in result.out


def test_a_variable_holding_a_mistyped_reference_is_a_problem_named_without_its_value(
    workdir: Path, env: dict[str, str]
) -> None:
    """A mistyped scheme in the environment or ./.env is a problem naming the variable and the scheme meant.

    ``aws-sn://``, ``AWS-SM://``, ``aws_sm://``, ``aws-sm:/``, ``Vualt://``. Neither the value
    nor the scheme as written is shown; a well-formed reference, another protocol's URL and
    a value with ":/" in it are no problem.
    """
    path = "prod/doctor-typo-path-81#password"
    (workdir / ".env").write_text(
        f"API_KEY={API_KEY}\nDOTENV_TOKEN=Vualt://{path}\nDB_USER=aws-sn://from-dotenv\n"
    )
    env = {
        **env,
        "DB_USER": f"aws-sn://{path}",  # the environment wins over ./.env, as in the chain
        "DB_PASSWORD": f"AWS-SM://{path}",
        "API_TOKEN": f"aws_sm://{path}",
        "SIGNING_KEY": f"aws-sm:/{path}",
        "DATABASE_URL": "postgres://app:url-pw-never-shown-5c@db/app",
        "FINE_SECRET": f"file://{workdir}/absent",
        "NOTE": "note:/tmp/x",
    }
    result, data = doctor_json(
        env=env, cwd=workdir, secrets=[*SECRETS, "doctor-typo-path-81", "url-pw-never-shown-5c"]
    )
    assert result.code == 1, result.describe()
    for written in ("aws-sn", "AWS-SM", "aws_sm", "Vualt"):
        assert written not in result.out and written not in result.err
    assert data["mistyped_references"] == [
        {"name": "API_TOKEN", "meant": "aws-sm", "mistake": "scheme", "where": "environment"},
        {"name": "DB_PASSWORD", "meant": "aws-sm", "mistake": "scheme", "where": "environment"},
        {"name": "DB_USER", "meant": "aws-sm", "mistake": "scheme", "where": "environment"},
        {"name": "DOTENV_TOKEN", "meant": "vault", "mistake": "scheme", "where": "./.env"},
        {"name": "SIGNING_KEY", "meant": "aws-sm", "mistake": "slash", "where": "environment"},
    ]
    problems = "\n".join(data["problems"])
    assert "DB_PASSWORD: the scheme of its reference is mistyped (did you mean aws-sm://?)" in problems
    assert (
        "DOTENV_TOKEN in ./.env: the scheme of its reference is mistyped (did you mean vault://?)" in problems
    )
    assert "SIGNING_KEY: its reference to aws-sm:// has one slash (write aws-sm://...)" in problems
    assert not any(name in problems for name in ("DATABASE_URL", "NOTE"))
    text = run_cli("doctor", env=env, cwd=workdir, secrets=[*SECRETS, "doctor-typo-path-81"])
    assert text.code == 1, text.describe()
    text.assert_no_secret()
    assert "  - API_TOKEN: the scheme of its reference is mistyped (did you mean aws-sm://?)" in text.out


def test_a_malformed_env_file_is_a_problem_not_a_crash(workdir: Path, env: dict[str, str]) -> None:
    """A ./.env that cannot be parsed is listed as a problem; the rest of the report is still given."""
    (workdir / ".env").write_text("not a KEY=VALUE line '\n")
    result, data = doctor_json(env=env, cwd=workdir)
    assert result.code == 1, result.describe()
    assert any(".env' line 1" in problem for problem in data["problems"])
    assert [item["scheme"] for item in data["chain"]] == ["env", "dotenv", "file"]


def test_a_reachable_vault_is_reported_healthy(
    bao: OpenBaoServer, workdir: Path, env: dict[str, str]
) -> None:
    """With VAULT_ADDR at a real OpenBao server, doctor reports it reachable, active and unsealed."""
    result, data = doctor_json(env=vault_env(env, bao.url), cwd=workdir)
    assert result.code == 0, result.describe()
    vault = backend(data, "vault")
    assert vault["reachable"] == {
        "target": f"{bao.url}/v1/sys/health",
        "ok": True,
        "detail": "active, unsealed",
    }
    assert "VAULT_TOKEN (set)" in vault["configured"]


def test_an_unreachable_vault_is_a_problem(workdir: Path, env: dict[str, str]) -> None:
    """VAULT_ADDR at a closed port is reported unreachable (connection refused) and doctor exits 1."""
    url = closed_port_url()
    env = {**env, "VAULT_ADDR": url, "VAULT_TOKEN": TOKEN, "DB_PASSWORD": "vault://secret/app#password"}
    result, data = doctor_json(env=env, cwd=workdir, secrets=[*SECRETS, TOKEN])
    assert result.code == 1, result.describe()
    vault = backend(data, "vault")
    assert vault["reachable"]["ok"] is False
    assert vault["reachable"]["detail"] == "connection refused"
    assert vault["referenced_by"] == ["DB_PASSWORD"]
    assert any("not reachable" in problem for problem in data["problems"])


def test_credentials_in_urls_are_not_shown(workdir: Path, env: dict[str, str]) -> None:
    """A VAULT_ADDR carrying user-info is shown without it; VAULT_TOKEN is shown as set, never its value."""
    port = closed_port_url().rsplit(":", 1)[1]
    env = {**env, "VAULT_ADDR": f"http://admin:url-password-77@127.0.0.1:{port}", "VAULT_TOKEN": TOKEN}
    result = run_cli("doctor", env=env, cwd=workdir, secrets=[*SECRETS, TOKEN, "url-password-77"])
    result.assert_no_secret()
    assert f"VAULT_ADDR=http://127.0.0.1:{port}" in result.out


def test_a_malformed_vault_address_is_a_problem_not_a_crash(workdir: Path, env: dict[str, str]) -> None:
    """VAULT_ADDR='http://tok@vault:82OO' (a port that is not a number) is reported as a problem: exit 1."""
    env = {**env, "VAULT_ADDR": "http://user-info-tok-61@vault:82OO", "VAULT_TOKEN": TOKEN}
    result, data = doctor_json(env=env, cwd=workdir, secrets=[*SECRETS, TOKEN, "user-info-tok-61"])
    assert result.code == 1, result.describe()
    assert "Traceback" not in result.err
    vault = backend(data, "vault")
    assert "VAULT_ADDR=(set, not a valid URL)" in vault["configured"]
    assert vault["reachable"]["ok"] is False
    assert "port is not a number" in vault["reachable"]["detail"]
    assert any(problem.startswith("vault: ") for problem in data["problems"])


def test_a_value_that_may_hold_a_credential_is_not_echoed(workdir: Path, env: dict[str, str]) -> None:
    """A shown setting that is no URL but holds an '@' (a pasted credential, say) is reported as set only."""
    env = {**env, "AWS_REGION": "http:/key-in-region-93@example.invalid"}
    result, data = doctor_json(env=env, cwd=workdir, secrets=[*SECRETS, "key-in-region-93"])
    assert result.code == 1, result.describe()
    reach = backend(data, "aws-sm")["reachable"]
    assert reach["ok"] is False and "not a region name" in reach["detail"]
    assert "AWS_REGION=(set, not shown: unexpected characters)" in backend(data, "aws-sm")["configured"]


@pytest.mark.parametrize("timeout", ["nan", "inf", "-1", "0", "soon"])
def test_a_timeout_that_is_not_a_positive_number_is_a_usage_error(
    timeout: str, workdir: Path, env: dict[str, str]
) -> None:
    """--timeout must be a number of seconds above 0 (nan and inf parse as floats, and used to crash)."""
    result = run_cli("doctor", "--timeout", timeout, env=env, cwd=workdir)
    assert result.code == 2, result.describe()
    assert "--timeout" in result.err and "Traceback" not in result.err


def test_a_reachable_aws_endpoint_is_reported(workdir: Path, env: dict[str, str]) -> None:
    """With AWS_ENDPOINT_URL at a real moto server, both AWS backends are reported reachable."""
    with MotoServer() as moto:
        result, data = doctor_json(env={**env, "AWS_ENDPOINT_URL": moto.url}, cwd=workdir)
    assert result.code == 0, result.describe()
    for scheme in ("aws-sm", "aws-ssm"):
        reach = backend(data, scheme)["reachable"]
        assert reach["ok"] is True and reach["target"] == moto.url


def test_a_missing_extra_is_reported_with_the_pip_command(
    tmp_path: Path, workdir: Path, env: dict[str, str]
) -> None:
    """With boto3 unimportable, doctor shows the aws extra missing; a reference to aws-sm:// is a problem."""
    env = {
        **env,
        "PYTHONPATH": str(blocker(tmp_path / "block", "boto3")),
        "DB_PASSWORD": "aws-sm://prod/db#password",
    }
    result, data = doctor_json(env=env, cwd=workdir)
    assert result.code == 1, result.describe()
    assert data["extras"]["aws"]["boto3"] is None
    assert data["extras"]["vault"]["hvac"]  # the others are still found
    assert backend(data, "aws-sm")["installed"] is False
    assert any('pip install "secretkit[aws]"' in problem for problem in data["problems"])
    text = run_cli("doctor", env=env, cwd=workdir)
    assert 'aws       not installed (pip install "secretkit[aws]")' in text.out, text.describe()


def test_every_extra_installed_here_is_reported_installed(workdir: Path, env: dict[str, str]) -> None:
    """This venv has every extra: doctor finds each one's modules from its metadata (PyYAML's is ``yaml``)."""
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    extras = set(pyproject["project"]["optional-dependencies"]) - {"all", "test"}
    result, data = doctor_json(env=env, cwd=workdir)
    assert result.code == 0, result.describe()
    assert extras <= set(data["extras"])
    missing = {extra: dists for extra, dists in data["extras"].items() if not all(dists.values())}
    assert missing == {}
    assert data["extras"]["otel"]["opentelemetry-api"] and data["extras"]["sops"]["pyyaml"]
    text = run_cli("doctor", env=env, cwd=workdir)
    assert "not installed" not in text.out and " missing" not in text.out, text.describe()


GCP_VERSIONS = ("", "_v1", "_v1beta1", "_v1beta2")


def fake_distributions(directory: Path) -> Path:
    """secretkit's metadata with more extras, first on the path: one names a distribution that is not
    installed, one a distribution whose module was deleted, one a distribution with no RECORD."""
    directory.mkdir(parents=True, exist_ok=True)
    requires = [
        'pyyaml>=6; extra == "sops"',
        'no-such-distribution-for-doctor>=1; extra == "fake"',
        'ghost-sdk>=1; extra == "ghost"',
        'Listed.SDK>=1; extra == "listed"',
    ]
    own = directory / "secretkit-0.0.0.dist-info"
    own.mkdir()
    (own / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: secretkit\nVersion: 0.0.0\n"
        + "".join(f"Requires-Dist: {r}\n" for r in requires)
    )
    ghost = directory / "ghost_sdk-1.0.dist-info"
    ghost.mkdir()
    (ghost / "METADATA").write_text("Metadata-Version: 2.1\nName: ghost-sdk\nVersion: 1.0\n")
    (ghost / "RECORD").write_text("ghost_sdk/__init__.py,,\nghost_sdk-1.0.dist-info/METADATA,,\n")
    # No RECORD, as some installers leave: its top_level.txt names a module that is there.
    listed = directory / "listed_sdk-2.0.dist-info"
    listed.mkdir()
    (listed / "METADATA").write_text("Metadata-Version: 2.1\nName: listed-sdk\nVersion: 2.0\n")
    (listed / "top_level.txt").write_text("listed_module\n")
    (directory / "listed_module.py").write_text("")
    return directory


def test_a_missing_distribution_is_still_reported_missing(
    tmp_path: Path, workdir: Path, env: dict[str, str]
) -> None:
    """Not installed, installed without its module, or its namespace package unimportable: each is missing."""
    path = os.pathsep.join(
        [
            str(fake_distributions(tmp_path / "dists")),
            # google-cloud-secret-manager adds its packages to the shared `google` namespace: the
            # namespace being importable does not make it installed.
            str(blocker(tmp_path / "block", *(f"google.cloud.secretmanager{v}" for v in GCP_VERSIONS))),
        ]
    )
    _, data = doctor_json(env={**env, "PYTHONPATH": path}, cwd=workdir)
    extras = data["extras"]
    assert extras["fake"] == {"no-such-distribution-for-doctor": None}
    assert extras["ghost"] == {"ghost-sdk": None}
    assert extras["listed"] == {"listed.sdk": "2.0"}  # found by the module its metadata names
    assert extras["sops"]["pyyaml"]  # the one that is there is still found
    assert extras["gcp"]["google-cloud-secret-manager"] is None
    text = run_cli("doctor", env={**env, "PYTHONPATH": path}, cwd=workdir)
    assert (
        'fake      not installed (pip install "secretkit[fake]"): no-such-distribution-for-doctor missing'
        in (text.out)
    ), text.describe()
    assert 'ghost     not installed (pip install "secretkit[ghost]"): ghost-sdk missing' in text.out


def test_doctor_imports_no_sdk(tmp_path: Path, workdir: Path, env: dict[str, str]) -> None:
    """doctor finds which extras are installed without importing a single SDK."""
    hook, report = tmp_path / "hook", tmp_path / "imported.txt"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import atexit, sys\n"
        "SDKS = ('boto3', 'botocore', 'hvac', 'grpc', 'google.cloud.secretmanager',\n"
        "        'azure.keyvault.secrets', 'azure.identity', 'pydantic', 'pydantic_settings')\n"
        "def dump():\n"
        f"    with open({str(report)!r}, 'w') as f:\n"
        "        f.write(' '.join(sorted(m for m in sys.modules if m in SDKS)))\n"
        "atexit.register(dump)\n"
    )
    result, data = doctor_json(env={**env, "PYTHONPATH": str(hook)}, cwd=workdir)
    assert result.code == 0, result.describe()
    assert data["extras"]["aws"]["boto3"] and data["extras"]["gcp"]["google-cloud-secret-manager"]
    assert report.read_text() == ""


PLUGIN = """
from secretkit import Fetched, SecretNotFound
from secretkit._backend_class import Probe, Setting


def _judge(status):
    return status == 200, f"acme answered {status}"


class AcmeBackend:
    scheme = "acme"
    settings = (Setting("ACME_URL", shown=True), Setting("ACME_TOKEN"))

    @classmethod
    def reachability(cls, env, refs):
        return Probe(url=env["ACME_URL"], path="/health", setting="ACME_URL", judge=_judge)

    def fetch(self, ref):
        raise SecretNotFound(ref.path)

    def close(self):
        pass
"""


def plugin_path(directory: Path) -> Path:
    """A directory that installs the ``acme`` backend through the entry-point group, as a wheel would."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "acme_backend.py").write_text(PLUGIN)
    info = directory / "acme_backend-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-backend\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[secretkit.backends]\nacme = acme_backend:AcmeBackend\n")
    return directory


def test_a_plugin_backend_brings_its_own_settings_and_probe(
    tmp_path: Path, workdir: Path, env: dict[str, str]
) -> None:
    """An entry-point backend declares its variables and probe: doctor shows and asks them unedited."""
    import http.server
    import threading

    asked: list[str] = []

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            asked.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    token = "acme-token-never-shown-31"
    env = {**env, "PYTHONPATH": str(plugin_path(tmp_path / "plugin")), "ACME_URL": url, "ACME_TOKEN": token}
    try:
        result, data = doctor_json(env=env, cwd=workdir, secrets=[*SECRETS, token])
    finally:
        server.shutdown()
        server.server_close()
    assert result.code == 0, result.describe()
    acme = backend(data, "acme")
    assert acme["configured"] == ["plugin (entry point)", f"ACME_URL={url}", "ACME_TOKEN (set)"]
    assert acme["reachable"] == {"target": f"{url}/health", "ok": True, "detail": "acme answered 200"}
    assert asked == ["/health"]
