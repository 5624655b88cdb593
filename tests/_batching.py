"""A memory backend that fetches in batches, for tests of the store's batched paths."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from secretkit import Fetched, SecretRef
from secretkit.testing import MemoryBackend

__all__ = ["BatchMemoryBackend"]


class BatchMemoryBackend(MemoryBackend):
    """A memory backend that fetches many secrets in one call, as the AWS and Vault backends do."""

    def fetch_many(self, refs: Sequence[SecretRef]) -> Mapping[SecretRef, Fetched | Exception]:
        out: dict[SecretRef, Fetched | Exception] = {}
        for ref in refs:
            try:
                out[ref] = self.fetch(ref)
            except Exception as exc:  # reported per ref, as the protocol asks
                out[ref] = exc
        return out
