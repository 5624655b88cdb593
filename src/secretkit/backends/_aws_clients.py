"""boto3 clients for the AWS backends: one per region, built on first use with bounded timeouts."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .._backend_class import Setting
from .._errors import ConfigurationError, MissingDependency
from ._aws_errors import install_log_filter

if TYPE_CHECKING:
    from botocore.config import Config

__all__ = ["DEFAULT_CONFIG", "Clients", "import_boto3", "settings"]

# Connection and read timeouts, and the retries botocore makes before we see an error.
# botocore's defaults (60 s timeouts, 5 legacy attempts) can hold a fetch for minutes
# against an endpoint that drops packets. The store gives every fetch a total deadline
# (5 s by default) and stops waiting there; these keep botocore's own worst case near it
# (one retry for a blip: 2 attempts of at most 2 s connect + 3 s per read), so an abandoned
# attempt does not linger in its worker thread long after the caller has moved on.
DEFAULT_CONFIG: dict[str, Any] = {
    "connect_timeout": 2,
    "read_timeout": 3,
    "retries": {"mode": "standard", "total_max_attempts": 2},
    # botocore keeps 10 connections: calls in flight past that open one each and drop it.
    "max_pool_connections": 64,
}


def import_boto3(scheme: str) -> Any:
    """boto3, or :class:`MissingDependency` naming the extra that installs it."""
    try:
        import boto3
        import botocore.config  # noqa: F401 - fail here, not on first fetch
    except ImportError as exc:
        raise MissingDependency(scheme, "boto3", "aws") from exc
    install_log_filter()
    return boto3


def settings(endpoint_variable: str) -> tuple[Setting, ...]:
    """The variables and files boto3 reads, with the one that sets this service's endpoint."""
    return (
        Setting("AWS_ENDPOINT_URL", shown=True),
        Setting("AWS_REGION", shown=True),
        Setting("AWS_DEFAULT_REGION", shown=True),
        Setting("AWS_PROFILE", shown=True),
        Setting("AWS_ACCESS_KEY_ID"),
        Setting("AWS_SECRET_ACCESS_KEY"),
        Setting("AWS_SESSION_TOKEN"),
        Setting("AWS_WEB_IDENTITY_TOKEN_FILE", shown=True),
        Setting("AWS_ROLE_ARN", shown=True),
        Setting("AWS_CONTAINER_CREDENTIALS_FULL_URI", shown=True),
        Setting("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", shown=True),
        Setting(endpoint_variable, shown=True),
        Setting("~/.aws/", file=True),
    )


class Clients:
    """boto3 clients for one service, one per region, built on first use and shared by threads.

    boto3 clients are thread-safe but sessions are not, so clients are built under a lock.
    A forked child gets clients of its own (the parent's connection pools are not shared).
    """

    def __init__(
        self,
        *,
        scheme: str,
        service: str,
        region: str | None,
        profile: str | None,
        endpoint_url: str | None,
        client: Any,
        config: Config | None,
        endpoints: Mapping[str, str] | None = None,
        role_arn: str | None = None,
        external_id: str | None = None,
    ) -> None:
        boto3 = import_boto3(scheme)
        from botocore.config import Config
        from botocore.exceptions import ProfileNotFound

        self.scheme = scheme
        self.service = service
        self._config = Config(**DEFAULT_CONFIG)
        if config is not None:
            self._config = self._config.merge(config)
        self._endpoint_url = endpoint_url
        # A region's own endpoint (a VPC endpoint in each region of a replicated secret).
        self._endpoints = dict(endpoints or {})
        try:
            self._session = boto3.session.Session(profile_name=profile, region_name=region)
        except ProfileNotFound as exc:
            raise ConfigurationError(
                f"the {scheme} backend was given the AWS profile {profile!r}, which is not in the AWS "
                "config files; fix the name or set AWS_CONFIG_FILE"
            ) from exc
        if role_arn:
            from ._aws_assume import assumed_session

            self._session = assumed_session(
                self._session, role_arn, external_id=external_id, session_name=None, scheme=scheme
            )
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._built: dict[str | None, Any] = {}
        self._given = client
        if client is not None:
            self.default_region: str | None = client.meta.region_name
        else:
            # boto3 reads AWS_DEFAULT_REGION only; Lambda, ECS and many CI systems set AWS_REGION.
            self.default_region = self._session.region_name or os.environ.get("AWS_REGION") or None
            if self.default_region:
                self._build(None)

    def normal(self, region: str | None) -> str | None:
        """``None`` for the default region, so refs in it batch together however they name it."""
        return None if region == self.default_region else region

    def get(self, region: str | None) -> Any:
        """The client for ``region`` (``None``: the default region)."""
        if region is None or region == self.default_region:
            if self._given is not None:
                return self._given
            region = None
        if self._pid != os.getpid():
            self._after_fork()
        client = self._built.get(region)
        if client is None:
            client = self._build(region)
        return client

    def _build(self, region: str | None) -> Any:
        with self._lock:
            client = self._built.get(region)
            if client is None:
                from botocore.exceptions import InvalidRegionError, NoRegionError

                refused: ConfigurationError | None = None
                try:
                    name = region or self.default_region or ""
                    client = self._session.client(
                        self.service,
                        region_name=region or self.default_region,
                        endpoint_url=self._endpoints.get(name, self._endpoint_url),
                        config=self._config,
                    )
                except NoRegionError as exc:
                    raise ConfigurationError(
                        f"the {self.scheme} backend has no AWS region; set AWS_DEFAULT_REGION, pass "
                        "region=... to the backend, or add ?region=... to the reference"
                    ) from exc
                except InvalidRegionError:
                    # A reference's ?region= is shape-checked before this; this one came from the
                    # configuration. botocore's text quotes it.
                    refused = ConfigurationError(
                        f"the {self.scheme} backend was configured with a region that is not an AWS "
                        "region name (from region=..., AWS_DEFAULT_REGION or AWS_REGION); fix it"
                    )
                except ValueError:
                    # Building a client sends nothing, so this is configuration: in practice an
                    # endpoint URL botocore cannot parse, and its "Invalid endpoint: <url>" quotes
                    # the URL, user-info and all.
                    refused = ConfigurationError(
                        f"the {self.scheme} backend's configuration was refused by botocore: most likely "
                        "the endpoint URL is not a valid URL (endpoint_url=... or AWS_ENDPOINT_URL*); fix it"
                    )
                if refused is not None:
                    # Raised outside the except: not even __context__ keeps botocore's text.
                    raise refused
                self._built[region] = client
        return client

    def _after_fork(self) -> None:
        # Replace the lock rather than take it: a parent thread may have held it at fork time.
        self._lock = threading.Lock()
        if self._pid != os.getpid():
            self._built = {}
            self._pid = os.getpid()

    def close(self) -> None:
        """Close the clients built here (a client passed in belongs to its owner)."""
        with self._lock:
            built, self._built = list(self._built.values()), {}
        for client in built:
            close = getattr(client, "close", None)
            if callable(close):
                close()
