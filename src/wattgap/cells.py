"""A cell: one measurable combination of the sweep's axes, with an id that stays stable as axes are added."""

from __future__ import annotations

import functools
import hashlib
import json
import operator

from pydantic import BaseModel, ConfigDict

# The fields of the first cell schema: always part of the id, whatever their value, so that the ids of
# every stored cell stay what they were. A field added later enters the id only when it differs from its
# default, so adding an axis changes no existing id (and --resume and compare keep working on old files).
ID_FIELDS = ("model", "workload", "backend", "device", "precision", "batch_size", "threads")


class Cell(BaseModel):
    """One measurable combination. ``threads`` is the intra-op thread count of CPU cells (None elsewhere);
    ``memory_format`` the tensor layout of PyTorch cells (auto: the backend's documented fast path);
    ``world_size`` the ranks of a data-parallel training cell (each with ``batch_size`` and ``threads``);
    ``scenario`` the LoadGen scenario of a serving cell (empty elsewhere; its batch is the largest the system
    under test forms)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    workload: str
    backend: str
    device: str
    precision: str
    batch_size: int
    threads: int | None = None
    memory_format: str = "auto"
    world_size: int = 1  # processes of a data-parallel cell (train-ddp), each with the batch and the threads
    scenario: str = ""  # a serve cell's LoadGen scenario: single-stream, multi-stream, server or offline

    def later_fields(self) -> dict[str, object]:
        """The fields added after the first schema whose values differ from their defaults."""
        return _later(type(self), self.model_dump())

    @property
    def cell_id(self) -> str:
        """Stable: a hash of the fields, the same on every machine and in every run (hashed once for each
        distinct cell: a run of 10,000 cells asks for ids a hundred thousand times)."""
        kind = type(self)
        return _cell_id(kind, _field_values(kind)(self.__dict__))

    @property
    def label(self) -> str:
        threads = f"/t{self.threads}" if self.threads is not None else ""
        later = "".join(f"/{_PREFIX.get(name, '')}{value}" for name, value in self.later_fields().items())
        return (
            f"{self.model}/{self.workload}/{self.backend}/{self.device}/{self.precision}/b{self.batch_size}"
            f"{threads}{later}"
        )


CELL_FIELDS: tuple[str, ...] = tuple(Cell.model_fields)
_PREFIX = {"world_size": "w"}  # a later field whose value alone would not say what it is, in a label


@functools.cache
def _field_values(kind: type[Cell]) -> operator.itemgetter[tuple[object, ...]]:
    """Reads a ``kind`` of cell's field values, in its order, from its ``__dict__`` in one C call (the
    ids of a run of 10,000 cells are asked for some 100,000 times by one command)."""
    return operator.itemgetter(*kind.model_fields)


@functools.lru_cache(maxsize=1 << 16)
def _cell_id(kind: type[Cell], values: tuple[object, ...]) -> str:
    """The id of the ``kind`` of cell whose fields (in its order) are ``values``: the first schema's
    fields, and each later one whose value differs from its default (Cell.later_fields)."""
    given = dict(zip(kind.model_fields, values, strict=True))
    canonical = {name: given[name] for name in ID_FIELDS} | _later(kind, given)
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _later(kind: type[Cell], values: dict[str, object]) -> dict[str, object]:
    """Of a ``kind`` of cell's field ``values``, those added after the first schema that differ from
    their defaults (what enters the id besides ID_FIELDS)."""
    fields = kind.model_fields
    return {
        name: value
        for name, value in values.items()
        if name not in ID_FIELDS and value != fields[name].get_default(call_default_factory=True)
    }


def curve_key(cell: Cell) -> tuple[tuple[str, object], ...]:
    """What cells that differ only in batch size share: a curve over batch size, a batch search."""
    return tuple((name, getattr(cell, name)) for name in CELL_FIELDS if name != "batch_size")
