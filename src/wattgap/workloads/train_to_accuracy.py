"""Train until the validation top-1 reaches ``target_accuracy`` or ``max_epochs`` pass. Each epoch (its
training steps, then the validation pass) is one energy window; the curve keeps, per epoch, cumulative
compute time, cumulative energy and top-1. Time- and energy-to-accuracy are read off the curve at the
first epoch that meets the target. The data is on the device (or host, for end-to-end cells) before the
first window opens; there is no warmup: the first epoch's start-up costs belong to the time to accuracy."""

from __future__ import annotations

import time
from typing import Any

from wattgap.backends import BACKENDS
from wattgap.config import SweepConfig
from wattgap.measure.energy import CellEnergy, EnergyReading, EnergyWindow, merge_readings, meters_for
from wattgap.measure.stats import summarize
from wattgap.plan import Cell
from wattgap.results import CellResult, EpochPoint, Memory, Phases, Training
from wattgap.runner.cell import Emit, peak_rss_bytes, phase_marker


def run_train_to_accuracy(
    cell: Cell, config: SweepConfig, emit: Emit, idle_power: dict[str, Any] | None = None
) -> CellResult:
    backend = BACKENDS[cell.backend]
    clock = time.perf_counter
    phase, marks = phase_marker(emit)

    meters = meters_for(cell.device, config.energy)
    prepare_window = EnergyWindow(meters)
    with prepare_window:
        fit = backend.prepare_fit(cell, config, phase)
        fit.sync()
    phases = Phases(load_s=marks["prepare"] - marks["load"], prepare_s=clock() - marks["prepare"])

    phase("measure")
    latencies: list[float] = []
    windows: list[list[EnergyReading]] = []
    curve: list[EpochPoint] = []
    elapsed_s, energy_j, net_j = 0.0, 0.0, 0.0
    reached = False
    for epoch in range(1, config.max_epochs + 1):
        window = EnergyWindow(meters)
        started = clock()
        with window:
            latencies += fit.train_epoch(epoch)
            top1 = fit.evaluate()
            fit.sync()
        elapsed_s += clock() - started
        windows.append(window.readings)
        epoch_energy = CellEnergy.from_readings(window.readings, fit.train_samples, idle_power)
        energy_j += epoch_energy.energy_j if epoch_energy.energy_j is not None else float("nan")
        net_j += epoch_energy.net_energy_j if epoch_energy.net_energy_j is not None else float("nan")
        curve.append(
            EpochPoint(
                epoch=epoch, time_s=elapsed_s, energy_j=_finite(energy_j), net_energy_j=_finite(net_j), top1=top1
            )
        )
        emit({"event": "progress", "phase": "measure", "fraction": epoch / config.max_epochs})
        emit({"event": "epoch", "epoch": epoch, "top1": top1, "time_s": elapsed_s})
        if config.target_accuracy is not None and top1 >= config.target_accuracy:
            reached = True
            break
    phases.measure_s = elapsed_s

    samples = fit.train_samples * len(curve)
    energy = CellEnergy.from_readings(merge_readings(windows), samples, idle_power, prepare_window.readings)
    protocol = config.protocol
    stats = summarize(
        latencies, protocol.confidence, protocol.bootstrap_resamples, protocol.noise_iqr_ratio, config.seed
    )
    last = curve[-1]
    training = Training(
        target_accuracy=config.target_accuracy,
        max_epochs=config.max_epochs,
        reached=reached,
        epochs=len(curve),
        time_to_accuracy_s=last.time_s if reached else None,
        energy_to_accuracy_j=last.energy_j if reached else None,
        net_energy_to_accuracy_j=last.net_energy_j if reached else None,
        total_time_s=elapsed_s,
        total_energy_j=last.energy_j,
        final_top1=last.top1,
        best_top1=max(point.top1 for point in curve),
        curve=curve,
    )
    warnings = list(stats.warnings) + energy.warnings
    if config.target_accuracy is not None and not reached:
        warnings.append(
            f"target top-1 {config.target_accuracy:g} not reached in {config.max_epochs} epochs "
            f"(best {training.best_top1:.4f})"
        )
    step_time_s = sum(latencies)
    return CellResult(
        cell=cell,
        status="ok",
        phases=phases,
        timer="perf_counter_ns, device synchronised after each step",
        warmup_iterations=0,
        iterations=len(latencies),
        stop_reason="target_reached" if reached else "max_epochs",
        latency=stats,
        latencies_s=latencies,
        samples_per_iteration=cell.batch_size,
        throughput_sps=samples / step_time_s if step_time_s > 0 else None,
        throughput_median_sps=cell.batch_size / stats.median_s if stats.median_s > 0 else None,
        parameters=fit.parameters,
        input_shape=list(fit.input_shape),
        memory=Memory(host_peak_rss_bytes=peak_rss_bytes()),
        energy=energy,
        accuracy_top1=last.top1,
        training=training,
        settings=fit.settings,
        warnings=warnings,
    )


def _finite(value: float) -> float | None:
    return value if value == value else None  # NaN marks an epoch whose energy was unavailable
