"""The Secret type: only reveal() gives the value."""

from __future__ import annotations

import copy
import json
import logging
import pickle
import traceback

import pytest

from secretkit import ConfigurationError, LiveSecret, Secret, SecretNotFound, SecretStore
from secretkit.backends import MemoryBackend

VALUE = "sk_live_51HxQ-very-secret"


def make(value: object = VALUE, name: str = "API_KEY") -> Secret[object]:
    return Secret(name, value, source="env", version="7")


def test_reveal_gives_the_value() -> None:
    """reveal() returns exactly what was stored."""
    assert make().reveal() == VALUE


def test_str_format_and_repr_are_masked() -> None:
    """str, format, f-strings and repr never show the value."""
    s = make()
    for text in (str(s), f"{s}", f"{s:>40}", "{}".format(s), "%s" % s, repr(s), "%r" % s):  # noqa: UP031, UP032
        assert VALUE not in text
    assert repr(s) == "Secret('API_KEY', '**********')"


def test_logging_does_not_show_the_value(caplog: pytest.LogCaptureFixture) -> None:
    """Logging a secret as an argument shows the mask."""
    with caplog.at_level(logging.INFO):
        logging.getLogger("app").info("using %s and %r", make(), make())
    assert VALUE not in caplog.text
    assert "**********" in caplog.text


def test_exception_text_does_not_show_the_value() -> None:
    """An exception built from a secret carries the mask."""
    err = ValueError(f"bad key {make()}", make())
    assert VALUE not in str(err) and VALUE not in repr(err)


def test_traceback_with_locals_does_not_show_the_value() -> None:
    """A traceback that captures locals shows the mask, not the value."""

    def fail(secret: Secret[object]) -> None:
        raise RuntimeError("boom")

    try:
        fail(make())
    except RuntimeError as exc:
        text = "".join(traceback.TracebackException.from_exception(exc, capture_locals=True).format())
    assert "secret = Secret('API_KEY', '**********')" in text
    assert VALUE not in text


def test_pickle_refuses() -> None:
    """pickle raises TypeError rather than write the value or a mask that looks like data."""
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(make(), protocol=protocol)


def test_json_dumps_refuses() -> None:
    """json.dumps raises TypeError."""
    with pytest.raises(TypeError):
        json.dumps({"key": make()})


def test_copy_and_deepcopy_keep_the_secret_sealed() -> None:
    """copy and deepcopy work and give a secret with the same value and mask."""
    s = make()
    for c in (copy.copy(s), copy.deepcopy(s), copy.deepcopy({"k": s})["k"]):
        assert c.reveal() == VALUE
        assert VALUE not in repr(c)


def test_equality_compares_values_and_never_equals_a_plain_str() -> None:
    """Two secrets with the same value are equal; a secret is never equal to a str."""
    assert make() == make(name="OTHER")
    assert make() != make("different")
    assert make() != VALUE
    assert VALUE != make()
    assert make(b"bytes") == make(b"bytes")
    assert make("ünïcode") == make("ünïcode")
    assert hash(make()) == hash(make(name="OTHER"))


def test_metadata_is_public() -> None:
    """name, source, version and fetched_at are readable and hold no value."""
    s = make()
    assert (s.name, s.source, s.version) == ("API_KEY", "env", "7")
    assert s.fetched_at.tzinfo is not None


def test_secret_is_immutable() -> None:
    """A secret's value and metadata cannot be reassigned."""
    s = make()
    with pytest.raises(AttributeError):
        s.name = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        s._value = "x"  # type: ignore[attr-defined]


def test_field_picks_nested_keys_and_list_items() -> None:
    """field("a.b") returns a Secret for one key of a JSON secret."""
    s = make('{"db": {"password": "pw-1", "hosts": ["h1", "h2"]}, "port": 5432}')
    pw = s.field("db.password")
    assert isinstance(pw, Secret)
    assert pw.reveal() == "pw-1"
    assert pw.name == "API_KEY#db.password"
    assert s.field("db.hosts.1").reveal() == "h2"
    assert s.field("port").reveal() == 5432
    assert s.field("db").reveal() == {"password": "pw-1", "hosts": ["h1", "h2"]}


def test_field_of_a_missing_key_is_not_found_without_the_value() -> None:
    """A missing key raises SecretNotFound naming the key, not the content."""
    s = make('{"user": "u-secret-value"}')
    with pytest.raises(SecretNotFound) as info:
        s.field("password")
    assert "password" in str(info.value)
    assert "u-secret-value" not in str(info.value)


def test_field_of_a_non_json_secret_is_a_clear_error_without_the_value() -> None:
    """Asking a plain-text secret for a field says so, and chains no decode error holding the value."""
    with pytest.raises(ConfigurationError, match="is not JSON") as info:
        make("not-json-at-all").field("x")
    assert "not-json-at-all" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__context__ is None


def test_pydantic_dumps_mask_the_value() -> None:
    """A secret inside a pydantic model is masked in model_dump_json and repr."""
    pydantic = pytest.importorskip("pydantic")

    class Model(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        key: Secret[str]

    m = Model(key=make())
    assert VALUE not in m.model_dump_json()
    assert VALUE not in repr(m)
    assert VALUE not in str(m.model_dump())
    assert m.model_dump()["key"].reveal() == VALUE


def test_live_secret_follows_the_store() -> None:
    """A live handle reveals the current value and is masked like a Secret."""
    backend = MemoryBackend({"TOKEN": "token-v1"})
    store = SecretStore([backend], ttl=0)
    handle = store.live("TOKEN")
    assert isinstance(handle, LiveSecret)
    assert handle.reveal() == "token-v1"
    backend.set("TOKEN", "token-v2")
    assert handle.reveal() == "token-v2"
    assert handle.version == "2"
    assert "token-v2" not in repr(handle) + str(handle) + f"{handle}"
    with pytest.raises(TypeError):
        pickle.dumps(handle)
    assert handle == store.live("TOKEN")
