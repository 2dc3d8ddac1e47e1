"""Run one cell in this process: the backend prepares the model, then warmup and the measured window,
then memory and FLOP figures. Called inside the cell's own subprocess (runner/worker.py)."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wattgap.backends import BACKENDS
from wattgap.config import SweepConfig
from wattgap.devices import synchronize
from wattgap.measure import timing
from wattgap.measure.agreement import Agreement, compare_outputs
from wattgap.measure.energy import CellEnergy, EnergyWindow, meters_for
from wattgap.measure.hardware import peak_flops_per_s
from wattgap.measure.memory import DeviceMemory
from wattgap.measure.stats import summarize
from wattgap.plan import Cell
from wattgap.results import CellResult, Memory, Phases

if TYPE_CHECKING:
    import numpy as np

Emit = Callable[[dict[str, Any]], None]


def run_cell(
    cell: Cell,
    config: SweepConfig,
    emit: Emit,
    flops_per_sample: float | None = None,
    idle_power: dict[str, Any] | None = None,
) -> CellResult:
    """Prepare, warm up and measure ``cell``. ``flops_per_sample``, when known from an earlier cell of
    the same model and workload (it does not depend on batch, device, precision or threads), spares the
    FLOP count, whose first use in a process costs seconds. ``idle_power`` (the run's, by energy domain)
    turns gross energy into net energy."""
    if cell.workload == "train-to-accuracy":
        from wattgap.workloads.train_to_accuracy import run_train_to_accuracy

        return run_train_to_accuracy(cell, config, emit, idle_power)
    backend = BACKENDS[cell.backend]
    phases = Phases()
    clock = time.perf_counter
    phase, marks = phase_marker(emit)

    def progress(name: str) -> Callable[[float], None]:
        return lambda fraction: emit({"event": "progress", "phase": name, "fraction": fraction})

    meters = meters_for(cell.device, config.energy)
    prepare_window = EnergyWindow(meters)
    with prepare_window:
        prepared = backend.prepare(cell, config, phase)
        synchronize(cell.device)
    phases.load_s = marks.get("prepare", clock()) - marks.get("load", clock())
    if flops_per_sample is not None:
        prepared.settings["flops_source"] = "reused from an earlier cell of this model and workload"
    elif prepared.count_flops is not None:
        with prepared.context():
            flops_per_sample = prepared.count_flops() / prepared.samples_per_step or None
        prepared.settings["flops_source"] = "counted"
    phases.prepare_s = clock() - marks.get("prepare", clock())
    for name, seconds in prepared.phase_s.items():
        setattr(phases, name, seconds)

    timer = timing.Timer() if prepared.host_timer else _timer(cell.device)
    memory = DeviceMemory(cell.device)
    protocol = config.protocol
    with prepared.context():
        phase("warmup")
        warmup_iters, phases.warmup_s = timing.warm_up(prepared.step, timer, protocol, progress("warmup"))
        memory.reset_peak()
        phase("measure")
        window = EnergyWindow(meters)
        with window:
            measured = timing.measure(prepared.step, timer, protocol, progress("measure"), seed=config.seed)
            synchronize(cell.device)
        accuracy = prepared.evaluate() if prepared.evaluate is not None else None
    agreement = _guardrail(cell, config, prepared.predict, prepared.samples_per_step)
    phases.measure_s = measured.wall_s
    stats = summarize(
        measured.latencies_s,
        protocol.confidence,
        protocol.bootstrap_resamples,
        protocol.noise_iqr_ratio,
        config.seed,
    )
    samples = prepared.samples_per_step * len(measured.latencies_s)
    energy = CellEnergy.from_readings(window.readings, samples, idle_power, prepare_window.readings)
    warnings_energy = energy.warnings
    throughput = samples / measured.wall_s
    achieved = flops_per_sample * throughput if flops_per_sample else None
    peak = peak_flops_per_s(cell.device, cell.precision)
    warnings = list(stats.warnings) + warnings_energy
    if agreement is not None and agreement.degraded:
        warnings.append(
            f"degraded: top-1 agreement with fp32 {agreement.top1:.1%} < {agreement.threshold:.0%}"
            if agreement.top1 is not None
            else "degraded: non-finite outputs"
        )
    if measured.stop_reason != "converged":
        warnings.append(
            f"stopped at {measured.stop_reason} before the median's CI half-width reached "
            f"{protocol.ci_rel_halfwidth:.0%} (it is {stats.median_ci_rel_halfwidth:.1%})"
        )
    return CellResult(
        cell=cell,
        status="ok",
        phases=phases,
        timer=timer.name,
        warmup_iterations=warmup_iters,
        iterations=len(measured.latencies_s),
        stop_reason=measured.stop_reason,
        ci_checks=measured.ci_checks,
        latency=stats,
        latencies_s=measured.latencies_s,
        samples_per_iteration=prepared.samples_per_step,
        throughput_sps=throughput,
        throughput_median_sps=prepared.samples_per_step / stats.median_s if stats.median_s > 0 else None,
        flops_per_sample=flops_per_sample,
        achieved_flops_per_s=achieved,
        peak_flops_per_s=peak,
        flop_utilisation=achieved / peak if achieved and peak else None,
        parameters=prepared.parameters,
        input_shape=list(prepared.input_shape),
        memory=Memory(**memory.read(), host_peak_rss_bytes=peak_rss_bytes()),
        energy=energy,
        accuracy_top1=accuracy,
        agreement=agreement,
        settings=prepared.settings,
        warnings=warnings,
    )


def phase_marker(emit: Emit) -> tuple[Callable[[str], None], dict[str, float]]:
    """The ``phase`` callback a backend calls as each phase starts: it emits the event and records the
    start time in the returned dict, by phase name."""
    marks: dict[str, float] = {}

    def phase(name: str) -> None:
        marks[name] = time.perf_counter()
        emit({"event": "phase", "phase": name})

    return phase, marks


def _guardrail(
    cell: Cell, config: SweepConfig, predict: Callable[[np.ndarray], np.ndarray] | None, batch: int
) -> Agreement | None:
    """Agreement of an inference cell's outputs with the fp32 PyTorch eager reference (which is itself
    the reference, so it has none). The fixed batch is fed in chunks of the cell's batch size, the last
    one padded."""
    if predict is None or cell.workload != "infer" or (cell.backend == "torch-eager" and cell.precision == "fp32"):
        return None
    import numpy as np

    from wattgap.backends.torch_eager import reference_outputs

    inputs, reference, classifier = reference_outputs(cell, config)
    chunks = []
    for first in range(0, len(inputs), batch):
        chunk = inputs[first : first + batch]
        padded = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]), chunk.dtype)])
        chunks.append(predict(padded)[: len(chunk)])
    return compare_outputs(reference, np.concatenate(chunks), classifier, config.min_top1_agreement)


def _timer(device: str) -> timing.Timer:
    if device.startswith("cuda"):
        return timing.CudaEventTimer(device)
    if device == "mps":
        return timing.Timer(sync=lambda: synchronize("mps"))
    return timing.Timer()


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
