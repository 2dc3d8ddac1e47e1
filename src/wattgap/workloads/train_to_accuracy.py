"""Train until the validation top-1 reaches ``target_accuracy`` or ``max_epochs`` pass (its settings:
``workloads: {train-to-accuracy: {target_accuracy: 0.9, max_epochs: 10}}``). Each epoch (its
training steps, then the validation pass) is one energy window; the curve keeps, per epoch, cumulative
compute time, cumulative energy and top-1. Time- and energy-to-accuracy are read off the curve at the
first epoch that meets the target. The data is on the device (or host, for end-to-end cells) before the
first window opens; there is no warmup: the first epoch's start-up costs belong to the time to accuracy.
Each epoch visits the training split in a seeded shuffled order, in batches of the cell's batch size."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from wattgap.backends.base import Needs
from wattgap.blocks import EpochPoint, Training
from wattgap.measure.energy import CellEnergy, EnergyReading, EnergyWindow, merge_readings, meters_for
from wattgap.measure.memory import peak_rss_bytes
from wattgap.results import Memory
from wattgap.workloads import assembly
from wattgap.workloads.base import Events, Known, TrainSettings, Workload

if TYPE_CHECKING:
    from wattgap.backends.base import Backend, Prepared
    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.results import CellResult


class TrainingSettings(TrainSettings):
    """train-to-accuracy's settings: Adam at 0.001 trains the zoo from scratch without tuning (Conv6 has no
    normalisation layers, and SGD at 0.01 leaves it at chance on digits)."""

    optimizer: Literal["sgd", "adam"] = "adam"

    target_accuracy: float | None = Field(None, gt=0, le=1)  # validation top-1 that ends the training
    max_epochs: int = Field(10, ge=1, le=100_000)  # the cap: training ends there, target reached or not


class TrainToAccuracy(Workload):
    name = "train-to-accuracy"
    description = "epochs on real data until the validation top-1 reaches target_accuracy"
    needs = Needs("fit", dataset="required")
    settings_model = TrainingSettings

    def run(self, cell: Cell, config: SweepConfig, backend: Backend, events: Events, known: Known) -> CellResult:
        own = config.settings("workloads", self.name, TrainingSettings)
        clock = time.perf_counter
        meters = meters_for(cell.device, config.energy)
        prepared, phases, prepare_window = assembly.prepare(
            backend, cell, config, events, meters, self.needs_for(config)
        )
        if prepared.train_batch is None or prepared.evaluate is None:
            raise TypeError(f"{backend.name} prepared no training batches or validation for {cell.workload}")
        events.phase("measure")
        phases.prepare_s = events.between("prepare", "measure")
        latencies: list[float] = []
        windows: list[list[EnergyReading]] = []
        curve: list[EpochPoint] = []
        elapsed_s, energy_j, net_j = 0.0, 0.0, 0.0
        reached = False
        for epoch in range(1, own.max_epochs + 1):
            window = EnergyWindow(meters)
            started = clock()
            with window:
                latencies += _epoch(prepared, cell, config, epoch)
                top1 = prepared.evaluate()
                prepared.sync()
            elapsed_s += clock() - started
            windows.append(window.readings)
            epoch_energy = CellEnergy.from_readings(window.readings, prepared.train_samples, known.idle_power)
            energy_j += epoch_energy.energy_j if epoch_energy.energy_j is not None else float("nan")
            net_j += epoch_energy.net_energy_j if epoch_energy.net_energy_j is not None else float("nan")
            curve.append(
                EpochPoint(
                    epoch=epoch, time_s=elapsed_s, energy_j=_finite(energy_j), net_energy_j=_finite(net_j), top1=top1
                )
            )
            events.progress("measure")(epoch / own.max_epochs)
            events.emit({"event": "epoch", "epoch": epoch, "top1": top1, "time_s": elapsed_s})
            if own.target_accuracy is not None and top1 >= own.target_accuracy:
                reached = True
                break
        phases.measure_s = elapsed_s
        events.mark("finish")

        samples = prepared.train_samples * len(curve)
        energy = CellEnergy.from_readings(merge_readings(windows), samples, known.idle_power, prepare_window.readings)
        stats = assembly.statistics(latencies, config)
        last = curve[-1]
        training = Training(
            target_accuracy=own.target_accuracy,
            max_epochs=own.max_epochs,
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
        warnings = []
        if own.target_accuracy is not None and not reached:
            warnings.append(
                f"target top-1 {own.target_accuracy:g} not reached in {own.max_epochs} epochs "
                f"(best {training.best_top1:.4f})"
            )
        step_time_s = sum(latencies)
        return assembly.cell_result(
            cell,
            config,
            events,
            prepared,
            phases,
            stats,
            latencies,
            energy,
            warnings,
            timer="perf_counter_ns, device synchronised after each step",
            warmup_iterations=0,
            iterations=len(latencies),
            stop_reason="target_reached" if reached else "max_epochs",
            throughput_sps=samples / step_time_s if step_time_s > 0 else None,
            memory=Memory(host_peak_rss_bytes=peak_rss_bytes()),
            accuracy_top1=last.top1,
            block=training,
        )


def _epoch(prepared: Prepared, cell: Cell, config: SweepConfig, epoch: int) -> list[float]:
    """One pass over the training split in a seeded order (a function of the seed and the epoch); the
    latency of each step, the device synchronised after it."""
    assert prepared.train_batch is not None
    order = np.random.default_rng(config.seed * 100_003 + epoch).permutation(prepared.train_samples)
    clock = time.perf_counter_ns
    latencies = []
    for first in range(0, len(order), cell.batch_size):
        indices = order[first : first + cell.batch_size]
        begin = clock()
        prepared.train_batch(indices)
        prepared.sync()
        latencies.append((clock() - begin) * 1e-9)
    return latencies


def _finite(value: float) -> float | None:
    return value if value == value else None  # NaN marks an epoch whose energy was unavailable
