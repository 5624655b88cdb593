"""The backend contract: the traits a store reads are declared once and read once."""

from __future__ import annotations

import pytest

from secretkit import BackendBase, Fetched, SecretRef, SecretStore
from secretkit._backend import TRAITS, BackendTraitWarning, describe


class Plain:
    """A third-party backend that implements the protocol and declares nothing else."""

    scheme = "plain"

    def fetch(self, ref: SecretRef) -> Fetched:
        return Fetched("v")

    def close(self) -> None:
        pass


def test_a_misspelt_trait_is_reported_instead_of_silently_ignored() -> None:
    """``concurency = 2`` would leave the backend at the default concurrency without a word."""

    class Typo(Plain):
        concurency = 2

    with pytest.warns(BackendTraitWarning, match="'concurrency'"):
        SecretStore([], reference_backends=[Typo()])


def test_a_backend_without_the_base_class_gets_the_declared_defaults() -> None:
    """Implementing the protocol is enough: every trait has the base class's default."""
    traits = describe(Plain())
    base = BackendBase
    assert (traits.local, traits.configuration, traits.deadline, traits.concurrency) == (
        base.local,
        base.configuration,
        base.deadline,
        base.concurrency,
    )
    assert traits.probe is None and traits.fetch_many is None
    assert traits.consumes_field(SecretRef("plain", "x", "f")) is False


def test_the_base_class_declares_every_trait_the_store_reads() -> None:
    """One list of traits: the base class, the description and the docs agree on it."""
    assert TRAITS <= set(vars(BackendBase)) | set(BackendBase.__annotations__)


def test_a_subclass_of_the_base_class_declares_its_traits_as_attributes() -> None:
    """A deadline declared on the class is the one the store's calls use."""

    class Slow(BackendBase):
        scheme = "slow"
        deadline = 0.25
        concurrency = 2

        def fetch(self, ref: SecretRef) -> Fetched:
            return Fetched("v")

    store = SecretStore([], reference_backends=[Slow()], deadline=30.0)
    assert store.get("slow://x").reveal() == "v"
    traits = describe(Slow())
    assert (traits.deadline, traits.concurrency) == (0.25, 2)
