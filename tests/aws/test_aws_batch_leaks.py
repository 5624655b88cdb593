"""A batched Secrets Manager fetch leaks no item's value into another item's failure (issue 10, item 2)."""

from __future__ import annotations

import json
import traceback
import uuid
from typing import Any

import pytest

from secretkit import SecretNotFound, SecretStore
from secretkit.backends.aws import AwsSecretsManagerBackend
from servers.moto_server import MotoServer

PASSWORD = "pw-batched-recognisable-31f7"
USERNAME = "user-batched-recognisable-88c2"


def _with_locals(exc: BaseException) -> str:
    return "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())


@pytest.mark.slow
def test_a_misspelt_field_in_a_batch_carries_no_value_of_the_batch(moto: MotoServer, sm_admin: Any) -> None:
    """prefetch(["aws-sm://db#password", "aws-sm://db#usernme"]): the failure's traceback holds no value."""
    name = f"prod/db-{uuid.uuid4().hex[:8]}"
    sm_admin.create_secret(Name=name, SecretString=json.dumps({"password": PASSWORD, "username": USERNAME}))
    store = SecretStore([], reference_backends=[AwsSecretsManagerBackend(endpoint_url=moto.url)])
    try:
        failures = store.prefetch([f"aws-sm://{name}#password", f"aws-sm://{name}#usernme"])
        assert list(failures) == [f"aws-sm://{name}#usernme"]
        shown = _with_locals(failures[f"aws-sm://{name}#usernme"])
        assert PASSWORD not in shown and USERNAME not in shown
        assert store.get(f"aws-sm://{name}#password").reveal() == PASSWORD
        with pytest.raises(SecretNotFound) as info:
            store.get(f"aws-sm://{name}#usernme")
        assert PASSWORD not in _with_locals(info.value) and USERNAME not in _with_locals(info.value)
    finally:
        store.close()
