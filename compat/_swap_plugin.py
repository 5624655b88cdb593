"""pytest plugin for the compatibility run: ``pydantic_settings.BaseSettings`` is ``SecretkitSettings``.

Loaded with ``-p _swap_plugin`` before any test module or conftest imports pydantic-settings'
names, so ``from pydantic_settings import BaseSettings`` in the suite gets secretkit's class.
pydantic-settings' own modules keep their real ``BaseSettings``.
"""

from __future__ import annotations

import pydantic_settings

from secretkit.pydantic import SecretkitSettings

pydantic_settings.BaseSettings = SecretkitSettings  # type: ignore[misc,assignment]
