"""Result types: what one cell produced and what a run holds. Plain data: formatting lives in render/."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, model_validator

from wattgap.blocks import COLUMNS as BLOCK_COLUMNS
from wattgap.blocks import AnyBlock
from wattgap.cells import Cell
from wattgap.config import SweepConfig
from wattgap.machines import Environment, Machine
from wattgap.measure.energy import CellEnergy
from wattgap.measure.flops import Work
from wattgap.measure.guardrail import Agreement
from wattgap.measure.noise import NoiseAudit
from wattgap.measure.protocol import PROBE
from wattgap.measure.stats import LatencyStats

if TYPE_CHECKING:
    import pandas

# 2: energy, accuracy_top1, training, agreement; 3: the traffic counts; 4: the noise audit; 5: repeats (repeat,
# sequence, repeats); 6: the workload's block (``block`` with its ``kind``; 2-5 stored train-to-accuracy's as
# ``training``, read into the block); 7: ``machine_id``; 8: the latency percentiles' intervals
# (``latency.percentile_ci_s``, ``latency.resamples``); 9: the drift between runs that widened the interval of
# the median, with the run's own interval (``latency.drift``). Older read with them unset
RESULT_SCHEMA_VERSION = 9
Status = Literal["ok", "skipped", "failed", "oom", "timeout", "crashed"]
STATUSES: tuple[str, ...] = ("ok", "skipped", "failed", "oom", "timeout", "crashed")


class Phases(BaseModel):
    """Seconds spent in each phase of the cell's subprocess. Only ``measure_s`` is in the measurement.
    startup, load, prepare, warmup, measure, finish, exit and other add up to ``total_s``; export,
    calibration, compile and build are parts of prepare."""

    startup_s: float | None = None  # interpreter start and imports, until the cell begins
    load_s: float | None = None  # the backend's framework imported, model built and moved to the device
    prepare_s: float | None = None  # inputs, precision, optimiser, FLOP count; and the four below
    export_s: float | None = None  # ONNX export
    calibration_s: float | None = None  # int8 calibration and quantization
    compile_s: float | None = None  # torch.compile / XLA / first run of a session
    read_s: float | None = None  # the graph read by the runtime (OpenVINO)
    build_s: float | None = None  # engine build (TensorRT) or session creation
    warmup_s: float | None = None
    measure_s: float | None = None  # wall time of the timed blocks
    finish_s: float | None = None  # after the window: validation top-1, guardrail, the result put together
    exit_s: float | None = None  # from the result's arrival to the subprocess's end (framework teardown)
    other_s: float | None = None  # the rest: interpreter start, stopping checks between blocks, result transfer
    total_s: float | None = None  # the whole subprocess, as the parent saw it

    @classmethod
    def summed(cls, phases: list[Phases]) -> Phases:
        """Each phase summed over several processes (a cell's repeats): the time the cell cost in all."""
        totals: dict[str, float] = {}
        for one in phases:
            for name, seconds in one.model_dump().items():
                if seconds is not None:
                    totals[name] = totals.get(name, 0.0) + seconds
        return cls(**totals)

    def close(self, total_s: float, exit_s: float) -> None:
        """Set the total, the exit, and what no named phase covers, so that the phases add up to it."""
        self.exit_s = exit_s
        tiles = (self.startup_s, self.load_s, self.prepare_s, self.warmup_s, self.measure_s, self.finish_s, exit_s)
        self.total_s = total_s
        self.other_s = max(0.0, total_s - sum(t for t in tiles if t is not None))


class Memory(BaseModel):
    device_peak_allocated_bytes: int | None = None
    device_peak_reserved_bytes: int | None = None
    device_used_bytes: int | None = None  # device-wide, from NVML, at the end of the window
    host_peak_rss_bytes: int | None = None  # the cell's subprocess, whole life


ENERGY_COLUMNS = ("energy_j", "net_energy_j", "power_w", "j_per_sample", "samples_per_j", "prepare_energy_j")
AGREEMENT_COLUMNS = ("top1", "max_abs_diff", "mean_rel_diff", "degraded")


class Repeat(BaseModel):
    """One of a cell's fresh processes, as its combined result keeps it (``protocol.repeats`` > 1). The
    whole result of each is in the store's repeats table; the combined result's ``latencies_s`` holds
    their samples one after another, ``samples`` of them each."""

    repeat: int
    sequence: int | None = None
    status: Status
    reason: str = ""
    started_at: str | None = None
    samples: int = 0
    median_s: float | None = None
    throughput_sps: float | None = None
    suspect: list[str] = Field(default_factory=list)  # its noise audit's reasons


class CellResult(BaseModel):
    schema_version: int = RESULT_SCHEMA_VERSION
    cell: Cell
    status: Status
    reason: str = ""
    repeat: int | None = None  # which of the cell's processes this is, when the cell repeats (from 0)
    sequence: int | None = None  # its place in the order the run's processes ran (from 0)
    machine_id: str | None = None  # the machine that ran it (Run.machine_of); None: the run's own
    repeats: list[Repeat] = Field(default_factory=list)  # a combined result: each process, in repeat order
    started_at: str | None = None
    finished_at: str | None = None
    phases: Phases = Field(default_factory=Phases)
    timer: str | None = None
    warmup_iterations: int | None = None
    iterations: int | None = None
    stop_reason: str | None = None
    ci_checks: int | None = None
    latency: LatencyStats | None = None
    latencies_s: list[float] = Field(default_factory=list)
    samples_per_iteration: int | None = None
    throughput_sps: float | None = None  # samples processed / measured wall time
    throughput_median_sps: float | None = None  # batch / median latency (GDEV-AI, DEEP-GAP)
    flops_per_sample: float | None = None
    weight_traffic_elements: float | None = None  # per step: elements of weights read and written (measure/flops.py)
    activation_traffic_elements_per_sample: float | None = None  # every other element read and written
    achieved_flops_per_s: float | None = None
    peak_flops_per_s: float | None = None
    flop_utilisation: float | None = None
    parameters: int | None = None
    input_shape: list[int] = Field(default_factory=list)
    memory: Memory = Field(default_factory=Memory)
    energy: CellEnergy | None = None
    accuracy_top1: float | None = None  # validation top-1 on the config's dataset
    block: AnyBlock | None = None  # what the cell's workload adds, when it adds anything (blocks/)
    agreement: Agreement | None = None  # inference outputs against the fp32 PyTorch reference
    noise: NoiseAudit | None = None  # was the machine quiet in the window (measure/noise.py)
    settings: dict[str, Any] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _training_is_a_block(cls, data: Any) -> Any:
        """Results stored before schema 6 kept train-to-accuracy's fields as ``training``: its block now."""
        if isinstance(data, dict) and "training" in data:
            data = dict(data)
            training = data.pop("training")
            if isinstance(training, dict):
                training = {"kind": "train-to-accuracy", **training}
            if training is not None and data.get("block") is None:
                data["block"] = training
        return data

    @property
    def cell_id(self) -> str:
        return self.cell.cell_id

    @property
    def probe(self) -> bool:
        """A probe of a batch search: a few iterations that showed whether the batch fits, not a
        measurement; the analyses of time and energy pass over it (measure/protocol.py)."""
        return self.stop_reason == PROBE

    def sample_groups(self) -> list[list[float]]:
        """The latency samples per process: one group, or one per repeat (for a hierarchical bootstrap)."""
        if not self.repeats:
            return [self.latencies_s]
        groups, start = [], 0
        for repeat in self.repeats:
            if repeat.samples:
                groups.append(self.latencies_s[start : start + repeat.samples])
                start += repeat.samples
        return groups

    @property
    def work(self) -> Work | None:
        """What was counted of the step (for the next cells of its model, workload and backend)."""
        if self.flops_per_sample is None:
            return None
        return Work(
            flops_per_sample=self.flops_per_sample,
            weight_traffic_elements=self.weight_traffic_elements,
            activation_traffic_elements_per_sample=self.activation_traffic_elements_per_sample,
        )

    def flat(self) -> dict[str, Any]:
        """One flat row: cell fields, status and headline metrics (no raw samples)."""
        row: dict[str, Any] = {"cell_id": self.cell_id, **self.cell.model_dump(), "machine_id": self.machine_id}
        row.update(status=self.status, reason=self.reason, stop_reason=self.stop_reason)
        latency = self.latency.model_dump(exclude={"warnings", "repeat_medians_s"}) if self.latency else {}
        row.update({f"latency_{key}": value for key, value in latency.items()})
        row.update(
            iterations=self.iterations,
            throughput_wall_sps=self.throughput_sps,  # samples / measured wall time
            throughput_median_sps=self.throughput_median_sps,  # batch / median latency
            flops_per_sample=self.flops_per_sample,
            achieved_flops_per_s=self.achieved_flops_per_s,
            flop_utilisation=self.flop_utilisation,
            parameters=self.parameters,
        )
        row.update(self.memory.model_dump())
        energy = self.energy or CellEnergy()
        row["energy_label"] = energy.label if self.energy else None
        row.update({name: getattr(energy, name) for name in ENERGY_COLUMNS})
        row["accuracy_top1"] = self.accuracy_top1
        row.update({f"agreement_{name}": getattr(self.agreement, name, None) for name in AGREEMENT_COLUMNS})
        row.update(dict.fromkeys(BLOCK_COLUMNS))  # every registered block's columns, so that rows align
        row.update(self.block.columns() if self.block is not None else {})
        row.update({f"phase_{k}": v for k, v in self.phases.model_dump().items()})
        row["precision_applied"] = self.settings.get("precision_applied")
        row["warnings"] = "; ".join(self.warnings)
        return row


@dataclass(frozen=True)
class RunState:
    """Where a stored run stands, read without its results: its status and how many of its cells ended
    in each status (``pending``: no result yet)."""

    run_id: str
    status: str
    counts: dict[str, int]
    batch_search: bool

    @property
    def finished(self) -> bool:
        """Complete, every cell with its result: nothing is left for ``--resume`` to run."""
        return self.status == "complete" and not self.counts["pending"]

    @property
    def all_ran(self) -> bool:
        """Some cell ran and none is pending or failed (a batch search ends on out-of-memory cells: they are
        its answer, not a failure)."""
        expected = ("oom",) if self.batch_search else ()
        failed = sum(self.counts[s] for s in ("failed", "oom", "timeout", "crashed") if s not in expected)
        return bool(self.counts["ok"]) and not self.counts["pending"] and not failed


class Run(BaseModel):
    run_id: str
    name: str
    created_at: str
    finished_at: str | None = None
    status: str
    config: SweepConfig
    environment: Environment
    machines: dict[str, Machine] = Field(default_factory=dict)  # by id: the other machines its results name
    tags: list[str] = Field(default_factory=list)
    cells: list[Cell]
    results: list[CellResult]

    @model_validator(mode="after")
    def _machines_known(self) -> Run:
        unknown = {r.machine_id for r in self.results if r.machine_id} - set(self.machines)
        if unknown:
            raise ValueError(f"its results name machines it does not hold: {', '.join(sorted(unknown))}")
        return self

    def machine_of(self, result: CellResult) -> Machine:
        """The machine that ran ``result``: the run's own, or another its executor used."""
        return self.environment if result.machine_id is None else self.machines[result.machine_id]

    def machines_used(self) -> dict[str | None, Machine]:
        """The machines its results ran on (skipped cells ran nowhere), by id (None: the run's own), in the
        order of its results; the run's own alone when none ran."""
        ids = dict.fromkeys(r.machine_id for r in self.results if r.status != "skipped") or {None: None}
        return {machine_id: self.environment if machine_id is None else self.machines[machine_id] for machine_id in ids}

    @property
    def pending(self) -> list[Cell]:
        done = {r.cell_id for r in self.results}
        return [c for c in self.cells if c.cell_id not in done]

    def counts(self) -> dict[str, int]:
        counts = {status: 0 for status in STATUSES}
        for result in self.results:
            counts[result.status] += 1
        counts["pending"] = len(self.pending)
        return counts

    def state(self) -> RunState:
        return RunState(self.run_id, self.status, self.counts(), self.config.batch_search)

    def to_dataframe(self) -> pandas.DataFrame:
        import pandas

        frame = pandas.DataFrame([r.flat() for r in self.results])
        frame.insert(0, "run_id", self.run_id)
        return frame
