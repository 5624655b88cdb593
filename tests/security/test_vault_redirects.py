"""Attacks on the Vault backend's node list: where a redirect may take the token."""

from __future__ import annotations

import pytest

from secretkit._errors import BackendUnavailable, ConfigurationError
from secretkit._refs import SecretRef
from secretkit.backends.vault import TokenAuth, VaultBackend
from security.credential_attackers import RecordingHttp
from servers.redirecting_node import RedirectingNode

TOKEN = "s.vault-token-of-the-application"


def test_a_standby_redirect_to_an_address_nobody_configured_never_receives_the_token() -> None:
    """A node that answers 307 to another host gets a refusal: the token is not sent there."""
    with RecordingHttp() as collector, RedirectingNode(collector.url + "/collect") as node:
        backend = VaultBackend(addresses=[node.url], auth=TokenAuth(TOKEN), kv_version=2)
        try:
            with pytest.raises(BackendUnavailable) as caught:
                backend.fetch(SecretRef("vault", "secret/app/db"))
        finally:
            backend.close()
        assert collector.seen == []
        assert node.seen, "the configured node was asked"
        message = str(caught.value)
        assert "not one of the backend's addresses" in message
        assert TOKEN not in message and TOKEN not in repr(caught.value.__cause__)


def test_a_single_address_redirected_elsewhere_never_sends_the_token_either() -> None:
    """A load balancer's address alone does not vouch for the node it redirects to."""
    with RecordingHttp() as collector, RedirectingNode(collector.url) as node:
        backend = VaultBackend(url=node.url, auth=TokenAuth(TOKEN), kv_version=2)
        try:
            with pytest.raises(BackendUnavailable):
                backend.fetch(SecretRef("vault", "secret/app/db"))
        finally:
            backend.close()
        assert TOKEN not in collector.values()


def test_a_node_address_with_user_info_is_not_echoed_when_refused() -> None:
    """An address given with a password in it is refused without quoting the password."""
    with pytest.raises(ConfigurationError) as caught:
        VaultBackend(addresses=["ftp://admin:hunter2@vault.example:8200"], auth=TokenAuth(TOKEN))
    assert "hunter2" not in str(caught.value)
