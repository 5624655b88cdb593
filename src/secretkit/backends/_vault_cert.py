"""The TLS client for Vault's ``cert`` auth method: a certificate and key held in memory, never on disk.

The Vault client's own connections may present no certificate (or an old one), and
``ssl`` loads a certificate chain from a path only. So each ``cert`` login reads the
certificate and key through the bounded local-file reader, loads them into a fresh
``SSLContext`` through anonymous memory files, and posts the login on a session of its
own, closed afterwards: a rotated certificate is presented at the next login, and no
pooled connection keeps the old one.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError

if TYPE_CHECKING:
    from hvac import Client

__all__ = ["login_with_certificate"]


def _context(cert_pem: bytes, key_pem: bytes, verify: bool | str, what: str) -> ssl.SSLContext:
    from urllib3.util.ssl_ import create_urllib3_context

    # urllib3 sets verify_mode from requests' verify=; a context that checks host names
    # would refuse CERT_NONE, so the context is made for what verify= says.
    context = create_urllib3_context(cert_reqs=ssl.CERT_NONE if verify is False else ssl.CERT_REQUIRED)
    cert_fd, key_fd = _memory_file(cert_pem), _memory_file(key_pem)
    try:
        # password="" : an encrypted key fails here rather than prompt on the terminal.
        context.load_cert_chain(cert_fd[1], key_fd[1], password="")
    except (ssl.SSLError, OSError):
        raise ConfigurationError(
            f"the {what} is not a PEM certificate with its unencrypted PEM private key; "
            "check that the two files belong together"
        ) from None
    finally:
        for fd, path in (cert_fd, key_fd):
            os.close(fd)
            if not path.startswith("/proc/"):
                os.unlink(path)
    return context


def _memory_file(data: bytes) -> tuple[int, str]:
    """A file descriptor holding ``data`` and a path ``ssl`` can load it from."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("secretkit-vault-cert", os.MFD_CLOEXEC)
        path = f"/proc/self/fd/{fd}"
    else:  # pragma: no cover - platforms without memfd (macOS, Windows)
        fd, path = tempfile.mkstemp(prefix="secretkit-vault-cert-")
    try:
        os.write(fd, data)
    except BaseException:
        os.close(fd)
        raise
    return fd, path


def login_with_certificate(
    client: Client, cert_pem: bytes, key_pem: bytes, *, mount: str, role: str | None, what: str
) -> Any:
    """POST ``auth/<mount>/login`` over a TLS connection that presents ``cert_pem``; Vault's JSON answer."""
    import hvac.adapters
    import requests
    from requests.adapters import HTTPAdapter

    url = str(client.url)
    if not url.lower().startswith("https://"):
        raise ConfigurationError(
            f"certificate auth needs Vault over TLS, and the vault backend's address is {url}; "
            "use an https:// VAULT_ADDR"
        )
    # hvac sends verify=, proxies= and timeout= with each request (its adapter's settings,
    # which win over its session's); the login uses the same ones.
    settings: dict[str, Any] = dict(getattr(client.adapter, "_kwargs", None) or {})
    main = client.session
    verify: bool | str = settings.get("verify", main.verify)
    if verify is None:
        verify = True
    proxies = settings.get("proxies") or dict(main.proxies) or None
    context = _context(cert_pem, key_pem, verify, what)

    class _Presenting(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            kwargs["ssl_context"] = context
            super().init_poolmanager(*args, **kwargs)

        def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
            kwargs["ssl_context"] = context
            return super().proxy_manager_for(*args, **kwargs)

    session = requests.Session()
    session.trust_env = False
    # hvac's adapter prefers a session's verify= and proxies= to its own arguments.
    session.verify = verify
    session.proxies = proxies or {}
    session.mount("https://", _Presenting())
    adapter = hvac.adapters.JSONAdapter(
        base_uri=url,
        session=session,
        verify=verify,
        proxies=proxies,
        timeout=settings.get("timeout") or (2.0, 3.0),
        namespace=getattr(client.adapter, "namespace", None),
    )
    try:
        return adapter.post(f"/v1/auth/{mount}/login", json={"name": role} if role else {})
    finally:
        session.close()
