"""The block interface: a pydantic model with a ``kind`` (its workload's name, the discriminator it is
stored under), the columns it adds to the flat export, and the note a table shows beside its cell."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel


class Block(BaseModel):
    kind: str
    COLUMNS: ClassVar[tuple[str, ...]] = ()  # its fields in the flat export (CSV, Parquet, DataFrame), by name

    def columns(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.COLUMNS}

    def note(self) -> str:
        """What a table says of the cell beside its figures ('' for nothing)."""
        return ""
