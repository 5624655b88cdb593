"""Which node of a Vault / OpenBao cluster a request goes to, and moving on when one fails.

The Vault backend talks to a cluster through one ``requests`` session, which hvac accepts
as its own: every request hvac builds for the first address is sent by
:class:`NodeSession` to the node :class:`VaultNodes` prefers, and to the next one when that
node refuses the connection, stops answering, or answers that it cannot serve (502, 503,
504, 412, or a 500 from a standby with no active node), all within one time budget. A
standby's redirect (Vault's answer when request forwarding is off) is followed only to one
of the configured addresses, so the token never goes to an address nobody gave. Held here,
not in :mod:`~secretkit.backends.vault`, so that module stays about reading secrets.

OpenBao's standbys serve reads from their own copy of the raft log, which may trail the
leader by a few entries. Each response's ``X-Vault-Index`` (the raft index it reflects) is
remembered, and sent back with ``X-Vault-Inconsistent: forward-active-node``: a node that
has not reached it forwards the read to the active node instead of answering from behind.
So moving to another node never shows an older version than one already seen, which the
store would take for a rotation.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from .._errors import ConfigurationError, without_userinfo
from ._failover import Candidates

__all__ = ["NodeError", "NodeSession", "NoNodeAnswered", "RedirectRefused", "VaultNodes"]

#: Answers meaning "not this node, not now": sealed or standby without a leader (503), a
#: gateway in front of a dead node (502, 504), an index this node has not reached (412).
_NEXT_NODE = frozenset({412, 502, 503, 504})
# A standby mid-election answers 500 with one of these; any other 500 is the request's own.
_NO_LEADER = ("active cluster node not found", "local node not active", "no leader")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# Between passes over nodes that all answered "no leader": an election takes a second or more.
_PAUSE = 0.05
_PAUSE_MAX = 0.4


class NodeError(requests.RequestException):
    """A request no node of the cluster served; the message names addresses, never a token."""


class NoNodeAnswered(NodeError, requests.ConnectionError):
    """Every node was tried within the time budget; the message says what each one did."""


class RedirectRefused(NodeError):
    """A node redirected to an address that is not one of the backend's."""


@dataclass(frozen=True)
class _Node:
    base: str  # the address as given, without a trailing slash
    origin: tuple[str, str, int]
    label: str  # the address as messages show it (no user-info)


class VaultNodes:
    """The addresses of one cluster (or one load balancer), and what is known of each node.

    Requests stick to the node that last answered, in the order given otherwise; a node that
    failed is tried after the others until its cool-off (1 s, doubling to 30 s) has passed
    (see :mod:`~secretkit.backends._failover`). ``budget`` bounds one request across every
    node tried, in seconds.
    """

    def __init__(
        self,
        addresses: Sequence[str],
        *,
        budget: float,
        clock: Callable[[], float] = time.monotonic,
        consistency: bool = True,
    ) -> None:
        if isinstance(addresses, str) or not addresses:
            raise ConfigurationError("addresses must be a non-empty list of Vault URLs")
        self._nodes = [_node(address) for address in addresses]
        if len({node.origin for node in self._nodes}) != len(self._nodes):
            raise ConfigurationError("addresses lists the same Vault node twice")
        self.budget = budget
        self._clock = clock
        self._candidates = Candidates(self._nodes, sticky=True, clock=clock)
        self._index: tuple[str, int, str] | None = None  # (cluster, raft index, header as sent)
        # Off behind a Vault Agent / OpenBao Proxy but for reads it never caches (KV): its lease
        # cache keys on every header, and an index that differs per process would give each
        # process a lease of its own (OpenBao 2.7's Proxy: 42 leases for 4 workers in 20 s).
        self._consistency = consistency
        self._uncached = threading.local()

    @property
    def addresses(self) -> list[str]:
        return [node.base for node in self._nodes]

    def session(self) -> NodeSession:
        """A new session for hvac (one per process: a forked child must not share sockets)."""
        session = NodeSession(self)
        # Proxy and CA variables were read once when the backend was built, as VAULT_ADDR is.
        session.trust_env = False
        return session

    def requests_per_node(self) -> dict[str, int]:
        """Attempts sent to each address since the backend was built (for tests and benchmarks)."""
        return {node.base: n for node, n in zip(self._nodes, self._candidates.attempts, strict=True)}

    # -- choosing ---------------------------------------------------------------------------

    def _order(self) -> list[_Node]:
        return self._candidates.order()

    def _owner(self, url: str) -> _Node | None:
        for node in self._nodes:
            if url == node.base or url.startswith(node.base + "/"):
                return node
        return None

    def _node_at(self, location: str) -> _Node | None:
        try:
            origin = _origin(location)
        except ValueError:
            return None
        return next((node for node in self._nodes if node.origin == origin), None)

    def _succeeded(self, node: _Node, index: str | None) -> None:
        self._candidates.succeeded(node)
        if index:
            self._remember(index)

    def _failed(self, node: _Node) -> None:
        self._candidates.failed(node)

    # -- consistency ------------------------------------------------------------------------

    def _remember(self, header: str) -> None:
        parsed = _index(header)
        held = self._index
        if parsed is None:
            # Not OpenBao's form (Vault Enterprise sends its own): pass back the latest, opaque.
            self._index = ("", 0, header)
        elif held is None or held[0] != parsed[0] or parsed[1] > held[1]:
            self._index = (parsed[0], parsed[1], header)

    @contextmanager
    def uncached(self) -> Iterator[None]:
        """Requests this thread makes in the block are ones no proxy caches: they carry the index."""
        self._uncached.on = True
        try:
            yield
        finally:
            self._uncached.on = False

    def _consistency_headers(self) -> dict[str, str]:
        held = self._index
        if held is None or not (self._consistency or getattr(self._uncached, "on", False)):
            return {}
        return {"X-Vault-Index": held[2], "X-Vault-Inconsistent": "forward-active-node"}


class NodeSession(requests.Session):
    """A session that sends each request of hvac to a node of :class:`VaultNodes`."""

    def __init__(self, nodes: VaultNodes) -> None:
        super().__init__()
        self.nodes = nodes

    def request(  # type: ignore[override]
        self, method: str, url: str | bytes, **kwargs: Any
    ) -> requests.Response:
        nodes = self.nodes
        text = url.decode() if isinstance(url, bytes) else url
        owner = nodes._owner(text)
        if owner is None:
            return super().request(method, url, **kwargs)
        rest = text[len(owner.base) :]
        follow = bool(kwargs.pop("allow_redirects", True))
        timeout = kwargs.pop("timeout", None)
        headers = dict(kwargs.pop("headers", None) or {})
        consistency = nodes._consistency_headers()
        reading = str(method).upper() in ("GET", "HEAD")
        clock = nodes._clock
        deadline = clock() + nodes.budget
        pause = _PAUSE
        tried: list[str] = []
        while True:
            outcome = self._round(
                method, rest, {**headers, **consistency}, timeout, follow, deadline, tried, kwargs
            )
            if isinstance(outcome, requests.Response):
                return outcome
            answer, alive = outcome
            # Nodes that answer but cannot serve (a standby with no leader to forward to) mean
            # an election: try again until the budget is spent, when one node has won it.
            if not alive or clock() + pause >= deadline:
                if answer is not None:
                    # hvac maps the last answer (503: sealed or unavailable) as before.
                    return answer
                raise NoNodeAnswered(
                    f"no Vault node answered within {nodes.budget:g} s: " + ", ".join(tried[-6:])
                )
            if answer is not None:
                answer.close()
            time.sleep(pause)
            pause = min(pause * 2, _PAUSE_MAX)
            if reading:
                # With no leader, a standby serves a read only from its own copy: better a copy
                # that may trail by an entry than no answer during the election.
                consistency = {}

    def _round(
        self,
        method: str,
        rest: str,
        headers: dict[str, str],
        timeout: Any,
        follow: bool,
        deadline: float,
        tried: list[str],
        kwargs: dict[str, Any],
    ) -> requests.Response | tuple[requests.Response | None, bool]:
        """One pass over the nodes: a served response, or ``(last refusal, whether any node answered)``."""
        nodes = self.nodes
        order = nodes._order()
        answer: requests.Response | None = None
        alive = False
        i = 0
        while i < len(order):
            node = order[i]
            i += 1
            left = deadline - nodes._clock()
            if left <= 0:
                tried.append("(time budget spent)")
                break
            nodes._candidates.tried(node)
            try:
                response = super().request(
                    method,
                    node.base + rest,
                    headers=headers,
                    timeout=_clipped(timeout, left),
                    allow_redirects=False,
                    **kwargs,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                nodes._failed(node)
                tried.append(f"{node.label} ({type(exc).__name__})")
                continue
            status = response.status_code
            if status in _REDIRECTS and follow and "Location" in response.headers:
                location = urljoin(node.base + rest, response.headers["Location"])
                response.close()
                target = nodes._node_at(location)
                if target is None:
                    raise RedirectRefused(
                        f"the Vault node at {node.label} redirected the request to "
                        f"{_shown_origin(location)}, which is not one of the backend's addresses, "
                        "so the token was not sent there; add it to VaultBackend(addresses=[...]) "
                        "if it is a node of your cluster"
                    )
                alive = True
                # A standby points at the active node: ask that node next, once.
                if target not in order[:i]:
                    if target in order:
                        order.remove(target)
                    order.insert(i, target)
                tried.append(f"{node.label} (redirected)")
                continue
            if status in _NEXT_NODE or (status == 500 and _no_leader(response)):
                # A sealed node (503) fails at once, as one Vault does; only a standby with no
                # leader says an election is on, worth waiting for.
                alive = alive or status == 500
                nodes._failed(node)
                tried.append(f"{node.label} (HTTP {status})")
                if answer is not None:
                    answer.close()
                answer = response
                continue
            nodes._succeeded(node, response.headers.get("X-Vault-Index"))
            if answer is not None:
                answer.close()
            return response
        return answer, alive


def _node(address: str) -> _Node:
    base = address.strip().rstrip("/")
    try:
        origin = _origin(base)
    except ValueError:
        raise ConfigurationError(
            f"{without_userinfo(address)!r} is not a Vault address; give http(s)://host:port"
        ) from None
    return _Node(base=base, origin=origin, label=without_userinfo(base))


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(url)
    return scheme, parts.hostname.lower(), parts.port or (443 if scheme == "https" else 80)


def _shown_origin(url: str) -> str:
    try:
        scheme, host, port = _origin(url)
    except ValueError:
        return "an address that is not a URL"
    return f"{scheme}://{host}:{port}"


def _clipped(timeout: Any, left: float) -> Any:
    """``timeout`` (a number or ``(connect, read)``) cut to the ``left`` seconds of the budget."""
    if timeout is None:
        return left
    if isinstance(timeout, tuple):
        return tuple(left if t is None else min(float(t), left) for t in timeout)
    return min(float(timeout), left)


def _no_leader(response: requests.Response) -> bool:
    try:
        text = response.text[:500].lower()
    except Exception:
        return False
    return any(phrase in text for phrase in _NO_LEADER)


def _index(header: str) -> tuple[str, int] | None:
    """``(cluster, raft index)`` from OpenBao's ``X-Vault-Index`` (base64 JSON), or ``None``."""
    try:
        data = json.loads(base64.b64decode(header, validate=True))
        return str(data["cluster"]), int(data["value"])
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
