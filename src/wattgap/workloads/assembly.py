"""What every workload does the same way around its own loop: prepare the backend inside an energy
window with the load and prepare phases timed, summarise the latencies, run the guardrail, and put the
CellResult together with the warnings every result carries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wattgap.measure.energy import CellEnergy, EnergyMeter, EnergyWindow
from wattgap.measure.guardrail import guardrail
from wattgap.measure.stats import LatencyStats, summarize
from wattgap.results import CellResult, Phases

if TYPE_CHECKING:
    from wattgap.backends.base import Backend, Needs, Prepared
    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.measure.flops import Work
    from wattgap.workloads.base import Events


def prepare(
    backend: Backend, cell: Cell, config: SweepConfig, events: Events, meters: list[EnergyMeter], needs: Needs
) -> tuple[Prepared, Phases, EnergyWindow]:
    """The backend's Prepared model, the phases so far (load_s), and the energy window of the preparation
    (its readings become the result's prepare energy). The device is synchronised inside the window."""
    window = EnergyWindow(meters)
    with window:
        prepared = backend.prepare(cell, config, events.phase, needs)
        prepared.sync()
    phases = Phases(load_s=events.between("start", "prepare"))  # the framework's import is load time too
    for name, seconds in prepared.phase_s.items():
        setattr(phases, name, seconds)
    return prepared, phases, window


def statistics(latencies_s: list[float], config: SweepConfig) -> LatencyStats:
    protocol = config.protocol
    return summarize(
        latencies_s, protocol.confidence, protocol.bootstrap_resamples, protocol.noise_iqr_ratio, config.seed
    )


def cell_result(
    cell: Cell,
    config: SweepConfig,
    events: Events,
    prepared: Prepared,
    phases: Phases,
    stats: LatencyStats,
    latencies_s: list[float],
    energy: CellEnergy,
    warnings: list[str],
    **fields: Any,
) -> CellResult:
    """An ok result: the shared fields, the guardrail (inference cells), and the warnings of the
    statistics, the energy and the guardrail before the workload's own ``warnings``. The finish phase
    runs from the workload's "finish" mark to the end of this."""
    agreement = guardrail(
        cell,
        prepared.predict,
        config.model_options(cell.model),
        config.seed,
        config.guardrail_samples,
        config.min_top1_agreement,
        config.max_output_rel_diff,
    )
    notes = list(stats.warnings) + energy.warnings
    if agreement is not None and agreement.degraded:
        notes.append(
            f"degraded: top-1 agreement with fp32 {agreement.top1:.1%} < {agreement.threshold:.0%}"
            if agreement.top1 is not None
            else f"degraded: {agreement.text()}"
        )
    phases.finish_s = events.since("finish")
    fields.setdefault(  # a workload whose samples are not one step each says None
        "throughput_median_sps", prepared.samples_per_step / stats.median_s if stats.median_s > 0 else None
    )
    return CellResult(
        cell=cell,
        status="ok",
        phases=phases,
        latency=stats,
        latencies_s=latencies_s,
        samples_per_iteration=prepared.samples_per_step,
        parameters=prepared.parameters,
        input_shape=list(prepared.input_shape),
        energy=energy,
        agreement=agreement,
        settings=prepared.settings,
        warnings=notes + warnings,
        **fields,
    )


def rates(cell: Cell, work: Work, throughput_sps: float) -> dict[str, Any]:
    """A timed cell's throughput and what its work per sample makes of it: FLOPs and traffic per sample,
    the FLOP rate achieved, the device's peak and their ratio (None where a count or the peak is unknown)."""
    from wattgap.measure.hardware import peak_flops_per_s

    achieved = work.flops_per_sample * throughput_sps if work.flops_per_sample else None
    peak = peak_flops_per_s(cell.device, cell.precision)
    return {
        "throughput_sps": throughput_sps,
        "flops_per_sample": work.flops_per_sample,
        "weight_traffic_elements": work.weight_traffic_elements,
        "activation_traffic_elements_per_sample": work.activation_traffic_elements_per_sample,
        "achieved_flops_per_s": achieved,
        "peak_flops_per_s": peak,
        "flop_utilisation": achieved / peak if achieved and peak else None,
    }
