"""Backends: one module and one class per store of secrets.

The core backends are importable from here; cloud backends live in their own modules
(``secretkit.backends.aws`` and so on) so that importing this package imports no SDK.
"""

from .dotenv import DotenvBackend
from .env import EnvBackend
from .files import FileBackend
from .memory import MemoryBackend

__all__ = ["DotenvBackend", "EnvBackend", "FileBackend", "MemoryBackend"]
