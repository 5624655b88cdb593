"""A secret's status row, the unit of ``check`` and of ``doctor``'s trace."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._secret import Secret
from ._exits import classify
from ._output import error_message, shown_name


@dataclass
class StatusRow:
    name: str
    status: str
    source: str | None = None
    version: str | None = None
    fetched_at: str | None = None
    error: str | None = None
    field: str | None = None
    required: bool | None = None

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "default")

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "status": self.status.replace(" ", "_"),
            "source": self.source,
            "version": self.version,
            "fetched_at": self.fetched_at,
            "error": self.error,
        }
        if self.field is not None:
            data["field"] = self.field
            data["required"] = self.required
        return data


def status_row(name: str, secret: Secret[Any] | None, error: BaseException | None) -> StatusRow:
    if secret is not None:
        return StatusRow(
            shown_name(name),
            "ok",
            source=secret.source,
            version=secret.version,
            fetched_at=secret.fetched_at.isoformat(timespec="seconds"),
        )
    assert error is not None
    return StatusRow(
        shown_name(name),
        classify(error)[0],
        source=getattr(error, "backend", None),
        error=error_message(error),
    )
