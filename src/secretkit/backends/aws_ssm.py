"""AWS SSM Parameter Store (``aws-ssm:///prod/app/api_key?version=&label=&region=``) through boto3."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .._backend import Fetched
from .._errors import BackendUnavailable, InvalidReference, SecretkitError, SecretNotFound
from .._options import Shape, check_options, where
from .._refs import SecretRef
from . import _aws

if TYPE_CHECKING:
    pass

__all__ = ["AwsParameterStoreBackend"]

log = logging.getLogger("secretkit")

_SERVICE = "ssm"
_LABEL = "AWS SSM Parameter Store"
_OPTIONS = ("label", "region", "version")
_SHAPES = {
    "region": _aws.REGION,
    # AWS's rule for labels; one with ':' or '/' would also change the name the request sends.
    "label": Shape(
        r"[A-Za-z._-][A-Za-z0-9._-]{0,99}",
        "a parameter label (letters, digits, '.', '-' and '_', not starting with a digit, at most 100)",
    ),
    "version": Shape(r"[0-9]{1,19}", "a parameter version number, such as 3 (?label= names a label)"),
}
_BATCH = 10  # GetParameters takes at most 10 names


class AwsParameterStoreBackend(_aws.AwsBackendBase):
    """Reads parameters from AWS SSM Parameter Store; ``SecureString`` values are decrypted.

    ``aws-ssm:///prod/app/api_key`` reads the latest version (``aws-ssm://prod/app/api_key``
    means the same: hierarchical names start with ``/``). ``?version=3`` reads one version,
    ``?label=stable`` a labelled one, ``?region=`` another region; a parameter ARN works too.
    The parameter's version number is the :class:`Fetched` version. Values are ``str``
    (a ``StringList`` comes back as its comma-separated text).

    Configuration is boto3's, as for :class:`~secretkit.backends.aws.AwsSecretsManagerBackend`
    (``AWS_ENDPOINT_URL_SSM`` overrides the endpoint for this service alone).
    """

    scheme = "aws-ssm"
    options = frozenset(_OPTIONS)
    #: The shape of each option's value, checked before any call (see ``secretkit._options``).
    option_shapes = _SHAPES

    service = _SERVICE
    label = _LABEL
    batch_size = _BATCH
    single_permission = "ssm:GetParameter"
    endpoint_variable = "AWS_ENDPOINT_URL_SSM"
    #: What ``secretkit doctor`` reports as this backend's configuration.
    settings = _aws.settings(endpoint_variable)

    def fetch(self, ref: SecretRef) -> Fetched:
        name, selector = _request_name(ref)
        region = _aws.pick_region(ref, _SERVICE, self.scheme)
        ctx = self._context(name, "ssm:GetParameter")
        client = self._clients.get(region)
        response = _aws.call(ctx, client.get_parameter, Name=name + selector, WithDecryption=True)
        if not isinstance(response.get("Parameter"), Mapping):
            # A connection cut inside the response headers still parses, as an empty 200.
            err = BackendUnavailable(
                f"secret {name!r}: {_LABEL} sent an empty or incomplete response (no parameter); "
                "check the network and the endpoint URL"
            )
            err.backend = self.scheme
            raise err
        return _fetched(response["Parameter"])

    def fetch_many(self, refs: Sequence[SecretRef]) -> Mapping[SecretRef, Fetched | Exception]:
        """Up to 10 parameters per ``GetParameters`` call, per region.

        References to a label are left out (the store fetches them one by one). If the
        caller may not use ``GetParameters``, every reference is left out from then on.
        """
        return super().fetch_many(refs)

    def _batchable(self, ref: SecretRef) -> bool:
        return _batchable(ref)

    def _fetch_chunk(
        self, region: str | None, chunk: list[SecretRef], out: dict[SecretRef, Fetched | Exception]
    ) -> None:
        sent = {ref: "".join(_request_name(ref)) for ref in chunk}
        names = list(dict.fromkeys(sent.values()))
        ctx = self._context(
            ", ".join(names) if len(names) <= 3 else f"{names[0]} and {len(names) - 1} more",
            "ssm:GetParameters",
        )
        try:
            client = self._clients.get(region)
            response = _aws.call(ctx, client.get_parameters, Names=names, WithDecryption=True)
        except SecretkitError as exc:
            if _aws.batch_denied(exc, "GetParameters"):
                self._batch_allowed = False
                log.info(
                    "secretkit: aws-ssm may not call GetParameters; fetching parameters one by one "
                    "(grant ssm:GetParameters to batch)"
                )
            elif isinstance(exc, BackendUnavailable):
                # An outage: one error per parameter, not one request per parameter.
                out.update(_aws.each_unavailable(chunk, exc, self._single_context))
            # Anything else (denied, an invalid name in the list): left out, so each parameter
            # is fetched on its own and gets its own precise error.
            return
        items: list[Mapping[str, Any]] = list(response.get("Parameters", ()))
        invalid = set(response.get("InvalidParameters", ()))
        for ref in chunk:
            name, _ = _request_name(ref)
            version = ref.options.get("version")
            found = [item for item in items if name in (item.get("Name"), item.get("ARN"))]
            if version:
                found = [item for item in found if str(item.get("Version")) == version]
            if found:
                # The same name may come back twice (latest and a pinned version): unpinned
                # means latest, which has the highest version number.
                out[ref] = _fetched(max(found, key=lambda item: int(item.get("Version") or 0)))
            elif sent[ref] in invalid:
                detail = f"it has no version {version}" if version else None
                out[ref] = SecretNotFound(name, detail=detail)

    def _region_of(self, ref: SecretRef) -> str | None:
        _request_name(ref)
        return self._clients.normal(_aws.pick_region(ref, _SERVICE, self.scheme))


def _batchable(ref: SecretRef) -> bool:
    return not ref.options.get("label")


def _request_name(ref: SecretRef) -> tuple[str, str]:
    """The parameter name and the ``:version`` / ``:label`` selector to send."""
    check_options(AwsParameterStoreBackend, ref)
    name = ref.path
    if not name.startswith(("/", "arn:")) and "/" in name:
        # A hierarchical name always starts with "/": aws-ssm://prod/app/key means /prod/app/key.
        name = "/" + name
    version, label = ref.options.get("version"), ref.options.get("label")
    if version and label:
        raise InvalidReference(f"{where(ref)} asks for both a version and a label; use one of them")
    if version:
        return name, f":{version}"
    if label:
        return name, f":{label}"
    return name, ""


def _fetched(parameter: Mapping[str, Any]) -> Fetched:
    metadata = {
        "arn": str(parameter.get("ARN", "")),
        "name": str(parameter.get("Name", "")),
        "type": str(parameter.get("Type", "")),
    }
    version = parameter.get("Version")
    return Fetched(
        str(parameter.get("Value", "")),
        version=None if version is None else str(version),
        metadata=metadata,
    )
