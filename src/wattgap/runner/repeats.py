"""A cell measured in several fresh processes (``protocol.repeats``): their results, each stored as it
arrives, combined into the cell's one result once the last is in, or as soon as one of them fails (a cell
that fails in one process is not measured again: its result is that failure, the repeats that ran kept in
it). The combined median and interval come from a hierarchical bootstrap over the processes
(measure/stats.py); throughput and energy are totals over the repeats' windows; the noise audit is the
worst any process saw; the phases are summed (what the cell cost)."""

from __future__ import annotations

from typing import Any

from wattgap.config import SweepConfig
from wattgap.measure.energy import CellEnergy, merge_readings
from wattgap.measure.noise import NoiseAudit
from wattgap.measure.stats import summarize_repeats
from wattgap.results import CellResult, Memory, Phases, Repeat


def _record(part: CellResult) -> Repeat:
    return Repeat(
        repeat=part.repeat or 0,
        sequence=part.sequence,
        status=part.status,
        reason=part.reason,
        started_at=part.started_at,
        samples=len(part.latencies_s) if part.status == "ok" else 0,
        median_s=part.latency.median_s if part.latency else None,
        throughput_sps=part.throughput_sps,
        suspect=part.noise.suspect if part.noise else [],
    )


def _memory(parts: list[CellResult]) -> Memory:
    """The largest of each memory figure over the processes."""
    peaks: dict[str, int] = {}
    for part in parts:
        for name, value in part.memory.model_dump().items():
            if value is not None:
                peaks[name] = max(peaks.get(name, 0), value)
    return Memory(**peaks)


def _which(repeats: list[int], count: int) -> str:
    return "" if len(repeats) == count else "repeat " + ", ".join(str(r + 1) for r in repeats) + ": "


def _warnings(parts: list[CellResult]) -> list[str]:
    """The processes' own warnings (their latency statistics' aside: the combined ones replace them), each
    text once, naming the repeats it came from unless it came from all."""
    seen: dict[str, list[int]] = {}
    for part in parts:
        own = set(part.latency.warnings) if part.latency else set()
        for text in part.warnings:
            if text not in own:
                seen.setdefault(text, []).append(part.repeat or 0)
    return [f"{_which(repeats, len(parts))}{text}" for text, repeats in seen.items()]


def _noise(parts: list[CellResult]) -> NoiseAudit | None:
    """The worst any process saw: the largest steal, other processes' CPU and load, the lowest GPU clock;
    each suspect reason named with its repeat."""
    audits = [(part.repeat or 0, part.noise) for part in parts if part.noise is not None]
    if not audits:
        return None

    def worst(name: str) -> float | None:
        values = [getattr(audit, name) for _, audit in audits if getattr(audit, name) is not None]
        return max(values) if values else None

    gpus = [audit.gpu for _, audit in audits if audit.gpu is not None]
    frequencies = [audit.cpu_mhz for _, audit in audits if audit.cpu_mhz is not None]
    return NoiseAudit(
        window_s=sum(audit.window_s for _, audit in audits),
        load_before=worst("load_before"),
        steal_share=worst("steal_share"),
        other_cpu_cores=worst("other_cpu_cores"),
        cpu_mhz=min(frequencies) if frequencies else None,
        gpu=min(gpus, key=lambda gpu: gpu.min_sm_clock_share) if gpus else None,
        suspect=[f"repeat {repeat + 1}: {reason}" for repeat, audit in audits for reason in audit.suspect],
        notes=list(dict.fromkeys(note for _, audit in audits for note in audit.notes)),
    )


def _energy(parts: list[CellResult], idle_power: dict[str, Any]) -> CellEnergy | None:
    """The repeats' measured windows as one (energy and time summed per domain, over all their samples);
    the prepare energy is the first process's: what one preparation costs."""
    energies = [part.energy for part in parts if part.energy is not None]
    if len(energies) != len(parts):
        return None
    return CellEnergy.from_readings(
        merge_readings([energy.readings for energy in energies]),
        sum(energy.samples or 0 for energy in energies),
        idle_power,
        energies[0].prepare_readings,
    )


def combine(parts: list[CellResult], config: SweepConfig, idle_power: dict[str, Any]) -> CellResult:
    """The cell's result from the results of its processes (``parts``, any order)."""
    parts = sorted(parts, key=lambda part: part.repeat or 0)
    first = parts[0]
    by_time = sorted(parts, key=lambda part: part.sequence or 0)
    count = config.repeats_for(first.cell.workload)
    shared: dict[str, Any] = {
        "repeat": None,
        "sequence": None,
        "machine_id": first.machine_id,  # an executor runs a cell's processes on one machine
        "repeats": [_record(part) for part in parts],
        "started_at": by_time[0].started_at,
        "finished_at": by_time[-1].finished_at,
        "phases": Phases.summed([part.phases for part in parts]),
        "memory": _memory(parts),
        "noise": _noise(parts),
    }
    failed = next((part for part in parts if part.status != "ok"), None)
    if failed is not None:
        reason = f"repeat {(failed.repeat or 0) + 1} of {count}: {failed.reason}"
        return CellResult(cell=first.cell, status=failed.status, reason=reason, **shared)
    protocol = config.protocol
    groups = [part.latencies_s for part in parts]
    stats = summarize_repeats(
        groups, protocol.confidence, protocol.bootstrap_resamples, protocol.noise_iqr_ratio, config.seed
    )
    per_step = first.samples_per_iteration or first.cell.batch_size
    iterations = sum(len(group) for group in groups)
    window_s = sum(part.phases.measure_s or 0.0 for part in parts)
    throughput = per_step * iterations / window_s if window_s > 0 else None
    achieved = first.flops_per_sample * throughput if first.flops_per_sample and throughput else None
    peak = first.peak_flops_per_s
    energy = _energy(parts, idle_power)
    return first.model_copy(
        deep=True,
        update={
            **shared,
            "latency": stats,
            "latencies_s": [sample for group in groups for sample in group],
            "iterations": iterations,
            "warmup_iterations": sum(part.warmup_iterations or 0 for part in parts),
            "stop_reason": ", ".join(dict.fromkeys(part.stop_reason or "" for part in parts)),
            "ci_checks": sum(part.ci_checks or 0 for part in parts),
            "throughput_sps": throughput,
            "throughput_median_sps": per_step / stats.median_s if stats.median_s > 0 else None,
            "achieved_flops_per_s": achieved,
            "flop_utilisation": achieved / peak if achieved and peak else None,
            "energy": energy,
            "warnings": list(stats.warnings) + _warnings(parts),
        },
    )
