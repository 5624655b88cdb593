"""A malformed reference option is an invalid reference, not an outage, and is never echoed (issue 22, 17).

The attack: a reference whose option carries a planted value (a secret pasted in the wrong
place, or text chosen to land in logs) and is malformed for that option. Before, a garbage
``?region=`` reached botocore, came back as ``BackendUnavailable`` (so the store served stale
values and backed off as for an outage) and botocore's message quoted the value. Now every
backend's options go through one check: ``InvalidReference``, raised before any request (each
test counts the requests its real server receives) and showing nothing of the value, in the
error, its ``repr``, its cause chain or the logs.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hvac
import pytest

from secretkit import InvalidReference, SecretkitError, SecretNotFound, SecretRef, SecretStore
from secretkit.backends.aws import AwsSecretsManagerBackend
from secretkit.backends.aws_ssm import AwsParameterStoreBackend
from secretkit.backends.azure import AzureKeyVaultBackend
from secretkit.backends.gcp import GcpSecretManagerBackend
from secretkit.backends.vault import VaultBackend
from servers.aws_env import use_test_aws_env
from servers.azure_server import KeyVaultServer, StaticTokenCredential, free_port
from servers.gcp_server import GcpSecretManagerServer, make_client
from servers.moto_server import MotoServer, WireLog
from servers.openbao_server import OpenBaoServer

PLANTED = "sk-live-planted-4c9e1b77"
# Malformed for every option below (spaces, a slash, a terminal escape) and carrying the mark.
GARBAGE = f"{PLANTED} /\x1b[2J"


def _assert_unshown(err: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    """Nothing of the planted value in the message, the repr, any cause or context, or a log record."""
    chain: list[BaseException] = []
    seen: BaseException | None = err
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    for link in chain:
        assert PLANTED not in str(link)
        assert PLANTED not in repr(link)
    assert PLANTED not in caplog.text


def _refused(backend: Any, ref: SecretRef, caplog: pytest.LogCaptureFixture) -> None:
    """``ref`` is an InvalidReference, unshown, straight from the backend and through a store."""
    with pytest.raises(InvalidReference) as direct:
        backend.fetch(ref)
    _assert_unshown(direct.value, caplog)
    store = SecretStore([], reference_backends=[backend])
    for _ in range(2):  # again: not remembered as an outage to back off from
        with pytest.raises(InvalidReference) as through:
            store.get(str(ref))
        _assert_unshown(through.value, caplog)


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


# -- AWS Secrets Manager and Parameter Store, against moto --------------------------------------


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


@pytest.fixture
def aws_client(moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    use_test_aws_env(monkeypatch, tmp_path)
    return moto


AWS_CASES = [
    ("aws-sm", {"region": GARBAGE}),
    ("aws-sm", {"region": f"{PLANTED}-1"}),  # botocore would take it and fail as an outage
    ("aws-sm", {"stage": GARBAGE}),
    ("aws-sm", {"version": GARBAGE}),
    ("aws-sm", {"version": "short"}),  # botocore's ParamValidationError quotes the value
    ("aws-sm", {"versoin": GARBAGE}),
    ("aws-ssm", {"region": GARBAGE}),
    ("aws-ssm", {"label": GARBAGE}),
    ("aws-ssm", {"label": f"x:{PLANTED}"}),  # would change the name the request sends
    ("aws-ssm", {"version": f"{PLANTED}"}),
    ("aws-ssm", {"stage": GARBAGE}),
]


@pytest.mark.parametrize(("scheme", "options"), AWS_CASES)
def test_a_malformed_aws_option_is_refused_before_any_request_and_not_echoed(
    aws_client: MotoServer, scheme: str, options: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage in ?region=, ?stage=, ?version=, ?label= (or an unknown option) sends nothing to AWS."""
    cls = AwsSecretsManagerBackend if scheme == "aws-sm" else AwsParameterStoreBackend
    service = "secretsmanager" if scheme == "aws-sm" else "ssm"
    wire = WireLog()
    backend = cls(client=wire.attach(aws_client.client(service)))
    _refused(backend, SecretRef(scheme, "/prod/app/db", options=options), caplog)
    assert wire.total == 0
    # The same backend does send a well-formed reference: the count above could have moved.
    with pytest.raises(SecretNotFound):
        backend.fetch(SecretRef(scheme, f"/absent/{uuid.uuid4().hex}"))
    assert wire.total > 0


def test_a_garbage_configured_region_is_a_configuration_error_not_echoed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """AWS_DEFAULT_REGION holding garbage fails the backend's construction as misconfiguration, unquoted."""
    from secretkit import ConfigurationError

    use_test_aws_env(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_DEFAULT_REGION", GARBAGE)
    with pytest.raises(ConfigurationError) as info:
        AwsSecretsManagerBackend()
    _assert_unshown(info.value, caplog)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://user:{PLANTED}@[bad")
    with pytest.raises(ConfigurationError) as info:
        AwsSecretsManagerBackend()
    _assert_unshown(info.value, caplog)


# -- Vault / OpenBao ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bao() -> Iterator[OpenBaoServer]:
    with OpenBaoServer() as server:
        yield server


class _Requests:
    """Counts the HTTP responses an hvac client receives (requests' public response hook)."""

    def __init__(self, client: hvac.Client) -> None:
        self.count = 0
        client.session.hooks["response"].append(self._seen)

    def _seen(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self.count += 1


VAULT_CASES = [
    ("secret/app/db", {"version": GARBAGE}),
    ("secret/app/db", {"encoding": GARBAGE, "key": "password"}),
    ("secret/app/db", {"engine": GARBAGE}),
    ("secret/app/db", {"versoin": GARBAGE}),
    ("database/creds/app", {"engine": "generic", "method": GARBAGE}),
    ("database/creds/app", {"engine": "generic", "lease": GARBAGE}),
    ("database/creds/app", {"engine": "generic", "encoding": GARBAGE, "key": "password"}),
]


@pytest.mark.parametrize(("path", "options"), VAULT_CASES)
def test_a_malformed_vault_option_is_refused_before_any_request_and_not_echoed(
    bao: OpenBaoServer, path: str, options: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage in ?version=, ?encoding=, ?engine=, ?method=, ?lease= reaches no mount look-up or read."""
    client = bao.client()
    requests = _Requests(client)
    backend = VaultBackend(client=client)
    try:
        _refused(backend, SecretRef("vault", path, options=options), caplog)
        assert requests.count == 0
        with pytest.raises(SecretNotFound):
            backend.fetch(SecretRef("vault", f"secret/absent/{uuid.uuid4().hex}"))
        assert requests.count > 0
    finally:
        backend.close()


def test_a_missing_vault_key_is_not_found_without_naming_the_planted_key(
    bao: OpenBaoServer, caplog: pytest.LogCaptureFixture
) -> None:
    """?key=<planted> that the secret does not have is not found; the key asked for is not quoted."""
    path = f"app/keys-{uuid.uuid4().hex[:8]}"
    bao.client().secrets.kv.v2.create_or_update_secret(path=path, secret={"password": "x"})
    backend = VaultBackend(client=bao.client())
    try:
        with pytest.raises(SecretNotFound) as info:
            backend.fetch(SecretRef("vault", f"secret/{path}", options={"key": PLANTED}))
    finally:
        backend.close()
    _assert_unshown(info.value, caplog)


# -- GCP Secret Manager, against the local server -----------------------------------------------


@pytest.fixture(scope="module")
def gcp_server() -> Iterator[GcpSecretManagerServer]:
    with GcpSecretManagerServer() as server:
        yield server


@pytest.mark.parametrize("options", [{"version": GARBAGE}, {"version": f"{PLANTED}.1"}, {"versoin": GARBAGE}])
def test_a_malformed_gcp_option_is_refused_before_any_call_and_not_echoed(
    gcp_server: GcpSecretManagerServer, options: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """Garbage in ?version= reaches no RPC (nor a look-up of the default project's credentials)."""
    client = make_client(gcp_server.address)
    try:
        backend = GcpSecretManagerBackend(project="test-project", client=client)
        before = len(gcp_server.calls)
        _refused(backend, SecretRef("gcp-sm", "db-password", options=options), caplog)
        assert len(gcp_server.calls) == before
        with pytest.raises(SecretNotFound):
            backend.fetch(SecretRef("gcp-sm", f"absent-{uuid.uuid4().hex[:8]}"))
        assert len(gcp_server.calls) > before
    finally:
        client.transport.close()


# -- Azure Key Vault, against the local vault ---------------------------------------------------


@pytest.fixture(scope="module")
def kv_server() -> Iterator[KeyVaultServer]:
    with KeyVaultServer(free_port()) as server:
        yield server


@pytest.mark.parametrize(
    "options", [{"version": GARBAGE}, {"version": PLANTED}, {"version": ""}, {"versoin": GARBAGE}]
)
def test_a_malformed_azure_option_is_refused_before_any_request_and_not_echoed(
    kv_server: KeyVaultServer,
    options: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A ?version= that is not a Key Vault version id is never sent (it would go into the URL)."""
    monkeypatch.delenv("AZURE_KEYVAULT_URL", raising=False)
    sent: list[str] = []
    backend = AzureKeyVaultBackend(
        vault_url=kv_server.url,
        credential=StaticTokenCredential(),
        raw_request_hook=lambda request: sent.append(request.http_request.url),
        **kv_server.client_options(),
    )
    try:
        _refused(backend, SecretRef("azure-kv", "db-password", options=options), caplog)
        assert sent == []
        with pytest.raises(SecretNotFound):
            backend.fetch(SecretRef("azure-kv", f"absent-{uuid.uuid4().hex[:8]}"))
        assert sent != []
    finally:
        backend.close()


def test_every_backend_option_error_has_one_wording() -> None:
    """One checker words every refusal: the backend, the option, what it takes, that the value is unshown."""
    messages: list[str] = []
    refs = [SecretRef(scheme, "a/b", options={"region": GARBAGE}) for scheme in ("aws-sm", "aws-ssm")]
    refs += [SecretRef("gcp-sm", "p/s", options={"version": GARBAGE})]
    refs += [SecretRef("azure-kv", "vlt1/name", options={"version": GARBAGE})]
    refs += [SecretRef("vault", "secret/x", options={"version": GARBAGE})]
    from secretkit._options import check_options

    backends: dict[str, Any] = {
        "aws-sm": AwsSecretsManagerBackend,
        "aws-ssm": AwsParameterStoreBackend,
        "gcp-sm": GcpSecretManagerBackend,
        "azure-kv": AzureKeyVaultBackend,
    }
    for ref in refs:
        backend = backends.get(ref.scheme) or VaultBackend(url="http://127.0.0.1:1")
        try:
            check_options(backend, ref)
        except SecretkitError as exc:
            messages.append(str(exc))
        if isinstance(backend, VaultBackend):
            backend.close()
    assert len(messages) == len(refs)
    for message in messages:
        assert "backend's ?" in message
        assert "the value given is not one (it is not shown" in message
        assert PLANTED not in message
