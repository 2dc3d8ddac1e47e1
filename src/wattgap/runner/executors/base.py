"""The executor seam: something that runs cell jobs, each isolated, on one or several nodes, and yields
their results as they finish. The driver feeds it jobs lazily and keeps the store writes, the progress
display and the FLOP cache; an executor only runs cells (in local subprocesses, or on a cluster), says
which nodes it runs them on, answers the driver's questions about each node there (``facts``), and
marks each result with the machine of the node that ran it (``CellJob.ran_on``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from wattgap.cells import Cell
from wattgap.config import SweepConfig
from wattgap.measure.flops import Work
from wattgap.results import CellResult

OnEvent = Callable[[dict[str, Any]], None]  # a running cell's events (phases, progress), as they come
HOME = "home"  # the node of the machine the sweep runs on: the run's own machine


@dataclass(frozen=True)
class Node:
    """A node as the driver took its facts before its cells ran: the id of its machine in the store
    (None: the run's own) and its idle power, which the cells it runs subtract for net energy."""

    machine_id: str | None = None
    idle_power: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CellJob:
    """One cell to run, with what the driver knows that spares the cell work or completes its figures."""

    cell: Cell
    config: SweepConfig
    work: Work | None = None  # FLOPs and traffic per sample, from an earlier cell of its model and workload
    nodes: Mapping[str, Node] = field(default_factory=lambda: {HOME: Node()})  # Executor.nodes, by name
    repeat: int | None = None  # which of the cell's processes, when it repeats (protocol.repeats)
    sequence: int | None = None  # its place in the order the run's processes run
    alone: bool = False  # the next job is planned from its result (a batch search): nothing runs beside it

    def ran_on(self, node: str, result: CellResult) -> CellResult:
        """``result`` marked with the machine of ``node``, where the executor ran it."""
        return result.model_copy(update={"machine_id": self.nodes[node].machine_id})


class Executor(ABC):
    def nodes(self, config: SweepConfig) -> list[str]:
        """The names of the nodes where this executor runs the cells of ``config``, HOME first when it
        uses this machine. Here: this machine alone."""
        return [HOME]

    def facts(self, request: dict[str, Any], config: SweepConfig, node: str = HOME) -> dict[str, Any]:
        """What a process on ``node``, started as its cells of ``config`` are, says about its machine
        (runner/machine.py: its devices and fingerprint, its idle power, or its CPU's roofline), for the
        plan and the run to store. Here: a process on this machine; an executor that runs cells elsewhere
        asks there."""
        from wattgap.runner.isolate import node_facts

        return node_facts(request, config)

    @abstractmethod
    def submit(self, jobs: Iterable[CellJob], on_event: OnEvent) -> Iterator[CellResult]:
        """Run ``jobs`` and yield one result per job as it finishes (every failure is a result with a
        status, never an exception). ``jobs`` is read lazily: a job is taken when the executor has room
        for it, so the driver can fill in what earlier results taught it."""
