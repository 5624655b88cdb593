"""A URL's password read through secretkit is masked in logs, whatever its variable is called."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from log_capture import redacted_logger

import secretkit
from secretkit import SecretStore, _api
from secretkit.backends import EnvBackend

URLS = {
    "DATABASE_URL": ("postgresql://app:pg-Pa55-w0rd-1@db.internal:5432/app", "pg-Pa55-w0rd-1"),
    "REDIS_URL": ("rediss://:redis-pw-7Hq2@cache.internal:6380/0", "redis-pw-7Hq2"),
    "MONGODB_URI": ("mongodb+srv://svc:mongo-pw-Kx9@cluster0.example.net/?retryWrites=true", "mongo-pw-Kx9"),
    "CELERY_BROKER_URL": ("amqp://worker:amqp-pw-Lm4@rabbit.internal:5672//", "amqp-pw-Lm4"),
}


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    for name, (url, _) in URLS.items():
        monkeypatch.setenv(name, url)
    old = _api._swap(SecretStore([EnvBackend()]))
    stream = io.StringIO()
    try:
        with redacted_logger("url_probe", logging.StreamHandler(stream)):
            yield stream
    finally:
        store = _api._swap(old)
        if store is not None:
            store.close()


@pytest.mark.parametrize("name", URLS)
def test_the_password_of_a_url_read_through_getenv_is_masked(captured: io.StringIO, name: str) -> None:
    """getenv("DATABASE_URL") (no secret marker in the name): the URL logs with its password masked."""
    url, password = URLS[name]
    value = secretkit.getenv(name)
    assert value == url
    log = logging.getLogger("url_probe")
    log.info("connecting to %s", value)
    log.info("password is %s", urlsplit(value).password)
    text = captured.getvalue()
    assert password not in text
    assert f"connecting to {url.replace(password, '**********')}" in text  # the rest stays readable


def test_the_password_of_a_url_read_through_environ_is_masked(captured: io.StringIO) -> None:
    """secretkit.environ["REDIS_URL"] registers the password too, the decoded form included."""
    url, password = URLS["REDIS_URL"]
    assert secretkit.environ["REDIS_URL"] == url
    logging.getLogger("url_probe").warning("redis at %r", url)
    assert password not in captured.getvalue()
    assert "cache.internal:6380" in captured.getvalue()


def test_a_percent_encoded_password_is_masked_decoded_too(
    captured: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A password written %-encoded in the URL is masked as written and as a driver decodes it."""
    monkeypatch.setenv("APP_DB", "postgres://app:p%40ss%2Fw0rd-x@db/app")
    value = secretkit.getenv("APP_DB")
    assert value is not None
    logging.getLogger("url_probe").info("url=%s decoded=%s", value, urlsplit(value).password)
    from urllib.parse import unquote

    logging.getLogger("url_probe").info("driver got %s", unquote(urlsplit(value).password or ""))
    text = captured.getvalue()
    assert "p%40ss%2Fw0rd-x" not in text
    assert "p@ss/w0rd-x" not in text


def test_the_password_alone_of_a_url_from_get_secret_is_masked(captured: io.StringIO) -> None:
    """get_secret masks the whole URL, and the password a driver parses out of it on its own."""
    url, password = URLS["CELERY_BROKER_URL"]
    secret = secretkit.get_secret("CELERY_BROKER_URL")
    parsed = urlsplit(secret.reveal())
    logging.getLogger("url_probe").info(
        "login %s/%s at %s", parsed.username, parsed.password, parsed.hostname
    )
    text = captured.getvalue()
    assert password not in text
    assert "login worker/********** at rabbit.internal" in text
    assert url not in text


def test_configuration_without_a_url_password_stays_readable(
    captured: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL without a password and plain settings read through getenv are not masked."""
    monkeypatch.setenv("SERVICE_URL", "https://api.example.com/v1")
    monkeypatch.setenv("APP_ENV", "production")
    logging.getLogger("url_probe").info("%s %s", secretkit.getenv("SERVICE_URL"), secretkit.getenv("APP_ENV"))
    assert "https://api.example.com/v1 production" in captured.getvalue()
