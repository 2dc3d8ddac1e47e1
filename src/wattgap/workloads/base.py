"""The workload interface. A workload owns its loop: it asks the cell's backend for one Prepared model,
drives it (warmup and a timed window, epochs to a target accuracy, a load generator...) and returns the
cell's result, assembled by workloads/assembly.py like every other workload's."""

from __future__ import annotations

import dataclasses
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from wattgap.backends.base import Optimizer
from wattgap.config import ComponentSettings

if TYPE_CHECKING:
    from wattgap.backends.base import Backend, Needs
    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.devices import Hardware
    from wattgap.measure.flops import Work
    from wattgap.results import CellResult

Emit = Callable[[dict[str, Any]], None]


class Events:
    """What a cell tells the sweep while it runs (JSON-able events: phases, progress, epochs), and when
    each phase started, so that their durations can be read back."""

    def __init__(self, emit: Emit) -> None:
        self.emit = emit
        self.marks: dict[str, float] = {"start": time.perf_counter()}

    def phase(self, name: str) -> None:
        """Called as each phase starts (the backend calls it for load and prepare)."""
        self.mark(name)
        self.emit({"event": "phase", "phase": name})

    def mark(self, name: str) -> None:
        """Record when ``name`` started without telling the sweep (a phase the progress display omits)."""
        self.marks[name] = time.perf_counter()

    def since(self, name: str) -> float:
        """Seconds since phase ``name`` started (0 when it never did)."""
        now = time.perf_counter()
        return now - self.marks.get(name, now)

    def between(self, first: str, second: str) -> float:
        """Seconds from the start of phase ``first`` to the start of phase ``second``."""
        now = time.perf_counter()
        return self.marks.get(second, now) - self.marks.get(first, now)

    def progress(self, name: str) -> Callable[[float], None]:
        """A callback reporting the fraction done of phase ``name``."""
        return lambda fraction: self.emit({"event": "progress", "phase": name, "fraction": fraction})


@dataclass(frozen=True)
class Known:
    """What the sweep already knows when a cell starts: the work per sample (FLOPs, traffic) from an
    earlier cell of the same model, workload and backend (it depends on neither batch, device, precision
    nor threads), and the run's idle power by energy domain (for net energy)."""

    work: Work | None = None
    idle_power: dict[str, Any] = field(default_factory=dict)


class TrainSettings(ComponentSettings):
    """A training workload's optimiser (the backend makes it: Needs.optimizer)."""

    optimizer: Literal["sgd", "adam"] = "sgd"
    learning_rate: float | None = Field(None, gt=0)  # default: 0.01 with sgd, 0.001 with adam
    momentum: float = Field(0.9, ge=0, lt=1)  # SGD's momentum, Adam's beta1

    def chosen(self) -> Optimizer:
        return Optimizer(
            self.optimizer, self.learning_rate or (0.001 if self.optimizer == "adam" else 0.01), self.momentum
        )


class Workload(ABC):
    name: str
    description: str
    needs: Needs  # what it asks of the backend: the planner skips a backend that cannot, with the reason
    settings_model: type[ComponentSettings] = ComponentSettings  # its own settings (none unless it declares them)
    # Its latency samples are iterations of a batch (batch / median is a throughput): the trade-off curves,
    # the recommendation and the studies read its cells. Not so for serve, whose samples are LoadGen's queries.
    batch_iterations: bool = True

    def needs_for(self, config: SweepConfig) -> Needs:
        """What it asks of the backend in ``config``: its Needs, with the optimiser its settings choose
        when it trains."""
        own = config.settings("workloads", self.name, self.settings_model)
        return dataclasses.replace(self.needs, optimizer=own.chosen()) if isinstance(own, TrainSettings) else self.needs

    def axes(self, config: SweepConfig) -> list[dict[str, Any]]:
        """The cell fields its own settings add as axes of the sweep (train-ddp: each world size); one
        cell per entry. None of its own: one cell."""
        return [{}]

    def cell_reason(self, cell: Cell, hardware: Hardware) -> str:
        """Why this workload cannot run ``cell`` on ``hardware`` whatever the backend; empty when it can."""
        return ""

    @abstractmethod
    def run(self, cell: Cell, config: SweepConfig, backend: Backend, events: Events, known: Known) -> CellResult:
        """Prepare ``cell`` with ``backend``, drive it, and return its result (runs in the cell's
        subprocess; an exception fails the cell and the sweep goes on)."""
