"""Run one cell in this process: the cell's workload drives the cell's backend. Called inside the cell's
own subprocess (runner/worker.py)."""

from __future__ import annotations

from typing import Any

from wattgap.backends import BACKENDS
from wattgap.cells import Cell
from wattgap.config import SweepConfig
from wattgap.measure.flops import Work
from wattgap.results import CellResult
from wattgap.workloads import WORKLOADS, Events, Known
from wattgap.workloads.base import Emit


def run_cell(
    cell: Cell,
    config: SweepConfig,
    emit: Emit,
    work: Work | None = None,
    idle_power: dict[str, Any] | None = None,
) -> CellResult:
    """Measure ``cell``. ``work``, when known from an earlier cell of the same model, workload and
    backend, spares the FLOP and traffic count, whose first use in a process costs seconds. ``idle_power``
    (the run's, by energy domain) turns gross energy into net energy."""
    known = Known(work, idle_power or {})
    return WORKLOADS[cell.workload].run(cell, config, BACKENDS[cell.backend], Events(emit), known)
