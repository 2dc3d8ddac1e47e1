"""Terminal rendering with rich: result tables, run listings, comparisons, the environment."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from wattgap.analysis.efficiency import JOULES_PER, Efficiency, EfficiencyParams
from wattgap.analysis.speedup import Comparison
from wattgap.results import CellResult, Run

STATUS_STYLE = {"ok": "green", "skipped": "dim", "failed": "red", "oom": "magenta", "timeout": "yellow"}


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def quantity(value: float | None, unit: str, base: float = 1000.0) -> str:
    if value is None:
        return "-"
    prefixes = ["", "k", "M", "G", "T", "P"] if base == 1000.0 else ["", "Ki", "Mi", "Gi", "Ti", "Pi"]
    for prefix in prefixes:
        if abs(value) < base:
            return f"{value:.3g} {prefix}{unit}"
        value /= base
    return f"{value:.3g} E{unit}"


def energy_text(result: CellResult) -> str:
    """Gross energy of the measured window with how it was obtained, e.g. "8.7 J estimated"."""
    energy = result.energy
    if energy is None:
        return "-"
    if energy.energy_j is None:
        return energy.label
    return f"{quantity(energy.energy_j, 'J')} {energy.label}"


def _notes(result: CellResult) -> str:
    if result.status != "ok":
        return result.reason
    notes = []
    if result.latency and result.latency.noisy:
        notes.append("noisy")
    training = result.training
    if training is not None:
        notes.append(
            f"target reached in {training.epochs} epochs, {seconds(training.time_to_accuracy_s)}"
            if training.reached
            else f"{training.epochs} epochs, target not reached"
        )
    elif result.stop_reason and result.stop_reason != "converged":
        notes.append(f"stopped: {result.stop_reason}")
    if result.agreement is not None:
        agreement = result.agreement
        top1 = f"top-1 agrees {agreement.top1:.0%}" if agreement.top1 is not None else "outputs"
        notes.append(("DEGRADED: " if agreement.degraded else "") + f"{top1} with fp32")
    applied = result.settings.get("precision_applied")
    if applied and applied != result.cell.precision:
        notes.append(str(applied))
    return ", ".join(notes)


def results_table(run: Run) -> Table:
    table = Table(title=f"run {run.run_id} ({run.name}, {run.status})", title_justify="left")
    for column, justify in (
        ("cell", "left"),
        ("status", "left"),
        ("median", "right"),
        ("±CI", "right"),
        ("p95", "right"),
        ("throughput", "right"),
        ("FLOP/s", "right"),
        ("peak mem", "right"),
        ("energy", "right"),
        ("J/sample", "right"),
        ("top-1", "right"),
        ("n", "right"),
        ("notes", "left"),
    ):
        table.add_column(column, justify=justify, overflow="fold")  # type: ignore[arg-type]
    by_id = {r.cell_id: r for r in run.results}
    for cell in run.cells:
        result = by_id.get(cell.cell_id)
        if result is None:
            table.add_row(cell.label, "[dim]pending[/]", *["-"] * 10, "")
            continue
        latency = result.latency
        memory = result.memory.device_peak_allocated_bytes or result.memory.host_peak_rss_bytes
        style = STATUS_STYLE.get(result.status, "red")
        table.add_row(
            cell.label,
            f"[{style}]{result.status}[/]",
            seconds(latency.median_s) if latency else "-",
            f"{latency.median_ci_rel_halfwidth:.1%}" if latency else "-",
            seconds(latency.p95_s) if latency else "-",
            quantity(result.throughput_sps, "sps"),
            quantity(result.achieved_flops_per_s, "FLOP/s")
            + (f" ({result.flop_utilisation:.0%})" if result.flop_utilisation else ""),
            quantity(memory, "B", 1024.0),
            energy_text(result),
            quantity(result.energy.j_per_sample, "J") if result.energy else "-",
            f"{result.accuracy_top1:.3f}" if result.accuracy_top1 is not None else "-",
            str(latency.n) if latency else "-",
            escape(_notes(result)),
        )
    return table


def summary_line(run: Run) -> str:
    counts = run.counts()
    parts = [f"{count} {status}" for status, count in counts.items() if count]
    return f"{len(run.cells)} cells: " + ", ".join(parts)


def idle_line(run: Run) -> str:
    idle = run.environment.get("idle_power") or {}
    if not idle:
        return "idle power: not measured (energy.idle_s 0, or energy disabled): no net energy"
    parts = [
        f"{domain} {quantity(entry.get('power_w'), 'W')} ({entry.get('label')}, {entry.get('meter')})"
        for domain, entry in idle.items()
    ]
    return "idle power: " + "; ".join(parts)


def efficiency_table(run_id: str, rank: str, rows: list[Efficiency], params: EfficiencyParams) -> Table:
    unit = params.electricity_unit
    table = Table(
        title=f"run {run_id}: efficiency, ranked by {rank}; {params.energy} energy\n{params.formula()}",
        title_justify="left",
    )
    for column in (
        "#",
        "cell",
        "per",
        "energy",
        "label",
        "top-1",
        "samples/J",
        "top-1/kWh",
        "GQI",
        "gCO2e",
        f"cost {params.currency}",
        "time",
        "notes",
    ):
        table.add_column(column, justify="left" if column in ("cell", "per", "label", "notes") else "right")
    for position, row in enumerate(rows, 1):
        table.add_row(
            str(position),
            row.label,
            row.basis,
            quantity(row.energy_j / JOULES_PER[unit] if row.energy_j is not None else None, unit),
            row.energy_label,
            f"{row.accuracy:.3f}" if row.accuracy is not None else "-",
            f"{row.samples_per_j:.3g}" if row.samples_per_j is not None else "-",
            f"{row.accuracy_per_kwh:.4g}" if row.accuracy_per_kwh is not None else "-",
            f"{row.gqi:.4g}" if row.gqi is not None else "-",
            f"{row.co2_g:.3g}" if row.co2_g is not None else "-",
            f"{row.cost:.3g}" if row.cost is not None else "-",
            seconds(row.time_s),
            row.note,
        )
    return table


def runs_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(title="runs", title_justify="left")
    for column in ("run_id", "name", "created_at", "status", "cells", "ok", "skipped", "failed"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            *(str(row[c]) for c in ("run_id", "name", "created_at", "status", "cells", "ok", "skipped", "failed"))
        )
    return table


def comparison_table(comparison: Comparison) -> Table:
    level = f"{comparison.confidence:.0%}"
    if comparison.run_a == comparison.run_b:
        sides = f"run {comparison.run_a}: A = {comparison.by} {comparison.baseline}, B = the other values"
    else:
        sides = f"A = run {comparison.run_a}, B = run {comparison.run_b}"
    table = Table(
        title=f"speedup of B over A by {comparison.by} ({sides}); time ratio A/B, {level} bootstrap CI",
        title_justify="left",
    )
    for column in (
        "matched on",
        f"A {comparison.by}",
        f"B {comparison.by}",
        "A median",
        "B median",
        "speedup",
        f"{level} CI",
        "B latency vs A",
        "note",
    ):
        table.add_column(column, justify="left" if column in ("matched on", "note") else "right")
    for pair in comparison.pairs:
        assert pair.a.latency is not None and pair.b.latency is not None
        matched = "/".join(str(v) for k, v in pair.key.items() if v is not None and k != "threads")
        table.add_row(
            matched,
            str(getattr(pair.a.cell, comparison.by)),
            str(getattr(pair.b.cell, comparison.by)),
            seconds(pair.a.latency.median_s),
            seconds(pair.b.latency.median_s),
            f"{pair.speedup:.3g}x",
            f"{pair.ci_low:.3g}-{pair.ci_high:.3g}",
            f"{1 / pair.speedup - 1:+.1%} ({1 / pair.ci_high - 1:+.1%} to {1 / pair.ci_low - 1:+.1%})",
            pair.note,
        )
    return table


def print_comparison(console: Console, comparison: Comparison) -> None:
    console.print(comparison_table(comparison))
    if comparison.geomean is not None:
        console.print(
            f"geometric mean speedup over {len(comparison.pairs)} pairs: {comparison.geomean:.3g}x "
            f"({comparison.confidence:.0%} CI {comparison.geomean_ci_low:.3g}-{comparison.geomean_ci_high:.3g})"
        )
    if comparison.unmatched:
        console.print(f"[dim]{comparison.unmatched} cell(s) of A had no match in B[/]")


def environment_tables(environment: dict[str, Any]) -> list[Table]:
    machine = Table(title="machine", title_justify="left", show_header=False)
    machine.add_column("what")
    machine.add_column("value")
    cpu = environment["cpu"]
    machine.add_row("cpu", f"{cpu['model']} ({cpu['physical_cores']} physical / {cpu['logical_cores']} logical cores)")
    machine.add_row("cpu features", ", ".join(cpu["flags"]) or "-")
    machine.add_row("memory", quantity(environment["memory_bytes"], "B", 1024.0))
    for gpu in environment["gpus"]:
        machine.add_row(
            f"gpu {gpu['index']}",
            f"{gpu['name']}, {quantity(gpu['memory_bytes'], 'B', 1024.0)}, compute {gpu['capability']}",
        )
    machine.add_row("nvidia driver", str(environment.get("nvidia_driver") or "-"))
    torch = environment.get("torch", {})
    machine.add_row("cuda (torch build)", str(torch.get("cuda") or "-"))
    machine.add_row("cudnn", str(torch.get("cudnn") or "-"))
    machine.add_row("os / python", f"{environment['os']} / {environment['python']}")
    versions = ", ".join(f"{k} {v}" for k, v in environment["libraries"].items() if v)
    machine.add_row("libraries", versions)
    wattgap = environment["wattgap"]
    machine.add_row("wattgap", f"{wattgap['version']} ({wattgap['commit'] or 'no git checkout'})")
    usable = Table(title="devices and backends", title_justify="left")
    for column in ("kind", "name", "usable", "why not"):
        usable.add_column(column)
    for kind in ("devices", "backends"):
        for name, entry in environment[kind].items():
            usable.add_row(kind[:-1], name, "yes" if entry["usable"] else "[red]no[/]", escape(entry["reason"]))
    return [machine, usable]
