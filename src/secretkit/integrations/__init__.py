"""Credential consumers that follow rotation: database pools and HTTP clients.

Each integration is its own module behind its own extra and imports its library only
when used: ``secretkit.integrations.sqlalchemy``, ``.psycopg``, ``.asyncpg``, ``.httpx``,
``.requests``. This package imports none of them.
"""

from ._credentials import Credential, Login, database_login, is_auth_error, pending_reference

__all__ = ["Credential", "Login", "database_login", "is_auth_error", "pending_reference"]
