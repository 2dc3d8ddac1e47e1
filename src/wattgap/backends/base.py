"""The backend interface. A backend declares what it can run (Capabilities), says why it cannot run a
given cell before anything starts, and, inside the cell's subprocess, prepares a model into a step."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from wattgap.config import SweepConfig
    from wattgap.devices import Hardware
    from wattgap.plan import Cell


@dataclass(frozen=True)
class Capabilities:
    device_kinds: frozenset[str]
    precisions: frozenset[str]
    workloads: frozenset[str]


@dataclass
class PreparedCell:
    """What a backend hands the cell runner: one iteration as a callable, the context it runs under,
    a way to count the FLOPs of one iteration, and how the backend applied the cell's settings."""

    step: Callable[[], Any]
    samples_per_step: int
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    count_flops: Callable[[], int] | None = None  # FLOPs of one step, counted by running it once
    parameters: int | None = None
    input_shape: tuple[int, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    evaluate: Callable[[], float] | None = None  # top-1 on the dataset's validation split, when one is set
    # Inference on one host float32 batch of ``samples_per_step`` inputs, returning float32 outputs: the
    # guardrail compares it with the fp32 PyTorch reference.
    predict: Callable[[np.ndarray], np.ndarray] | None = None
    host_timer: bool = False  # time with the host clock even on CUDA (the work is not on torch's stream)
    phase_s: dict[str, float] = field(default_factory=dict)  # export_s, calibration_s, compile_s, build_s


@dataclass
class FitPrepared:
    """What a backend hands the train-to-accuracy loop: an epoch over the training split (shuffled by the
    epoch number, returning each step's latency in seconds, the device synchronised after each step) and
    the validation top-1. The data is already where the cell wants it before any of this is timed."""

    train_epoch: Callable[[int], list[float]]
    evaluate: Callable[[], float]
    train_samples: int
    sync: Callable[[], None]
    parameters: int | None = None
    input_shape: tuple[int, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)


def missing_packages(names: tuple[str, ...], extra: str) -> str:
    """Why a backend is unavailable when its packages are not importable (checked without importing)."""
    import importlib.util

    missing = [name for name in names if importlib.util.find_spec(name) is None]
    return f"{', '.join(missing)} not installed (pip install 'wattgap[{extra}]')" if missing else ""


class Backend(ABC):
    name: str
    description: str
    capabilities: Capabilities

    @abstractmethod
    def unavailable_reason(self) -> str:
        """Why this backend cannot run on this machine at all; empty when it can. Must be cheap."""

    def unsupported_reason(self, cell: Cell, hardware: Hardware) -> str:
        """Why this backend cannot run ``cell`` on ``hardware``; empty when it can."""
        missing = self.unavailable_reason()
        if missing:
            return missing
        kind = cell.device.partition(":")[0]
        caps = self.capabilities
        if kind not in caps.device_kinds:
            return f"{self.name} does not run on {kind} (it runs on {', '.join(sorted(caps.device_kinds))})"
        if cell.precision not in caps.precisions:
            return f"{self.name} has no {cell.precision} (it has {', '.join(sorted(caps.precisions))})"
        if cell.workload not in caps.workloads:
            return f"{self.name} has no {cell.workload} workload"
        return ""

    @abstractmethod
    def prepare(self, cell: Cell, config: SweepConfig, phase: Callable[[str], None]) -> PreparedCell:
        """Build and prepare the model for ``cell`` (runs inside the cell's subprocess). ``phase`` is
        called with the name of each phase as it starts ("load", "prepare")."""

    def prepare_fit(self, cell: Cell, config: SweepConfig, phase: Callable[[str], None]) -> FitPrepared:
        """Build the model and load the dataset for a train-to-accuracy cell. Backends that declare the
        workload implement it."""
        raise NotImplementedError(f"{self.name} has no train-to-accuracy workload")
