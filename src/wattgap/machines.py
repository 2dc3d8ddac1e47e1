"""Where cells ran: the facts of one node (``Machine``: its fingerprint, idle power and CPU roofline, taken
on that node before its cells ran) and of a run (``Environment``: the machine it was started on, plus
which user code it measured). Each result names the machine that ran it (``CellResult.machine_id``: the
content hash below; None for the run's own machine), so that one run may hold cells of several machines.

Every field has a default and unknown fields are kept: a fingerprint written by an older or newer
wattgap reads back whole."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Gpu(BaseModel):
    """One GPU as the node's torch saw it (devices.GpuInfo)."""

    model_config = ConfigDict(extra="allow")

    name: str = "unknown GPU"
    memory_bytes: int | None = None
    index: int | None = None
    capability: str | None = None
    multiprocessors: int | None = None


class Cpu(BaseModel):
    """The node's CPU: its model, cores and the vector extensions that decide precision support."""

    model_config = ConfigDict(extra="allow")

    model: str | None = None
    physical_cores: int | None = None
    logical_cores: int | None = None
    flags: list[str] = Field(default_factory=list)


class Usable(BaseModel):
    """Whether a device or backend can run on the node, and why not where not."""

    usable: bool
    reason: str | None = ""


class Machine(BaseModel):
    """One node's facts, as the node itself reported them (runner/machine.py)."""

    model_config = ConfigDict(extra="allow")

    hostname: str = ""
    os: str = ""
    python: str = ""
    cpu: Cpu = Field(default_factory=Cpu)
    memory_bytes: int | None = None
    gpus: list[Gpu] = Field(default_factory=list)
    nvidia_driver: str | None = None
    torch: dict[str, Any] = Field(default_factory=dict)
    libraries: dict[str, str | None] = Field(default_factory=dict)
    library_distributions: dict[str, str] = Field(default_factory=dict)
    thread_variables: dict[str, str | None] = Field(default_factory=dict)
    wattgap: dict[str, Any] = Field(default_factory=dict)
    devices: dict[str, Usable] = Field(default_factory=dict)
    backends: dict[str, Usable] = Field(default_factory=dict)
    # the idle draw of each energy domain (measure.energy.IdlePower, dumped), over ``idle_s`` seconds, of
    # the devices the node's cells use; ``idle_power_reused``: taken from an earlier run (its id and age)
    idle_power: dict[str, dict[str, Any]] = Field(default_factory=dict)
    idle_devices: list[str] = Field(default_factory=list)
    idle_s: float | None = None
    idle_power_reused: dict[str, Any] | None = None
    # the CPU's measured rates at each thread count its cells run ("4": {"fp32_flops_per_s": ...}), or why not
    cpu_roofline: dict[str, dict[str, float]] | None = None
    cpu_roofline_error: str | None = None

    def key(self) -> dict[str, Any]:
        """What must match for two runs to count as made on the same machine (resume, idle reuse, the
        spread between processes): the CPU model, the GPUs and the torch version."""
        return {"cpu": self.cpu.model, "gpus": [gpu.name for gpu in self.gpus], "torch": self.libraries.get("torch")}

    def machine_id(self) -> str:
        """The content hash that names these facts in the store: the same facts, the same id."""
        facts = self.model_dump(mode="json", exclude={"user_models", "drift"})
        return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]

    def device_names(self) -> dict[str, str]:
        """Its devices named by what they are: "cpu" -> the CPU model, "cuda:0" (and "cuda") -> the GPU."""
        named = {f"cuda:{index}": gpu.name for index, gpu in enumerate(self.gpus)}
        if "cuda:0" in named:
            named["cuda"] = named["cuda:0"]
        named["cpu"] = self.cpu.model or "unknown CPU"
        return named

    def gpu(self, device: str) -> Gpu | None:
        """The GPU a cell's ``device`` (cuda, cuda:1) names, or None."""
        if not device.startswith("cuda"):
            return None
        index = int(device.partition(":")[2] or 0)
        return self.gpus[index] if index < len(self.gpus) else None


class Environment(Machine):
    """A run's environment: the machine it was started on (the one its results with no machine id ran
    on) and, for each user model, the identity of its source and what loading it showed."""

    user_models: dict[str, Any] = Field(default_factory=dict)
    # this machine's drift between runs when the run started, measured from the earlier runs of its
    # database, by device family and kind of run ("cpu/one process": a measure.drift.Drift, dumped); the
    # intervals of the run's medians are widened by it as its results are stored
    drift: dict[str, dict[str, Any]] = Field(default_factory=dict)
