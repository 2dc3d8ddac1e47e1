"""The timed workloads of the protocol (measure/protocol.py): ``infer`` (a forward pass under the backend's
inference mode) and ``train`` (forward, loss, backward, optimiser step). Warmup, then a measured window that runs
until the median's confidence interval is narrow enough or a cap is hit; memory, FLOPs and energy over
that window; the dataset's top-1 afterwards, when the cell has one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wattgap.measure import timing
from wattgap.measure.energy import CellEnergy, EnergyWindow, meters_for
from wattgap.measure.flops import Work
from wattgap.measure.memory import DeviceMemory, peak_rss_bytes
from wattgap.measure.noise import NoiseWindow
from wattgap.results import Memory
from wattgap.text import number
from wattgap.workloads import assembly
from wattgap.workloads.base import Events, Known, Workload

if TYPE_CHECKING:
    from wattgap.backends.base import Backend, Needs
    from wattgap.cells import Cell
    from wattgap.config import ComponentSettings, SweepConfig
    from wattgap.results import CellResult


class Timed(Workload):
    def __init__(
        self, name: str, description: str, needs: Needs, settings_model: type[ComponentSettings] | None = None
    ) -> None:
        self.name = name
        self.description = description
        self.needs = needs
        if settings_model is not None:
            self.settings_model = settings_model

    def run(self, cell: Cell, config: SweepConfig, backend: Backend, events: Events, known: Known) -> CellResult:
        meters = meters_for(cell.device, config.energy)
        prepared, phases, prepare_window = assembly.prepare(
            backend, cell, config, events, meters, self.needs_for(config)
        )
        step = prepared.step
        if step is None:
            raise TypeError(f"{backend.name} prepared no step for {cell.workload}")
        work = known.work
        if work is not None:
            prepared.settings["flops_source"] = "reused from an earlier cell of this model and workload"
        elif prepared.count_step is not None:
            with prepared.context():
                counted = prepared.count_step()
            work = Work.of(counted, prepared.samples_per_step, traffic=self.needs.mode == "infer")
            prepared.settings["flops_source"] = "counted"
        work = work or Work()

        timer = timing.timer_for(cell.device, prepared.host_timer)
        memory = DeviceMemory(cell.device)
        protocol = config.protocol
        with prepared.context():
            events.phase("warmup")
            phases.prepare_s = events.between("prepare", "warmup")
            warmup_iters, phases.warmup_s = timing.warm_up(step, timer, protocol, events.progress("warmup"))
            memory.reset_peak()
            events.phase("measure")
            window = EnergyWindow(meters)
            audit = NoiseWindow(config.noise, cell.device)
            with audit, window:
                measured = timing.measure(step, timer, protocol, events.progress("measure"), seed=config.seed)
                prepared.sync()
            events.mark("finish")
            accuracy = prepared.evaluate() if prepared.evaluate is not None else None
        phases.measure_s = measured.wall_s

        stats = assembly.statistics(measured.latencies_s, config)
        samples = prepared.samples_per_step * len(measured.latencies_s)
        energy = CellEnergy.from_readings(window.readings, samples, known.idle_power, prepare_window.readings)
        throughput = samples / measured.wall_s
        warnings = []
        if len(measured.latencies_s) < protocol.min_iters:
            warnings.append(
                f"capped: {len(measured.latencies_s)} iterations in the max_time_s={number(protocol.max_time_s)} s "
                f"cap, under min_iters={protocol.min_iters} (the hard cap of --max-time)"
            )
        if measured.stop_reason != "converged":
            warnings.append(
                f"stopped at {measured.stop_reason} before the median's CI half-width reached "
                f"{protocol.ci_rel_halfwidth:.0%} (it is {stats.median_ci_rel_halfwidth:.1%})"
            )
        return assembly.cell_result(
            cell,
            config,
            events,
            prepared,
            phases,
            stats,
            measured.latencies_s,
            energy,
            warnings,
            timer=timer.name,
            warmup_iterations=warmup_iters,
            iterations=len(measured.latencies_s),
            stop_reason=measured.stop_reason,
            ci_checks=measured.ci_checks,
            **assembly.rates(cell, work, throughput),
            memory=Memory(**memory.read(), host_peak_rss_bytes=peak_rss_bytes()),
            accuracy_top1=accuracy,
            noise=audit.audit,
        )
