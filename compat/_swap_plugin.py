"""pytest plugin for the compatibility run: ``pydantic_settings.BaseSettings`` is ``SecretkitSettings``.

Loaded with ``-p _swap_plugin`` before any test module or conftest imports pydantic-settings'
names, so ``from pydantic_settings import BaseSettings`` in the suite gets secretkit's class.
pydantic-settings' own modules keep their real ``BaseSettings``.
"""

from __future__ import annotations

import os
from typing import Any

import pydantic_settings

from secretkit.pydantic import SecretkitSettings

pydantic_settings.BaseSettings = SecretkitSettings  # type: ignore[misc,assignment]

if os.environ.get("SECRETKIT_COMPAT_UNMASKED") == "1":
    # --unmasked: errors keep their inputs, to show which failures masking alone explains.
    import secretkit.pydantic

    def _unmasked(exc: Any, *, notes: Any = ()) -> Any:
        return exc

    secretkit.pydantic.redact_validation_error = _unmasked
