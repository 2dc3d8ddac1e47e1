"""The backend interface. A backend declares what it can run (Capabilities), says why it cannot run a
given cell before anything starts, and, inside the cell's subprocess, prepares the cell's model into one
Prepared model: the callables a workload drives. Workloads own their loops; backends own the model."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from wattgap.config import ComponentSettings

if TYPE_CHECKING:
    import numpy as np

    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.devices import Hardware
    from wattgap.measure.flops import StepCount
    from wattgap.models.inputs import InputSpec

NAMES = {"torch": "PyTorch", "keras": "Keras", "onnx": "ONNX"}  # the frameworks of user models (models/sources)
Phase = Callable[[str], None]  # called with each phase's name as it starts ("load", "prepare")
Predict = Callable[["dict[str, np.ndarray]"], "np.ndarray"]


Mode = Literal["infer", "train", "fit", "ddp"]
MODES: dict[str, str] = {  # what each mode asks Prepared to fill in (below), as a skip reason names it
    "infer": "inference",
    "train": "training steps",
    "ddp": "data-parallel training steps (PyTorch DistributedDataParallel)",
    "fit": "training on a dataset's batches with validation",
}


@dataclass(frozen=True)
class Optimizer:
    """The optimiser a training workload asks for (its settings say which): SGD with momentum, or Adam
    with ``momentum`` as its beta1."""

    name: Literal["sgd", "adam"] = "sgd"
    learning_rate: float = 0.01
    momentum: float = 0.9

    def describe(self) -> str:
        """As recorded in a cell's settings: ``sgd lr=0.01 momentum=0.9``."""
        return f"{self.name} lr={self.learning_rate:g} momentum={self.momentum:g}"


@dataclass(frozen=True)
class Needs:
    """What a workload asks of a backend, so that no backend matches workload names: the ``mode`` its
    Prepared model serves (``infer``: ``step`` is an inference and ``predict`` is filled in for the
    guardrail; ``train``: ``step`` is a whole training step; ``fit``: ``train_batch``, ``train_samples``
    and ``evaluate``), whether the cell's dataset is loaded: ``never``, ``optional`` (when the cell
    names one: inference then measures top-1) or ``required``, and the optimiser a training mode steps."""

    mode: Mode
    dataset: Literal["never", "optional", "required"] = "never"
    optimizer: Optimizer = Optimizer()


@dataclass(frozen=True)
class Capabilities:
    device_kinds: frozenset[str]
    precisions: frozenset[str]
    modes: frozenset[Mode]
    memory_formats: bool = False  # honours a cell's memory_format (PyTorch layouts)
    frameworks: frozenset[str] = frozenset({"torch"})  # the user models it runs besides the zoo (models/sources)


def _nothing() -> None:
    return None


@dataclass
class Lanes:
    """Requests served at once (the serve workload's offline and server scenarios): one ``predict`` per
    lane, each safe to call while the others run, and how they were made (recorded with the result)."""

    predicts: list[Predict]
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Prepared:
    """A model prepared for one cell. What a backend fills in depends on the mode the workload needs:

    - ``step``: one timed iteration (an inference, or a whole training step), for the timed workloads;
    - ``predict``: inference on one host batch of ``samples_per_step`` samples (every input by name, as
      models/inputs.synthesize makes them), returning the first output as float32 (the guardrail compares
      it with the fp32 reference of the model's own framework);
    - ``train_batch`` and ``train_samples``: one optimiser step on the training samples at the given
      indices (the data already staged where the cell wants it), for train-to-accuracy;
    - ``evaluate``: top-1 on the dataset's validation split, when the cell has a dataset;
    - ``lanes``: requests in flight at once for serving, as the backend serves several best (OpenVINO's
      infer requests under its THROUGHPUT hint, concurrent ONNX Runtime runs), given how many (None: the
      backend's own choice); without it, ``predict`` serves one request at a time;
    - ``communication_s``: in ``ddp`` mode (``step`` is then one rank's data-parallel training step, in a
      process group the workload started), the seconds the gradient all-reduce has taken so far.

    ``sync`` waits for the device; ``context`` is what the steps run under (inference mode, autocast)."""

    samples_per_step: int
    step: Callable[[], Any] | None = None
    predict: Predict | None = None
    lanes: Callable[[int | None], Lanes] | None = None
    train_batch: Callable[[np.ndarray], None] | None = None
    train_samples: int = 0
    evaluate: Callable[[], float] | None = None
    sync: Callable[[], None] = _nothing
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    count_step: Callable[[], StepCount] | None = None  # FLOPs and traffic of one step, counted by running it once
    parameters: int | None = None
    input_shape: tuple[int, ...] = ()
    inputs: list[InputSpec] = field(default_factory=list)  # what ``predict`` takes, one sample each (serve's queries)
    settings: dict[str, Any] = field(default_factory=dict)
    host_timer: bool = False  # time with the host clock even on CUDA (the work is not on torch's stream)
    phase_s: dict[str, float] = field(default_factory=dict)  # export_s, calibration_s, compile_s, build_s
    communication_s: Callable[[], float] | None = None


def cores() -> int:
    """The cores this process may run on (what serving lanes fill)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def missing_packages(names: tuple[str, ...], extra: str) -> str:
    """Why a backend is unavailable when its packages are not importable (checked without importing)."""
    import importlib.util

    missing = [name for name in names if importlib.util.find_spec(name) is None]
    return f"{', '.join(missing)} not installed (pip install 'wattgap[{extra}]')" if missing else ""


class Backend(ABC):
    name: str
    description: str
    capabilities: Capabilities
    settings_model: type[ComponentSettings] = ComponentSettings  # its own settings (none unless it declares them)

    @abstractmethod
    def unavailable_reason(self) -> str:
        """Why this backend cannot run on this machine at all; empty when it can. Must be cheap."""

    def unsupported_reason(self, cell: Cell, hardware: Hardware, needs: Needs) -> str:
        """Why this backend cannot run ``cell`` on ``hardware`` as its workload ``needs``; empty when it can."""
        missing = self.unavailable_reason()
        if missing:
            return missing
        kind = cell.device.partition(":")[0]
        caps = self.capabilities
        if kind not in caps.device_kinds:
            return f"{self.name} does not run on {kind} (it runs on {', '.join(sorted(caps.device_kinds))})"
        if cell.precision not in caps.precisions:
            return f"{self.name} has no {cell.precision} (it has {', '.join(sorted(caps.precisions))})"
        if needs.mode not in caps.modes:
            return f"{self.name} has no {MODES[needs.mode]} (the {cell.workload} workload needs it)"
        return ""

    def source_reason(self, model: str, framework: str | None) -> str:
        """Why this backend cannot run ``model``, a ``framework`` model (None: the zoo, or a callable not
        yet built); empty when it can."""
        if framework is None or framework in self.capabilities.frameworks:
            return ""
        runs = " and ".join(NAMES[f] for f in sorted(self.capabilities.frameworks))
        article = "an" if framework == "onnx" else "a"
        return f"{self.name} runs zoo, {runs} models; {model!r} is {article} {NAMES[framework]} model"

    def settings_reason(self, cell: Cell, config: SweepConfig) -> str:
        """Why a setting of the sweep cannot apply to ``cell`` on this backend; empty when it can."""
        caps = self.capabilities
        if cell.memory_format != "auto" and not caps.memory_formats:
            return f"memory_format {cell.memory_format} is a PyTorch layout; {self.name} chooses its own"
        return ""

    @abstractmethod
    def prepare(self, cell: Cell, config: SweepConfig, phase: Phase, needs: Needs) -> Prepared:
        """Build and prepare the model for ``cell`` (runs inside the cell's subprocess), filling in what
        the mode its workload ``needs`` drives (see Prepared)."""
