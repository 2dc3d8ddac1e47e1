"""The view interface: how one kind of workload block reads, beside its cell in every table and as the
report section of the cells that carry it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wattgap.render.content import Section, Table
    from wattgap.results import CellResult


@dataclass(frozen=True)
class View:
    kind: str  # the block's kind (blocks/)
    note: Callable[[Any], str]  # the block -> what a table says of its cell ('' for nothing)
    section: Callable[[list[CellResult]], Section | None]  # the finished cells carrying the block -> its section
    terminal: Callable[[list[CellResult]], Table] | None = None  # the same cells -> a table under the run's
