"""AWS regions: the one a reference names, and a backend's replicas, tried when the primary fails.

A reference names its region with ``?region=`` or in its ARN (:func:`pick_region`), checked
against the shape of a region name (:data:`REGION`) before botocore builds a host from it.

Secrets Manager replicates a secret to the regions its owner chose, and a replica keeps the
primary's ``VersionId``: reading it from a replica is not a rotation. When a call in the
primary region fails for want of the region (connect error, 5xx, throttling, a response cut
short: every ``BackendUnavailable``), the same call goes to the next region. An answer of
the region itself (not found, denied) is final: a secret deleted in the primary must not be
served from a replica. A region that failed is skipped for a cool-off (1 s doubling to 30 s,
see :mod:`~secretkit.backends._failover`); then the primary is tried first again, so calls
return to it at most 30 s after it heals. Each region makes one attempt per call: the next
region is the retry, so a black-holed primary costs one read timeout, within the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .._errors import BackendUnavailable, ConfigurationError, InvalidReference, SecretkitError
from .._options import Shape, where
from ._failover import Candidates

if TYPE_CHECKING:
    from botocore.config import Config

    from .._refs import SecretRef

__all__ = ["REGION", "Regions", "arn_region", "pick_region"]

T = TypeVar("T")


def arn_region(path: str, service: str) -> str | None:
    """The region named in an ARN of ``service`` (``arn:aws:secretsmanager:eu-west-1:...``)."""
    if not path.startswith("arn:"):
        return None
    parts = path.split(":", 5)
    if len(parts) == 6 and parts[2] == service and parts[3]:
        return parts[3]
    return None


def pick_region(ref: SecretRef, service: str, scheme: str) -> str | None:
    """``?region=`` or the ARN's region; a reference that says two different regions is refused."""
    option = ref.options.get("region") or None
    in_arn = arn_region(ref.path, service)
    if option and in_arn and option != in_arn:
        raise InvalidReference(
            f"{where(ref)} names a region in ?region= that is not its ARN's ({in_arn!r}); "
            "drop ?region= (the ARN's region is used)"
        )
    return option or in_arn


#: The shape of an AWS region name (us-east-1, us-gov-west-1, eu-isoe-west-1): checked before
#: botocore builds an endpoint from it, which fails as an outage and quotes the value.
REGION = Shape(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}", "an AWS region name, such as eu-west-1")


class Regions:
    """The ordered regions of a backend (primary first) and each one's health."""

    def __init__(
        self,
        regions: Sequence[str],
        endpoints: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(regions, str) or not regions:
            raise ConfigurationError(
                'regions must be a list of AWS regions, primary first: ["us-east-1", ...]'
            )
        names = list(regions)
        bad = [name for name in names if not REGION.fits(name)]
        if bad:
            raise ConfigurationError(
                f"regions holds {len(bad)} value(s) that are not AWS region names, such as eu-west-1"
            )
        if len(set(names)) != len(names):
            raise ConfigurationError("regions lists the same region twice")
        self.endpoints = dict(endpoints or {})
        unknown = sorted(set(self.endpoints) - set(names))
        if unknown:
            raise ConfigurationError(f"region_endpoints names regions not in regions: {', '.join(unknown)}")
        self.primary = names[0]
        self._candidates = Candidates(names, sticky=False, clock=clock)

    @property
    def names(self) -> list[str]:
        return list(self._candidates.items)

    def requests_per_region(self) -> dict[str, int]:
        """Calls sent to each region since the backend was built (for tests and benchmarks)."""
        return dict(zip(self._candidates.items, self._candidates.attempts, strict=True))

    def config(self, given: Config | None) -> Config:
        """One attempt per region (the next region is the retry), unless ``given`` says otherwise."""
        from botocore.config import Config

        once = Config(retries={"mode": "standard", "total_max_attempts": 1})
        return once if given is None else once.merge(given)

    def call(self, attempt: Callable[[str], T]) -> T:
        """``attempt(region)`` in the first region that answers; the last outage if none does."""
        candidates = self._candidates
        last: BackendUnavailable | None = None
        for region in candidates.order():
            candidates.tried(region)
            try:
                result = attempt(region)
            except BackendUnavailable as exc:
                candidates.failed(region)
                last = exc
                continue
            except SecretkitError:
                candidates.succeeded(region)  # the region answered: its "no" is final
                raise
            candidates.succeeded(region)
            return result
        assert last is not None
        raise last

    def chunk(
        self,
        run: Callable[[str, dict[SecretRef, Any]], None],
        refs: Sequence[SecretRef],
        out: dict[SecretRef, Any],
    ) -> None:
        """A batch call, ``run(region, part)``, in the first region where it is not an outage.

        A batch call reports an outage as one ``BackendUnavailable`` per reference rather
        than raising; any other result (values, per-secret errors, or nothing because batch
        calls are not allowed) is the region's answer.
        """
        candidates = self._candidates
        part: dict[SecretRef, Any] = {}
        for region in candidates.order():
            candidates.tried(region)
            part = {}
            run(region, part)
            if part and all(isinstance(part.get(ref), BackendUnavailable) for ref in refs):
                candidates.failed(region)
                continue
            candidates.succeeded(region)
            break
        out.update(part)
