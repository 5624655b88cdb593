"""Resolution: a name through the chain, a reference to its backend, under the allow-list.

A plain name is tried against each backend of the chain in order; a reference goes to the
backend of its scheme, built on first use from the SDK's environment when the store has
none. A variable that holds a reference is followed one level. What comes back is a
:class:`Loaded`: the secret and what the cache must know to keep it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from .. import _registry
from .._allow import AllowList
from .._backend import Backend, BackendTraits, Fetched, describe
from .._errors import (
    AccessDenied,
    ConfigurationError,
    InvalidReference,
    SecretkitError,
    SecretNotFound,
    shown,
)
from .._options import check_options
from .._redact import redact, remember
from .._refs import SecretRef, near_miss, parse_reference, reference_scheme
from .._secret import Missing, Secret, field_value
from .calls import Calls
from .observing import Observing

__all__ = ["Loaded", "Resolver", "default_backends"]

_UNPARSED: Any = object()


def default_backends() -> list[Backend]:
    """The default chain: the environment, then ``./.env``, then ``/run/secrets``."""
    from ..backends.dotenv import DotenvBackend
    from ..backends.env import EnvBackend
    from ..backends.files import FileBackend

    return [EnvBackend(), DotenvBackend(".env"), FileBackend("/run/secrets")]


class Loaded:
    """What a load produced: the secret, and what the cache needs to know to keep it."""

    __slots__ = ("local", "probe", "scheme", "secret", "ttl", "variable")

    def __init__(self, secret: Secret[Any], scheme: str, ttl: float | None, local: bool) -> None:
        self.secret, self.scheme, self.ttl, self.local = secret, scheme, ttl, local
        # (d, key, raw), ``d.get(key) is raw`` while the variables the value came from are
        # unchanged: the name's own, and the one it points to when that is in the environment.
        self.probe: tuple[Any, Any, Any] | None = None
        #: The value is the environment's: valid for exactly as long as the probe holds.
        self.variable = False

    def __repr__(self) -> str:
        return f"Loaded({self.secret!r}, {self.scheme!r})"


class Resolver:
    """The chain, the backends by scheme and the allow-list of one store."""

    def __init__(
        self,
        chain: Sequence[Backend],
        reference_backends: Sequence[Backend],
        allow: AllowList | None,
        max_size: int,
        calls: Calls,
        observing: Observing,
    ) -> None:
        given = [*chain, *reference_backends]
        for backend in given:
            if not isinstance(getattr(backend, "scheme", None), str) or not callable(
                getattr(backend, "fetch", None)
            ):
                raise TypeError(f"{backend!r} is not a backend: it needs a str .scheme and a .fetch(ref)")
        described = {id(b): describe(b) for b in given}
        self.chain: list[BackendTraits] = [described[id(b)] for b in chain]
        self.by_scheme: dict[str, BackendTraits] = {}
        for backend in given:
            self.by_scheme.setdefault(backend.scheme, described[id(backend)])
        #: Every backend this store closes: those given, and those it built.
        self.owned: list[Backend] = list(given)
        # The environment backend whose variables are watched on every read of a plain name.
        self.env: BackendTraits | None = next((b for b in self.chain if b.probe is not None), None)
        self.allow = allow
        self._max_size = max_size
        self._calls = calls
        self._observing = observing
        self._keys: dict[str, SecretRef | None] = {}
        self._after_fork()

    def _after_fork(self) -> None:
        self._build_lock = threading.Lock()

    # -- keys and the allow-list -----------------------------------------------------------

    def key(self, name: str) -> SecretRef | None:
        """``name`` parsed once: its reference, or ``None`` for a plain name."""
        ref = self._keys.get(name, _UNPARSED)
        if ref is _UNPARSED:
            if "://" in name and reference_scheme(name):
                ref = parse_reference(name)
            else:
                if ":/" in name:
                    _refuse_near_miss(name, None, name)
                ref = None
            if len(self._keys) >= self._max_size:
                self._keys.clear()  # a memo: names an attacker chooses must not grow it
            self._keys[name] = ref
        return ref  # type: ignore[no-any-return]

    def memo_size(self) -> int:
        return len(self._keys)

    def check_allowed(self, name: str, ref: SecretRef | None) -> None:
        """Refuse ``name`` (told to listeners) unless the allow-list grants it."""
        allow = self.allow
        if allow is None:
            return
        if allow.admits_ref(ref) if ref is not None else allow.admits_name(name):
            return
        error = allow.refusal(name, "it matches no pattern")
        if self._observing.listeners:
            self._observing.emit(name, ref.scheme if ref else None, None, False, 0.0, "denied", error)
        raise error

    def _denied(self, name: str, why: str) -> AccessDenied:
        return (self.allow or AllowList(())).refusal(name, why)

    # -- what the environment and the chain say about a key ---------------------------------

    def env_holds(self, name: str) -> bool:
        """The environment holds ``name`` now: a miss is never remembered for it."""
        env = self.env
        return (
            env is not None and env.probe is not None and "://" not in name and env.probe(name)[2] is not None
        )

    def only_local(self, error: BaseException) -> bool:
        """Every backend that answered ``error`` reads this machine (a file may appear any moment)."""
        backend = getattr(error, "backend", None)
        tried = getattr(error, "backends", ()) or ((backend,) if backend else ())
        if not tried:
            return False
        for scheme in tried:
            traits = self.by_scheme.get(scheme)
            if traits is None or not traits.local:
                return False
        return True

    def batching(self, ref: SecretRef) -> BackendTraits | None:
        """The backend of ``ref`` if a batch call can fetch it, after its options are checked."""
        backend = self.describe(ref.scheme)
        check_options(backend.backend, ref)
        if backend.fetch_many is not None and not backend.consumes_field(ref):
            return backend
        return None

    def key_scheme(self, name: str) -> str | None:
        """The scheme of ``name`` if it is shaped like a reference (not parsed)."""
        return reference_scheme(name) if "://" in name else None

    def batches(self, scheme: str | None) -> bool:
        """Whether a configured or built backend serves ``scheme`` with batch calls."""
        backend = self.by_scheme.get(scheme) if scheme else None
        return backend is not None and backend.fetch_many is not None

    # -- loading a key -----------------------------------------------------------------------

    def load(self, name: str, ref: SecretRef | None, reason: str) -> Loaded:
        """Fetch ``name`` (a plain name through the chain, or the reference ``ref``)."""
        if ref is not None:
            return self._load_ref(ref, name, reason)
        tried: list[str] = []
        probe: tuple[Any, Any, Any] | None = None
        env = self.env
        for backend in self.chain:
            if backend is env and backend.probe is not None:
                # Taken before the read: a change racing the read is then seen by the next one.
                probe = backend.probe(name)
            try:
                fetched = self._calls.fetch(backend, SecretRef(backend.scheme, name), name, reason)
            except SecretNotFound:
                tried.append(backend.scheme)
                continue
            value = fetched.value
            if isinstance(value, str) and ":/" in value:
                _refuse_near_miss(name, backend.scheme, value)
            if _registry.is_reference(value):
                assert isinstance(value, str)
                loaded = self._follow(name, backend.scheme, value, reason)
                # The environment's only if the target is a variable too (``env://OTHER``).
                live = loaded.variable
            else:
                # Configuration read from the environment or .env stays readable in logs
                # unless asked for as a secret; a secret file's content never does.
                register = not (backend.configuration and "file" not in fetched.metadata)
                secret = Secret(
                    name,
                    value,
                    source=backend.scheme,
                    version=fetched.version,
                    fetched_at=_utcnow(),
                    register=register,
                )
                loaded = Loaded(secret, backend.scheme, fetched.ttl, backend.local)
                live = env is not None and loaded.scheme == env.scheme
            if probe is not None:
                target = loaded.probe
                loaded.probe = probe if target is None else _both(probe, target)
            # Held until a probed variable changes only when the name itself is a variable: a
            # .env line pointing into the environment is still re-read about once a second.
            loaded.variable = live and probe is not None and probe[2] is not None
            return loaded
        raise SecretNotFound(name, backends=tried)

    def _follow(self, name: str, via: str, target: str, reason: str) -> Loaded:
        try:
            ref = parse_reference(target)
        except InvalidReference as exc:
            raise InvalidReference(
                f"secret {shown(name)} (from {via}) holds a reference that is not valid: {exc}"
            ) from None
        if self.allow is not None and not self.allow.admits_ref(ref):
            raise self._denied(name, f"it points to {shown(str(ref.base))}")
        # What it points to keeps its own rule: a remote secret its TTL, a file a re-read
        # about once a second, a variable of the environment a live read.
        try:
            loaded = self._load_ref(ref, name, reason, watch=True)
        except SecretNotFound as exc:
            # Name what the variable holds: "DB_PASSWORD not found" misleads when it is set.
            cause = exc.detail or "that secret was not found"
            raise SecretNotFound(
                name, backends=exc.backends, detail=f"it holds {shown(str(ref))} (from {via}); {cause}"
            ) from None
        if _registry.is_reference(loaded.secret.reveal()):
            raise InvalidReference(
                f"secret {shown(name)} (from {via}) points to {shown(str(ref))}, which holds another "
                "reference; secretkit follows one level: point to the secret itself"
            )
        return loaded

    def _load_ref(self, ref: SecretRef, name: str, reason: str, *, watch: bool = False) -> Loaded:
        backend = self.describe(ref.scheme)
        check_options(backend.backend, ref)
        target = ref if ref.field is None or backend.consumes_field(ref) else ref.base
        # A variable pointing into the environment is watched at both ends; the target is
        # probed before the read, as a plain name is, so a change racing the read is seen by
        # the next one. (An ``env://`` key read directly is still re-read about once a second:
        # the shipped backend contract suite expects a reference to stay cached meanwhile.)
        probe = None if not watch or backend.probe is None else backend.probe(ref.path)
        loaded = self.loaded_from(name, ref, backend, self._calls.fetch(backend, target, name, reason))
        if probe is not None:
            loaded.probe = probe
            loaded.variable = probe[2] is not None  # not a NAME_FILE file, which is re-read
        return loaded

    def loaded_from(self, name: str, ref: SecretRef, backend: BackendTraits, fetched: Fetched) -> Loaded:
        """The secret ``name`` made from what ``backend`` fetched for ``ref`` (its ``#field`` picked)."""
        if ref.field is None or backend.consumes_field(ref):
            secret = Secret(
                name, fetched.value, source=backend.scheme, version=fetched.version, fetched_at=_utcnow()
            )
        else:
            document, value = _field_of(fetched, ref, name, backend.scheme)
            secret = Secret(name, value, source=backend.scheme, version=fetched.version, fetched_at=_utcnow())
            # The document's other fields are secrets too, registered as long as this one is held.
            remember(fetched.value, document, owner=secret)
        return Loaded(secret, backend.scheme, fetched.ttl, backend.local)

    # -- backends by scheme --------------------------------------------------------------------

    def describe(self, scheme: str) -> BackendTraits:
        """The backend serving ``scheme``: the configured one, or one built now from the environment."""
        backend = self.by_scheme.get(scheme)
        if backend is not None:
            return backend
        with self._build_lock:
            backend = self.by_scheme.get(scheme)
            if backend is None:
                cls = _registry.backend_class(scheme)
                try:
                    built = cls()
                except SecretkitError:
                    raise
                except Exception as exc:
                    raise ConfigurationError(
                        f"the {scheme} backend could not be built from the environment "
                        f"({type(exc).__name__}: {redact(str(exc))[:200]}); configure it explicitly "
                        "with SecretStore(reference_backends=[...])"
                    ) from exc
                backend = self.by_scheme[scheme] = describe(built)
                self.owned.append(built)
        return backend


def _field_of(fetched: Fetched, ref: SecretRef, name: str, scheme: str) -> tuple[Any, Any]:
    """``(document, value)``: the parsed JSON secret and its field, parsed once for both."""
    assert ref.field is not None
    document, value = field_value(fetched.value, ref.field)
    if isinstance(value, Missing):
        del document  # a traceback with locals must not find the parsed secret in this frame
        if value.part is None:
            err = ConfigurationError(
                f"secret {shown(str(ref.base))} is not JSON, so it has no field {ref.field!r}; "
                "drop the #field or store the secret as a JSON object"
            )
            err.name, err.backend = name, scheme
            raise err
        raise SecretNotFound(name, backends=[scheme], detail=f"the JSON secret has no key {value.part!r}")
    return document, value


def _refuse_near_miss(name: str, via: str | None, value: str) -> None:
    """Refuse a value that is a reference with its scheme mistyped (``aws-sn://``, ``AWS-SM://``).

    Served as it is, the typo would become the password. Only the schemes are shown: the
    rest of the value may be anything.
    """
    miss = near_miss(value, _registry.known_schemes())
    if miss is None:
        return
    written, meant = miss
    if written == meant:  # "aws-sm:/x": the scheme is right, the slashes are not
        problem = f"starts like the reference {meant}:// but has one slash: write {meant}://..."
    else:
        problem = (
            f"is shaped like a reference with the scheme {shown(written)}, which is not one secretkit "
            f"knows: did you mean {meant}://?"
        )
    if via is None:  # the name itself
        err = InvalidReference(f"the name {shown(name)} {problem}")
    else:
        err = InvalidReference(
            f"secret {shown(name)} (from {via}) holds a value that {problem} Fix it: the text is not used "
            "as the secret"
        )
    err.name, err.backend = name, via
    raise err


def _utcnow() -> datetime:
    return datetime.now(UTC)


_UNCHANGED: Any = object()


class _Both:
    """Two probes as one: ``get(_UNCHANGED)`` is ``_UNCHANGED`` while neither variable has changed.

    The read path tests one probe by identity (``d.get(key) is raw``); a variable pointing
    into the environment (``VAR=env://OTHER``) holds while both ends are unchanged, so this
    stands in for ``d``. Only such a key pays for the call.
    """

    __slots__ = ("_first", "_second")

    def __init__(self, first: tuple[Any, Any, Any], second: tuple[Any, Any, Any]) -> None:
        self._first, self._second = first, second

    def get(self, key: object) -> object:
        d, k, raw = self._first
        if d.get(k) is not raw:
            return None
        d, k, raw = self._second
        return key if d.get(k) is raw else None


def _both(first: tuple[Any, Any, Any], second: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
    return _Both(first, second), _UNCHANGED, _UNCHANGED
