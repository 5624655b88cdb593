"""Cross-account reads: a boto3 session whose credentials come from ``sts:AssumeRole`` on a role ARN.

The workload's own identity (whatever boto3's chain finds: web identity, container,
instance profile) signs the AssumeRole call; the role's temporary credentials sign the
reads, and botocore refreshes them before they expire. The external id, when the other
account's trust policy requires one, is sent with every AssumeRole call.
"""

from __future__ import annotations

from typing import Any

from .._errors import ConfigurationError

__all__ = ["assumed_session"]

DEFAULT_SESSION_NAME = "secretkit"


def assumed_session(
    source: Any, role_arn: str, *, external_id: str | None, session_name: str | None, scheme: str
) -> Any:
    """A boto3 session like ``source`` (same region and configuration) acting as ``role_arn``."""
    import boto3
    import botocore.session
    from botocore.credentials import (
        AssumeRoleCredentialFetcher,
        CredentialProvider,
        DeferredRefreshableCredentials,
    )

    if not role_arn.startswith("arn:"):
        raise ConfigurationError(
            f"the {scheme} backend's role_arn must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)"
        )
    extra: dict[str, str] = {"RoleSessionName": session_name or DEFAULT_SESSION_NAME}
    if external_id:
        extra["ExternalId"] = external_id

    def fetcher() -> AssumeRoleCredentialFetcher:
        credentials = source.get_credentials()
        if credentials is None:
            raise ConfigurationError(
                f"the {scheme} backend found no AWS credentials to assume {role_arn} with; give the "
                "workload an IAM identity (role, profile or web identity)"
            )
        return AssumeRoleCredentialFetcher(
            client_creator=source.client, source_credentials=credentials, role_arn=role_arn, extra_args=extra
        )

    class _AssumedRole(CredentialProvider):
        METHOD = "secretkit-assume-role"
        CANONICAL_NAME = "secretkit-assume-role"

        def load(self) -> DeferredRefreshableCredentials:
            # Deferred: nothing is asked of STS until the first read needs credentials.
            return DeferredRefreshableCredentials(
                refresh_using=lambda: fetcher().fetch_credentials(), method=self.METHOD
            )

    profile = source.profile_name
    session = botocore.session.Session(profile=None if profile == "default" else profile)
    # First in the chain: the role's credentials, whatever the environment holds besides.
    session.get_component("credential_provider").insert_before("env", _AssumedRole())
    return boto3.session.Session(botocore_session=session, region_name=source.region_name)
