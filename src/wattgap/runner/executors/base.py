"""The executor seam: something that runs cell jobs, each isolated, and yields their results as they
finish. The driver (api.py) feeds it jobs lazily and keeps the store writes, the progress display and
the FLOP cache; an executor only runs cells (in local subprocesses, or on a cluster)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from wattgap.cells import Cell
from wattgap.config import SweepConfig
from wattgap.measure.flops import Work
from wattgap.results import CellResult

OnEvent = Callable[[dict[str, Any]], None]  # a running cell's events (phases, progress), as they come


@dataclass(frozen=True)
class CellJob:
    """One cell to run, with what the driver knows that spares the cell work or completes its figures."""

    cell: Cell
    config: SweepConfig
    work: Work | None = None  # FLOPs and traffic per sample, from an earlier cell of its model and workload
    idle_power: dict[str, Any] = field(default_factory=dict)
    repeat: int | None = None  # which of the cell's processes, when it repeats (protocol.repeats)
    sequence: int | None = None  # its place in the order the run's processes run


class Executor(ABC):
    def facts(self, request: dict[str, Any], config: SweepConfig) -> dict[str, Any]:
        """What a process where this executor runs the cells of ``config`` says about its machine
        (runner/machine.py: its devices and fingerprint, or its CPU's roofline), for the plan and the run
        to store. Here: a process on this machine; an executor that runs cells elsewhere asks there."""
        from wattgap.runner.isolate import node_facts

        return node_facts(request, config)

    @abstractmethod
    def submit(self, jobs: Iterable[CellJob], on_event: OnEvent) -> Iterator[CellResult]:
        """Run ``jobs`` and yield one result per job as it finishes (every failure is a result with a
        status, never an exception). ``jobs`` is read lazily: a job is taken when the executor has room
        for it, so the driver can fill in what earlier results taught it."""
