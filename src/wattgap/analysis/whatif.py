"""What a measured inference cell would do on hardware not owned: a roofline estimate, labelled as one.

A cell's work per iteration is its FLOPs and the bytes it moves (measure/flops.py: the elements its
operators read and write, weights once per iteration, activations in proportion to the batch, times the
bytes of an element at the cell's precision). On a device with peak rate P for that precision and
bandwidth W, the roofline time is max(FLOPs / P, bytes / W): the time the device cannot beat. The
estimate scales the measured time by the ratio of the two devices' roofline times, that is, it assumes
the cell reaches the same share of the roofline on the target as where it ran. The target's rates are the
datasheet's (resources/hardware.yaml); the source's are the datasheet's for a known GPU and, for the CPU,
the GEMM rate and copy bandwidth the run measured (measure/roofline.py).

How wrong that is, is measured, not assumed: on every pair of cells a set of runs owns that differ only
in the device or the thread count (a CPU cell and its GPU twin, 1 and 2 threads), each is estimated
from the other and set against its measurement. An estimate states only the error of pairs like itself
(from a CPU to a GPU, or from a GPU to a GPU): a thread count's error says nothing of a GPU's, so without
such pairs an estimate is "unvalidated". It also carries its source's caveats (a SUSPECT or noisy cell:
analysis/plausibility.py) and the spread of the estimates that the same cell's other measurements give
(each process of a repeated cell, the same cell in the other runs from the same machine): each run
measures its CPU's rates anew, so a busy host moves the estimate twice. Pure: stored results in, typed
results out."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from wattgap.analysis.plausibility import caveats, suspects
from wattgap.cells import CELL_FIELDS
from wattgap.errors import ConfigError, field_error
from wattgap.measure.hardware import gpu_entry, known_gpus
from wattgap.results import CellResult, Run

ELEMENT_BYTES = {"fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "int8": 1}
LABEL = "estimate"
UNVALIDATED = "unvalidated"


def device_kind(device: str) -> str:
    return "cpu" if device == "cpu" else "gpu"


@dataclass(frozen=True)
class Roof:
    device: str  # "T4", "cpu (2 threads)"
    peak_flops_per_s: float  # at the cell's precision
    bandwidth_bytes_per_s: float

    def time_s(self, flops: float, moved_bytes: float) -> float:
        return max(flops / self.peak_flops_per_s, moved_bytes / self.bandwidth_bytes_per_s)

    def bound(self, flops: float, moved_bytes: float) -> str:
        return "compute" if flops / self.peak_flops_per_s >= moved_bytes / self.bandwidth_bytes_per_s else "memory"


@dataclass(frozen=True)
class Row:
    result: CellResult
    target: str
    measured_s: float  # median time per iteration where it ran
    flops: float  # per iteration
    moved_bytes: float  # per iteration
    target_roof_s: float  # the roofline time on the target: it cannot be beaten
    bound: str  # what limits the target: compute or memory
    source_roof_s: float | None  # the roofline time where it ran (None: that device's rates are unknown)
    estimate_s: float | None  # measured time scaled by the ratio of roofline times, never below target_roof_s
    label: str = LABEL
    caveats: list[str] = field(default_factory=list)  # the source cell's: SUSPECT, noisy
    # the lowest and highest estimate from each measurement of this cell (its processes, the same cell in
    # the other runs from the same machine), and how many there were; None without an estimate
    estimate_range_s: tuple[float, float, int] | None = None

    @property
    def kind(self) -> str:
        """What the estimate crosses: "cpu to gpu" or "gpu to gpu" (every target is a GPU)."""
        return f"{device_kind(self.result.cell.device)} to gpu"

    @property
    def share(self) -> float | None:
        """The share of its roofline the cell reached where it ran: what the estimate assumes on the
        target. Above 1, the cell beat a bound set by memory bandwidth: its data lived in caches."""
        return self.source_roof_s / self.measured_s if self.source_roof_s else None

    @property
    def estimate_throughput_sps(self) -> float | None:
        return self.result.cell.batch_size / self.estimate_s if self.estimate_s else None

    @property
    def ceiling_throughput_sps(self) -> float:
        """The most the target could do: batch / its roofline time."""
        return self.result.cell.batch_size / self.target_roof_s


@dataclass(frozen=True)
class CheckPair:
    source: CellResult
    target: CellResult
    estimate_s: float
    measured_s: float

    @property
    def error(self) -> float:
        """Estimate over measurement, minus 1: +0.2 is 20% too slow an estimate."""
        return self.estimate_s / self.measured_s - 1

    @property
    def kind(self) -> str:
        """What the pair's estimate crosses: "cpu to cpu" (a thread count), "cpu to gpu", ..."""
        return f"{device_kind(self.source.cell.device)} to {device_kind(self.target.cell.device)}"


@dataclass(frozen=True)
class KindError:
    """The estimator's measured error on the owned pairs of one kind."""

    pairs: int
    median_abs_error: float
    max_abs_error: float


@dataclass(frozen=True)
class ErrorCheck:
    pairs: list[CheckPair]
    by_kind: dict[str, KindError]  # "cpu to cpu" -> its error; kinds without pairs are absent

    def for_row(self, row: Row) -> KindError | None:
        """The error that applies to ``row``: that of pairs of its kind, or None (unvalidated)."""
        return self.by_kind.get(row.kind)


@dataclass(frozen=True)
class WhatIf:
    targets: list[str]
    rows: list[Row]
    check: ErrorCheck
    left_out: dict[str, int] = field(default_factory=dict)  # why a cell has no estimate -> how many
    label: str = LABEL


def target_names() -> list[str]:
    return [str(entry["name"]) for entry in known_gpus()]


def _entry(name: str) -> dict[str, object]:
    for entry in known_gpus():
        if name.lower() in (str(entry["name"]).lower(), str(entry["match"]).lower()):
            return entry
    raise field_error("--target", name, target_names())


def _gpu_roof(entry: dict[str, object], precision: str) -> Roof | None:
    peak, bandwidth = entry.get(precision), entry.get("bandwidth_bytes_per_s")
    if peak is None or bandwidth is None:
        return None
    return Roof(str(entry["name"]), float(peak), float(bandwidth))  # type: ignore[arg-type]


def source_roof(run: Run, result: CellResult) -> Roof | None:
    """The roofline of the device that ran ``result``'s cell, on the machine that ran it: a known GPU's
    datasheet, or the CPU's measured rates at the cell's thread count; None when neither is known for its
    precision."""
    cell, machine = result.cell, run.machine_of(result)
    if cell.device.startswith("cuda"):
        gpu = machine.gpu(cell.device)
        entry = gpu_entry(gpu.name) if gpu is not None else None
        return _gpu_roof(entry, cell.precision) if entry else None
    if cell.device == "cpu":
        rates = (machine.cpu_roofline or {}).get(str(cell.threads))
        peak = (rates or {}).get(f"{cell.precision}_flops_per_s")
        if rates is None or peak is None:
            return None
        return Roof(f"cpu ({cell.threads} threads)", float(peak), float(rates["bandwidth_bytes_per_s"]))
    return None


def work(result: CellResult) -> tuple[float, float] | None:
    """FLOPs and bytes moved per iteration, or None without the counts (older results, training)."""
    per_sample = result.activation_traffic_elements_per_sample
    if result.flops_per_sample is None or per_sample is None or result.weight_traffic_elements is None:
        return None
    batch = result.cell.batch_size
    elements = result.weight_traffic_elements + per_sample * batch
    return result.flops_per_sample * batch, elements * ELEMENT_BYTES[result.cell.precision]


def _scaled(measured_s: float, here_roof_s: float, there_roof_s: float) -> float:
    """The estimate: the same share of the roofline there as here, and never below the roofline there."""
    return max(measured_s * there_roof_s / here_roof_s, there_roof_s)


def _median(result: CellResult) -> float:
    assert result.latency is not None
    return result.latency.median_s


def whatif(runs: list[Run], targets: list[str]) -> WhatIf:
    """Every finished inference cell of ``runs`` estimated on each target, with its caveats and the spread
    of its other measurements' estimates, and the estimator's error on the pairs the runs own."""
    if not targets:
        raise field_error("--target", None, target_names())
    entries = [_entry(name) for name in targets]
    rows: list[Row] = []
    left_out: dict[str, int] = {}
    finished = _finished(runs)
    flagged = {run.run_id: suspects(run) for run in runs}
    history = _measurements(finished)
    for run, result in finished:
        counted = work(result)
        if counted is None:
            reason = "no traffic count (inference cells stored by wattgap before result schema 3)"
            left_out[reason] = left_out.get(reason, 0) + len(entries)
            continue
        flops, moved = counted
        here = source_roof(run, result)
        for entry in entries:
            roof = _gpu_roof(entry, result.cell.precision)
            if roof is None:
                reason = f"{entry['name']} lists no {result.cell.precision} rate"
                left_out[reason] = left_out.get(reason, 0) + 1
                continue
            there_s = roof.time_s(flops, moved)
            here_s = here.time_s(flops, moved) if here else None
            measured = _median(result)
            estimate = _scaled(measured, here_s, there_s) if here_s else None
            same = history.get(_where(run, result))
            spread = _estimate_range(same, there_s) if estimate and same else None
            rows.append(
                Row(
                    result,
                    roof.device,
                    measured,
                    flops,
                    moved,
                    there_s,
                    roof.bound(flops, moved),
                    here_s,
                    estimate,
                    caveats=caveats(result, flagged[run.run_id]),
                    estimate_range_s=spread,
                )
            )
    if not rows and not left_out:
        raise ConfigError(f"whatif: runs {', '.join(r.run_id for r in runs)} hold no finished inference cells")
    return WhatIf([str(e["name"]) for e in entries], rows, check(runs), left_out)


def _measurements(finished: list[tuple[Run, CellResult]]) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """Each cell's measurements on one machine (cell id and the machine's devices -> every process's median
    with the roofline time its own run measured for it), for the range of its estimates."""
    found: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for run, result in finished:
        roof, counted = source_roof(run, result), work(result)
        if roof is None or counted is None:
            continue
        medians = [r.median_s for r in result.repeats if r.status == "ok" and r.median_s] or [_median(result)]
        found.setdefault(_where(run, result), []).extend((median, roof.time_s(*counted)) for median in medians)
    return found


def _where(run: Run, result: CellResult) -> tuple[str, str]:
    """A cell on a machine: its id and the machine's devices, named."""
    return result.cell_id, repr(sorted(run.machine_of(result).device_names().items()))


def _estimate_range(measured: list[tuple[float, float]], there_s: float) -> tuple[float, float, int]:
    """The lowest and highest estimate, on a target whose roofline time is ``there_s``, from ``measured``
    (each process's median, scaled by the roofline its own run measured), and how many there were."""
    estimates = [_scaled(median, here_s, there_s) for median, here_s in measured]
    return min(estimates), max(estimates), len(estimates)


def _finished(runs: list[Run]) -> list[tuple[Run, CellResult]]:
    return [
        (run, result)
        for run in runs
        for result in run.results
        if result.status == "ok" and result.latency is not None and result.cell.workload == "infer" and not result.probe
    ]


def check(runs: list[Run]) -> ErrorCheck:
    """Each owned pair (cells equal but in device and threads, both with a roofline and counts) estimated
    both ways, against what was measured."""
    groups: dict[tuple[tuple[str, object], ...], list[tuple[Run, CellResult]]] = {}
    for run, result in _finished(runs):
        key = tuple((name, getattr(result.cell, name)) for name in CELL_FIELDS if name not in ("device", "threads"))
        groups.setdefault(key, []).append((run, result))
    pairs: list[CheckPair] = []
    for members in groups.values():
        for run_a, a in members:
            for run_b, b in members:
                if a is b or (a.cell.device, a.cell.threads) == (b.cell.device, b.cell.threads):
                    continue
                counted, roof_a, roof_b = work(a), source_roof(run_a, a), source_roof(run_b, b)
                if counted is None or roof_a is None or roof_b is None:
                    continue
                estimate = _scaled(_median(a), roof_a.time_s(*counted), roof_b.time_s(*counted))
                pairs.append(CheckPair(a, b, estimate, _median(b)))
    by_kind: dict[str, list[float]] = {}
    for p in pairs:
        if math.isfinite(p.error):
            by_kind.setdefault(p.kind, []).append(abs(p.error))
    return ErrorCheck(
        pairs,
        {kind: KindError(len(errors), float(np.median(errors)), max(errors)) for kind, errors in by_kind.items()},
    )
