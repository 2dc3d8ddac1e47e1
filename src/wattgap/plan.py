"""Expand a sweep into cells. Cells the hardware or backend cannot run become skipped cells with their
reason, decided here before anything runs."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from wattgap.config import SweepConfig
from wattgap.devices import Hardware

CELL_FIELDS = ("model", "workload", "backend", "device", "precision", "batch_size", "threads")


class Cell(BaseModel):
    """One measurable combination. ``threads`` is the intra-op thread count of CPU cells (None elsewhere)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    workload: str
    backend: str
    device: str
    precision: str
    batch_size: int
    threads: int | None = None

    @property
    def cell_id(self) -> str:
        """Stable: a hash of the fields, the same on every machine and in every run."""
        canonical = json.dumps(self.model_dump(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def label(self) -> str:
        threads = f"/t{self.threads}" if self.threads is not None else ""
        return f"{self.model}/{self.workload}/{self.backend}/{self.device}/{self.precision}/b{self.batch_size}{threads}"


@dataclass(frozen=True)
class Plan:
    cells: tuple[Cell, ...]  # every cell, in sweep order, skipped ones included
    skipped: dict[str, str]  # cell_id -> reason

    @property
    def runnable(self) -> tuple[Cell, ...]:
        return tuple(c for c in self.cells if c.cell_id not in self.skipped)


def _resolve_device(device: str, hardware: Hardware) -> str:
    return hardware.best_device() if device == "auto" else device


def expand(config: SweepConfig, hardware: Hardware) -> Plan:
    """The cells of ``config`` on ``hardware``: a pure function of its two arguments."""
    from wattgap.backends import BACKENDS

    devices = list(dict.fromkeys(_resolve_device(d, hardware) for d in config.devices))
    cpu_threads = config.threads or [hardware.physical_cores]
    cells: list[Cell] = []
    skipped: dict[str, str] = {}
    seen: set[str] = set()
    axes = (
        (model, workload, backend, device, precision, batch)
        for model, workload, backend, device, precision in itertools.product(
            config.models, config.workloads, config.backends, devices, config.precisions
        )
        for batch in config.batch_sizes_for(workload)
    )
    for model, workload, backend, device, precision, batch in axes:
        for threads in cpu_threads if device == "cpu" else [None]:
            cell = Cell(
                model=model,
                workload=workload,
                backend=backend,
                device=device,
                precision=precision,
                batch_size=batch,
                threads=threads,
            )
            if cell.cell_id in seen:
                continue
            seen.add(cell.cell_id)
            cells.append(cell)
            reason = hardware.unusable_reason(device) or BACKENDS[backend].unsupported_reason(cell, hardware)
            if reason:
                skipped[cell.cell_id] = reason
    return Plan(tuple(cells), skipped)
