"""The store, one room per concern; ``store.py`` is its public face and hot path.

Reading down the floors: ``store`` (face, hot path) -> ``refreshing`` (due queue) ->
``batching`` (many keys at once) -> ``loading`` (single flight, completion) -> ``resolving``
(chain, references, allow-list, backends by scheme) -> ``calls`` (lanes, deadlines, errors
sealed) -> ``runner``; beside them ``policy`` (time), ``records`` (what is held and what
failed), ``progress`` (what is under way, and the lock), ``observing`` (listeners, stats).
"""

from .calls import DEFAULT_CONCURRENCY, DEFAULT_DEADLINE
from .observing import RotateCallback
from .policy import TimePolicy
from .resolving import default_backends
from .store import SecretStore, live_stores

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_DEADLINE",
    "RotateCallback",
    "SecretStore",
    "TimePolicy",
    "default_backends",
    "live_stores",
]
