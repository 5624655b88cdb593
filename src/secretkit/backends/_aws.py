"""What the aws-sm and aws-ssm backends share: their base class, batching in chunks per region.

The parts it is built from have modules of their own: :mod:`._aws_clients` (boto3 clients per
region), :mod:`._aws_errors` (a call's failures mapped to ours), :mod:`._aws_regions` (the
region a reference names, replica failover) and :mod:`._aws_assume` (cross-account roles).
Their names the two backends use are re-exported here, so a backend reads ``_aws.call``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .._backend_class import Probe
from .._errors import SecretkitError
from .._refs import SecretRef
from ._aws_clients import Clients, import_boto3, settings
from ._aws_errors import ErrorContext, batch_denied, call, each_unavailable, map_client_error, map_error
from ._aws_regions import REGION, arn_region, pick_region

if TYPE_CHECKING:
    from botocore.config import Config

__all__ = [
    "REGION",
    "AwsBackendBase",
    "Clients",
    "ErrorContext",
    "arn_region",
    "batch_denied",
    "call",
    "chunks",
    "each_unavailable",
    "group_by_region",
    "import_boto3",
    "map_client_error",
    "map_error",
    "pick_region",
    "settings",
]

T = TypeVar("T")

#: Batch calls (of up to 20 secrets or 10 parameters each) made at once by one fetch_many.
MAX_PARALLEL_CHUNKS = 8


def chunks(items: Sequence[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def group_by_region(
    refs: Sequence[SecretRef],
    eligible: Callable[[SecretRef], bool],
    region_of: Callable[[SecretRef], str | None],
    out: dict[SecretRef, Any],
) -> Mapping[str | None, list[SecretRef]]:
    """Refs a batch call can serve, by region; refs it cannot are left out (fetched one by one)."""
    groups: dict[str | None, list[SecretRef]] = {}
    for ref in dict.fromkeys(refs):
        try:
            if not eligible(ref):
                continue
            region = region_of(ref)
        except SecretkitError as exc:
            out[ref] = exc
            continue
        groups.setdefault(region, []).append(ref)
    return groups


class AwsBackendBase:
    """What the two AWS backends share: clients per region, batching in chunks, closing.

    A subclass sets ``scheme``, ``service``, ``label``, ``batch_size`` and
    ``single_permission``, and writes ``fetch``, ``_batchable``, ``_region_of`` and
    ``_fetch_chunk``.
    """

    scheme: str
    #: The query options a reference may carry; the store refuses others before asking AWS.
    options: frozenset[str]
    service: str
    label: str
    batch_size: int
    single_permission: str
    #: The variable that sets this service's endpoint alone (``AWS_ENDPOINT_URL_SSM``).
    endpoint_variable: str

    def __init__(
        self,
        region: str | None = None,
        profile: str | None = None,
        endpoint_url: str | None = None,
        client: Any = None,
        *,
        config: Config | None = None,
        endpoints: Mapping[str, str] | None = None,
        role_arn: str | None = None,
        external_id: str | None = None,
    ) -> None:
        self._clients = Clients(
            scheme=self.scheme,
            service=self.service,
            region=region,
            profile=profile,
            endpoint_url=endpoint_url,
            client=client,
            config=config,
            endpoints=endpoints,
            role_arn=role_arn,
            external_id=external_id,
        )
        self._batch_allowed = True

    def __repr__(self) -> str:
        return f"{type(self).__name__}(region={self._clients.default_region!r})"

    @classmethod
    def reachability(cls, env: Mapping[str, str], refs: Sequence[SecretRef]) -> Probe:
        """The service's endpoint: as set, else the default region's; none when only a profile has one."""
        endpoint = env.get(cls.endpoint_variable) or env.get("AWS_ENDPOINT_URL")
        if endpoint:
            setting = cls.endpoint_variable if env.get(cls.endpoint_variable) else "AWS_ENDPOINT_URL"
            return Probe(url=endpoint, setting=setting)
        # The backend's order: boto3's AWS_DEFAULT_REGION, then AWS_REGION (see Clients).
        variable = "AWS_DEFAULT_REGION" if env.get("AWS_DEFAULT_REGION") else "AWS_REGION"
        region = env.get(variable)
        if not region:
            return Probe(note="no AWS_REGION or AWS_ENDPOINT_URL: the region comes from the profile, if any")
        if not REGION.fits(region):
            # Pasted into a host name, "x@evil/" would send the probe elsewhere.
            return Probe(refused=f"{variable} is not a region name such as eu-west-1")
        return Probe(url=f"https://{cls.service}.{region}.amazonaws.com")

    @property
    def region(self) -> str | None:
        """The region used when a reference names none."""
        return self._clients.default_region

    def fetch_many(self, refs: Sequence[SecretRef]) -> Mapping[SecretRef, Any]:
        out: dict[SecretRef, Any] = {}
        if not self._batch_allowed:
            return out
        groups = group_by_region(refs, self._batchable, self._region_of, out)
        jobs = [
            (region, chunk) for region, group in groups.items() for chunk in chunks(group, self.batch_size)
        ]
        if len(jobs) == 1:
            self._fetch_chunk(*jobs[0], out)
            return out
        # Chunks run side by side: 100 secrets cost one round trip rather than five, and the
        # store's deadline covers this whole call. Each chunk writes only its own refs to out.
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(len(jobs), MAX_PARALLEL_CHUNKS), "secretkit-aws-batch") as pool:
            for done in [
                pool.submit(self._fetch_allowed_chunk, region, chunk, out) for region, chunk in jobs
            ]:
                done.result()
        return out

    def _fetch_allowed_chunk(
        self, region: str | None, chunk: list[SecretRef], out: dict[SecretRef, Any]
    ) -> None:
        if self._batch_allowed:
            self._fetch_chunk(region, chunk, out)

    def _batchable(self, ref: SecretRef) -> bool:
        raise NotImplementedError

    def _region_of(self, ref: SecretRef) -> str | None:
        raise NotImplementedError

    def _fetch_chunk(self, region: str | None, chunk: list[SecretRef], out: dict[SecretRef, Any]) -> None:
        raise NotImplementedError

    def _context(self, secret: str, permission: str) -> ErrorContext:
        return ErrorContext(self.scheme, self.label, secret, permission)

    def _single_context(self, secret: str) -> ErrorContext:
        return self._context(secret, self.single_permission)

    def close(self) -> None:
        self._clients.close()
