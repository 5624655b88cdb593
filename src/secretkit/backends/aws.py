"""AWS Secrets Manager (``aws-sm://name#field?stage=&version=&region=``) through boto3."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._backend import Fetched
from .._errors import BackendUnavailable, ConfigurationError, SecretkitError, SecretNotFound
from .._options import Shape, check_options
from .._refs import SecretRef
from . import _aws
from ._aws_regions import Regions

if TYPE_CHECKING:
    from botocore.config import Config

__all__ = ["AwsSecretsManagerBackend"]

log = logging.getLogger("secretkit")

_SERVICE = "secretsmanager"
_LABEL = "AWS Secrets Manager"
_OPTIONS = ("region", "stage", "version")
_SHAPES = {
    "region": _aws.REGION,
    # AWS documents lengths only; a value with spaces or control characters is never one.
    "stage": Shape(r"[!-~]{1,256}", "a staging label (1 to 256 printable characters, no spaces)"),
    "version": Shape(r"[!-~]{32,64}", "a VersionId (32 to 64 printable characters, usually a UUID)"),
}
_BATCH = 20  # BatchGetSecretValue takes at most 20 secret ids
_CURRENT = "AWSCURRENT"


class AwsSecretsManagerBackend(_aws.AwsBackendBase):
    """Reads secrets from AWS Secrets Manager.

    ``aws-sm://prod/db#password`` reads the ``AWSCURRENT`` version of ``prod/db`` (a name,
    a full ARN or a partial ARN). ``?stage=AWSPREVIOUS`` reads another staging label,
    ``?version=<VersionId>`` one version, ``?region=`` another region than the default.
    ``SecretString`` comes back as ``str`` and ``SecretBinary`` as ``bytes``; the version
    id is the :class:`Fetched` version, so the store detects rotation by version.

    With no arguments, boto3's standard configuration applies: ``AWS_*`` variables,
    ``AWS_ENDPOINT_URL`` / ``AWS_ENDPOINT_URL_SECRETS_MANAGER``, profiles and instance
    roles. ``client`` supplies a ready boto3 client for the default region (it is not closed
    by :meth:`close`); ``config`` is merged over secretkit's timeouts and retries.
    ``role_arn`` (with ``external_id``) reads as another account's role: boto3's credentials
    assume it on first use and botocore refreshes its credentials (docs/auth.md).

    ``regions`` lists the regions a secret is replicated to, primary first (instead of
    ``region``): a call that fails for want of the primary (connect error, 5xx, throttling)
    goes to the next region, where the replica has the same value and ``VersionId``; a
    reference whose ``?region=`` or ARN names a region reads that region only.
    ``region_endpoints`` maps a region to its own endpoint URL (a VPC endpoint per region).
    See :mod:`~secretkit.backends._aws_regions`.
    """

    scheme = "aws-sm"
    options = frozenset(_OPTIONS)
    #: The shape of each option's value, checked before any call (see ``secretkit._options``).
    option_shapes = _SHAPES

    service = _SERVICE
    label = _LABEL
    batch_size = _BATCH
    single_permission = "secretsmanager:GetSecretValue"
    endpoint_variable = "AWS_ENDPOINT_URL_SECRETS_MANAGER"
    #: What ``secretkit doctor`` reports as this backend's configuration.
    settings = _aws.settings(endpoint_variable)

    def __init__(
        self,
        region: str | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
        *,
        config: Config | None = None,
        regions: Sequence[str] | None = None,
        region_endpoints: Mapping[str, str] | None = None,
        role_arn: str | None = None,
        external_id: str | None = None,
    ) -> None:
        #: The replica regions and their health; ``None`` with one region.
        self.regions: Regions | None = None
        if regions is not None:
            if region is not None or client is not None:
                raise ConfigurationError(
                    "give the aws-sm backend regions=[...] or region= (or client=), not both"
                )
            self.regions = Regions(regions, region_endpoints)
            region, config = self.regions.primary, self.regions.config(config)
        elif region_endpoints:
            raise ConfigurationError("region_endpoints= goes with regions=[...]")
        # role_arn: read another account's secrets as its role (sts:AssumeRole, with external_id).
        super().__init__(
            region,
            profile,
            endpoint_url,
            client,
            config=config,
            endpoints=region_endpoints,
            role_arn=role_arn,
            external_id=external_id,
        )

    @classmethod
    def pending_reference(cls, ref: SecretRef) -> SecretRef | None:
        """The same secret at ``?stage=AWSPENDING``, which a rotation's ``setSecret`` step writes.

        A reference pinned to a version or a stage names no current value, so it has no
        pending one either.
        """
        options = ref.options
        if {"version", "versionId", "stage"} & set(options):
            return None
        return ref.replace(options={**options, "stage": "AWSPENDING"})

    def fetch(self, ref: SecretRef) -> Fetched:
        check_options(self, ref)
        region = _aws.pick_region(ref, _SERVICE, self.scheme)
        request: dict[str, Any] = {"SecretId": ref.path}
        version, stage = ref.options.get("version"), ref.options.get("stage")
        if version:
            request["VersionId"] = version
        if stage:
            request["VersionStage"] = stage
        if not version and not stage:
            # AWS reads AWSCURRENT by default anyway; saying so keeps single reads and
            # staging-label moves consistent on every implementation of the API.
            request["VersionStage"] = _CURRENT
        ctx = self._context(ref.path, "secretsmanager:GetSecretValue")
        if region is None and self.regions is not None:
            return self.regions.call(lambda name: self._get(name, request, ctx))
        return self._get(region, request, ctx)

    def _get(self, region: str | None, request: dict[str, Any], ctx: _aws.ErrorContext) -> Fetched:
        response = _aws.call(ctx, self._clients.get(region).get_secret_value, **request)
        return _fetched(response, ctx.secret)

    def fetch_many(self, refs: Sequence[SecretRef]) -> Mapping[SecretRef, Fetched | Exception]:
        """``AWSCURRENT`` of up to 20 secrets per ``BatchGetSecretValue`` call, per region.

        References pinned to a version or another stage are left out (the store fetches
        them one by one): the batch call reads the current version only. If the caller may
        not use ``BatchGetSecretValue``, every reference is left out from then on.
        """
        return super().fetch_many(refs)

    def _batchable(self, ref: SecretRef) -> bool:
        return _batchable(ref)

    def _fetch_chunk(
        self, region: str | None, chunk: list[SecretRef], out: dict[SecretRef, Fetched | Exception]
    ) -> None:
        if region is None and self.regions is not None:
            self.regions.chunk(lambda name, part: self._fetch_chunk_in(name, chunk, part), chunk, out)
        else:
            self._fetch_chunk_in(region, chunk, out)

    def _fetch_chunk_in(
        self, region: str | None, chunk: list[SecretRef], out: dict[SecretRef, Fetched | Exception]
    ) -> None:
        ids = list(dict.fromkeys(ref.path for ref in chunk))
        ctx = self._context(
            ", ".join(ids) if len(ids) <= 3 else f"{ids[0]} and {len(ids) - 1} more",
            "secretsmanager:BatchGetSecretValue (and GetSecretValue on each secret)",
        )
        by_id: dict[str, list[SecretRef]] = {}
        for ref in chunk:
            by_id.setdefault(ref.path, []).append(ref)
        request: dict[str, Any] = {"SecretIdList": ids}
        try:
            client = self._clients.get(region)
            while True:
                response = _aws.call(ctx, client.batch_get_secret_value, **request)
                if "SecretValues" not in response and "Errors" not in response:
                    for ref in chunk:
                        out.setdefault(ref, _incomplete(ref.path))
                    return
                for item in response.get("SecretValues", ()):
                    for secret_id in _ids_matching(item, by_id):
                        for ref in by_id[secret_id]:
                            out[ref] = _result(item, ref.path)
                for error in response.get("Errors", ()):
                    refs = by_id.get(str(error.get("SecretId", "")), [])
                    for ref in refs:
                        out[ref] = _aws.map_client_error(
                            str(error.get("ErrorCode", "")),
                            str(error.get("Message", "")),
                            None,
                            self._single_context(ref.path),
                        )
                token = response.get("NextToken")
                if not token:
                    break
                request["NextToken"] = token
        except SecretkitError as exc:
            if _aws.batch_denied(exc, "BatchGetSecretValue", "ListSecrets"):
                self._batch_allowed = False
                log.info(
                    "secretkit: aws-sm may not call BatchGetSecretValue; fetching secrets one by one "
                    "(grant secretsmanager:BatchGetSecretValue to batch)"
                )
                return
            if isinstance(exc, BackendUnavailable):
                # An outage: one error per secret, not one request per secret.
                pending = [r for r in chunk if r not in out]
                out.update(_aws.each_unavailable(pending, exc, self._single_context))
            # Anything else (denied, a bad id in the list): the refs stay out of the result
            # and are fetched one by one, so each gets its own precise error.

    def _region_of(self, ref: SecretRef) -> str | None:
        check_options(self, ref)
        region = _aws.pick_region(ref, _SERVICE, self.scheme)
        if self.regions is not None:
            return region  # None fails over; a region named, even the primary, is pinned
        return self._clients.normal(region)


def _batchable(ref: SecretRef) -> bool:
    return not ref.options.get("version") and ref.options.get("stage", _CURRENT) == _CURRENT


def _ids_matching(item: Mapping[str, Any], by_id: Mapping[str, Any]) -> list[str]:
    # The response names each secret by Name and ARN, not by the id we sent: map it back
    # to every id that designates it (name, full ARN, or ARN without its 6-character suffix).
    name, arn = str(item.get("Name", "")), str(item.get("ARN", ""))
    found = [i for i in (name, arn) if i in by_id]
    if len(arn) > 7 and arn[-7] == "-" and arn[:-7] in by_id:
        found.append(arn[:-7])
    return list(dict.fromkeys(found))


def _result(item: Mapping[str, Any], secret: str) -> Fetched | Exception:
    try:
        return _fetched(item, secret)
    except SecretNotFound as exc:
        return exc


def _incomplete(secret: str) -> BackendUnavailable:
    # A connection cut inside the response headers still parses, as an empty 200: that is
    # an outage to ride out on the held value, not a secret that stopped existing.
    err = BackendUnavailable(
        f"secret {secret!r}: {_LABEL} sent an empty or incomplete response (no value and no ARN); "
        "check the network and the endpoint URL"
    )
    err.backend = AwsSecretsManagerBackend.scheme
    return err


def _fetched(response: Mapping[str, Any], secret: str) -> Fetched:
    value: str | bytes
    if "SecretString" in response:
        value = str(response["SecretString"])
    elif "SecretBinary" in response:
        value = bytes(response["SecretBinary"])
    elif not response.get("ARN") and not response.get("Name"):
        raise _incomplete(secret)
    else:
        raise SecretNotFound(secret, detail="the version read holds no value")
    metadata = {
        "arn": str(response.get("ARN", "")),
        "name": str(response.get("Name", "")),
        "stages": ",".join(response.get("VersionStages", ())),
    }
    version = response.get("VersionId")
    return Fetched(value, version=str(version) if version else None, metadata=metadata)
