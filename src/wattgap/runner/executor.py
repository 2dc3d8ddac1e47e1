"""Run the pending cells of a run one after another, each isolated, storing each result at once."""

from __future__ import annotations

from typing import Any, Protocol

from wattgap.config import SweepConfig
from wattgap.plan import Cell
from wattgap.results import CellResult
from wattgap.runner.isolate import run_isolated
from wattgap.store.sqlite import Store


class ProgressSink(Protocol):
    """What a front end implements to follow a sweep (the CLI draws progress bars with it)."""

    def cell_started(self, cell: Cell, index: int, total: int) -> None: ...

    def cell_event(self, event: dict[str, Any]) -> None: ...

    def cell_finished(self, result: CellResult) -> None: ...


class SilentProgress:
    def cell_started(self, cell: Cell, index: int, total: int) -> None:
        pass

    def cell_event(self, event: dict[str, Any]) -> None:
        pass

    def cell_finished(self, result: CellResult) -> None:
        pass


def execute(
    store: Store,
    run_id: str,
    config: SweepConfig,
    pending: list[Cell],
    progress: ProgressSink,
    idle_power: dict[str, Any] | None = None,
) -> None:
    """Run ``pending`` in order. The run is marked complete only when every cell has a result; an
    interruption marks it interrupted (``wattgap run --resume`` finishes it) and is re-raised.
    ``idle_power``: the run's idle power by energy domain, for each cell's net energy."""
    flops: dict[tuple[str, str, str], float] = {}  # (model, workload, backend) -> FLOPs per sample
    try:
        for index, cell in enumerate(pending):
            progress.cell_started(cell, index, len(pending))
            key = (cell.model, cell.workload, cell.backend)
            result = run_isolated(cell, config, progress.cell_event, flops.get(key), idle_power)
            if result.flops_per_sample:
                flops.setdefault(key, result.flops_per_sample)
            store.store_result(run_id, result)
            progress.cell_finished(result)
    except BaseException:
        store.set_run_status(run_id, "interrupted")
        raise
    store.set_run_status(run_id, "complete")
