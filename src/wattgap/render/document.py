"""The report's content, built once from stored runs and rendered twice (report/html.py, report/markdown.py):
sections of plain text, tables of strings and plots as SVG. A section appears when the runs hold its data;
an analysis that finds nothing to work on (a ConfigError saying so) leaves its section out. Every string
here is still foreign text: the renderers escape it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TypeVar

from wattgap.analysis.efficiency import EfficiencyParams, efficiency
from wattgap.analysis.memory import batch_limits, memory_curves
from wattgap.analysis.plausibility import rests_on, suspects
from wattgap.analysis.projection import load_entries, project
from wattgap.analysis.recommend import Candidate, Recommendation, recommend
from wattgap.analysis.speedup import matches, pair, ratio
from wattgap.analysis.studies import STUDIES, StudyTable, study
from wattgap.analysis.tradeoff import tradeoff
from wattgap.cells import CELL_FIELDS
from wattgap.errors import ConfigError
from wattgap.render import plots
from wattgap.render.content import Document, Plot, Section, Table, figure_plots
from wattgap.render.format import by_unit, covered, interval, number, quantity, result_notes, seconds
from wattgap.render.views import VIEWS
from wattgap.results import CellResult, Run

T = TypeVar("T")


def _found(analysis: Callable[[], T]) -> T | None:
    """An analysis's answer, or None where it found nothing to work on."""
    try:
        return analysis()
    except ConfigError:
        return None


def _varying(results: Sequence[CellResult]) -> list[str]:
    return [
        name for name in CELL_FIELDS if name != "batch_size" and len({str(getattr(r.cell, name)) for r in results}) > 1
    ]


def _interval(value: float, low: float, high: float, shown: Callable[[float], str]) -> str:
    """A value with its interval; one reading (energy, cost) has none, and shows none."""
    return shown(value) if low == high else f"{shown(value)} [{shown(low)}, {shown(high)}]"


def build(runs: list[Run], generated_at: str | None = None) -> Document:
    """Every section the runs have data for."""
    workloads = list(dict.fromkeys(r.cell.workload for run in runs for r in run.results))
    answers = {
        (objective, workload): _found(lambda o=objective, w=workload: recommend(_only(runs, w), o))  # type: ignore[misc]
        for workload in workloads
        for objective in OBJECTIVES
    }
    sections = [
        _runs(runs),
        _summary(answers),
        _tradeoff(runs),
        _pareto({workload: answers[("throughput", workload)] for workload in workloads}),
        _speedups(runs),
        _energy(runs),
        _memory(runs),
        *_blocks(runs),
        _projection(),
        _cells(runs),
    ]
    title = "wattgap report: " + ", ".join(f"{run.name} ({run.run_id})" for run in runs)
    stamp = generated_at or datetime.now(timezone.utc).isoformat(timespec="seconds")
    return Document(title, stamp, [run.run_id for run in runs], [s for s in sections if s is not None])


def _runs(runs: list[Run]) -> Section:
    overview = Table(["run", "name", "tags", "status", "created", "cells", "ok", "not run", "skipped"], [])
    machines = Table(["run", "host", "cells", "CPU", "cores", "memory", "GPUs", "OS", "Python", "torch", "wattgap"], [])
    settings = Table(
        ["run", "models", "workloads", "backends", "devices", "precisions", "batch", "threads", "processes per cell"],
        [],
    )
    for run in runs:
        counts = run.counts()
        failed = sum(counts[s] for s in ("failed", "oom", "timeout", "crashed"))
        overview.rows.append(
            [
                run.run_id,
                run.name,
                ", ".join(run.tags),
                run.status,
                run.created_at,
                str(len(run.cells)),
                str(counts["ok"]),
                str(failed + counts["pending"]),
                str(counts["skipped"]),
            ]
        )
        ran = Counter(r.machine_id for r in run.results if r.status != "skipped")
        for machine_id, machine in run.machines_used().items():
            cpu = machine.cpu
            machines.rows.append(
                [
                    run.run_id,
                    machine.hostname or "?",
                    str(ran[machine_id]),
                    cpu.model or "?",
                    f"{cpu.physical_cores or '?'} / {cpu.logical_cores or '?'}",
                    quantity(machine.memory_bytes, "B", 1024.0),
                    ", ".join(gpu.name for gpu in machine.gpus) or "none",
                    machine.os or "?",
                    machine.python or "?",
                    str(machine.libraries.get("torch") or "?"),
                    f"{machine.wattgap.get('version', '?')} {machine.wattgap.get('commit') or ''}".strip(),
                ]
            )
        config = run.config
        batches = config.batch_sizes if config.batch_sizes is not None else "default"
        settings.rows.append(
            [
                run.run_id,
                ", ".join(config.models),
                ", ".join(config.workloads),
                ", ".join(config.backends),
                ", ".join(config.devices),
                ", ".join(config.precisions),
                batches if isinstance(batches, str) else ", ".join(map(str, batches)),
                ", ".join(map(str, config.threads)) if config.threads else "physical cores",
                f"{config.protocol.repeats}, {config.order} order",
            ]
        )
    return Section("runs", "Runs, machines and settings", tables=[overview, machines, settings])


OBJECTIVES = {"throughput": "highest throughput", "latency": "lowest p99 latency", "energy": "fewest joules per sample"}


def _score(candidate: Candidate, objective: str) -> str:
    score = candidate.score
    if score is None:
        return "-"
    if objective == "throughput":
        return _interval(score.value, score.low, score.high, lambda v: quantity(v, "samples/s"))
    if objective == "latency":
        return _interval(score.value, score.low, score.high, seconds)
    energy = candidate.result.energy
    label = f" ({energy.label})" if energy is not None else ""
    return f"{number(score.value)} J{label}, one reading"


def _only(runs: list[Run], workload: str) -> list[Run]:
    """The runs with the results of one workload: cells of different workloads do different work."""
    return [run.model_copy(update={"results": [r for r in run.results if r.cell.workload == workload]}) for run in runs]


def _summary(answers: dict[tuple[str, str], Recommendation | None]) -> Section | None:
    columns = [
        "workload",
        "objective",
        "best cell",
        "value [95% interval]",
        "runner-up",
        "statistically tied",
        "caution",
    ]
    table = Table(columns, [])
    for (objective, workload), answer in answers.items():
        if answer is None or answer.best is None:
            continue
        runner = answer.runner_up
        table.rows.append(
            [
                workload,
                OBJECTIVES[objective],
                answer.best.result.cell.label,
                _score(answer.best, objective),
                runner.result.cell.label if runner else "-",
                "yes" if answer.tied else "no",
                rests_on(answer.best.caveats),
            ]
        )
    if not table.rows:
        return None
    text = (
        "The best finished cell per workload and objective among non-degraded cells (wattgap recommend), with "
        "the runner-up; tied means their intervals overlap."
    )
    return Section("summary", "Summary: what to run", [text], tables=[table])


def _tradeoff(runs: list[Run]) -> Section | None:
    answer = _found(lambda: tradeoff(runs))
    if answer is None:
        return None
    varying = _varying([p.result for c in answer.curves for p in c.points])
    figures = figure_plots("throughput", "Throughput against batch size", plots.throughput(answer.curves, varying))
    figures += figure_plots("latency", "Latency against batch size", plots.latency(answer.curves, varying))
    columns = ["curve", "batches", "knee batch", "throughput at the knee [95%]", "highest throughput", "notes"]
    knees = Table(columns, [])
    for curve in answer.curves:
        best = curve.highest
        knee = curve.knee.throughput_sps
        knees.rows.append(
            [
                plots.curve_name(curve.key, varying),
                ", ".join(str(p.batch_size) for p in curve.points),
                str(curve.knee.batch_size),
                _interval(knee.value, knee.low, knee.high, lambda v: quantity(v, "")),
                f"{quantity(best.throughput_sps.value, '')} at batch {best.batch_size}",
                "; ".join(curve.notes),
            ]
        )
    text = (
        f"The knee is the smallest batch reaching {answer.share:.0%} of the curve's highest throughput "
        "(wattgap tradeoff); bands are 95% percentile-bootstrap intervals from the raw samples."
    )
    return Section("tradeoff", "Throughput and latency against batch size", [text], figures, [knees])


def _pareto(answers: dict[str, Recommendation | None]) -> Section | None:
    figures: list[Plot] = []
    front = Table(["cell on the Pareto front", "samples/s", "p99 latency", "J/sample"], [])
    for workload, answer in answers.items():
        if answer is None:
            continue
        candidates = [c for c in (answer.best, answer.runner_up, *answer.others) if c is not None]
        title = f"Latency against throughput, {workload}"
        drawn = figure_plots(f"pareto-{workload}", title, plots.pareto(candidates, answer.pareto, workload))
        figures += drawn
        for c in sorted(answer.pareto, key=lambda c: -c.throughput_sps) if drawn else []:
            joules = "-" if c.j_per_sample is None else number(c.j_per_sample)
            front.rows.append([c.result.cell.label, quantity(c.throughput_sps, ""), seconds(c.latency_s.value), joules])
    if not figures:
        return None
    text = "No other cell of its workload is at least as good in p99 latency, throughput and joules per sample at once."
    return Section("pareto", "Latency against throughput: the Pareto front", [text], figures, [front])


def _study_table(table: StudyTable) -> Table:
    rows = []
    for row in table.rows:
        cells = [str(v) for v in row.key.values()]
        for column in table.value_columns:
            value = row.values.get(column)
            if value is None:
                cells.append("-")
                continue
            estimate = value.estimate
            cells.append(_interval(estimate.value, estimate.low, estimate.high, by_unit(value.unit)))
        rows.append([*cells, row.note])
    return Table([*table.key_columns, *table.value_columns, "note"], rows, caption=table.title)


STUDY_BARS = {"gpu-vs-cpu": "speedup", "frameworks": "TensorFlow latency change", "precisions": "int8 / CPU fp32"}


def _speedups(runs: list[Run]) -> Section | None:
    figures: list[Plot] = []
    tables: list[Table] = []
    paragraphs: list[str] = []
    for name in STUDIES:
        table = _found(lambda name=name: study(name, runs))  # type: ignore[misc]
        if table is None:
            continue
        figures += figure_plots(f"study-{name}", f"Study {name}", plots.study_bars(table, STUDY_BARS[name]))
        tables.append(_study_table(table))
        paragraphs += [f"{name}: {note}" for note in table.notes]
    for run in runs:
        for by, baseline in (("backend", "torch-eager"), ("precision", "fp32")):
            values = {
                str(getattr(r.cell, by)) for r in run.results if r.status == "ok" and r.latencies_s and not r.probe
            }
            if len(values) < 2:
                continue
            chosen = baseline if baseline in values else None
            found = _found(lambda run=run, by=by, chosen=chosen: matches(run, run, by, chosen))  # type: ignore[misc]
            if found is None or not found[1]:
                continue
            # the ratios of every pair, then the intervals of the pairs the chart keeps only
            chosen, matched, _ = found
            kept = [matched[i] for i in plots.kept_bars([ratio(a, b) for a, b in matched], "x")]
            drawn = [pair(a, b, {}, 0) for a, b in kept]
            names = [
                f"{getattr(p.b.cell, by)} vs {getattr(p.a.cell, by)}: {p.b.cell.model} b{p.b.cell.batch_size}"
                + (f" {p.b.cell.device}" if by != "device" else "")
                for p in drawn
            ]
            values_ci = [(p.speedup, p.ci_low, p.ci_high) for p in drawn]
            title = f"speedup by {by} over {chosen}, run {run.run_id}"
            rest = f"by wattgap compare {run.run_id} {run.run_id} --by {by}"
            chart = plots.bars(title, names, values_ci, "x", rest, of=len(matched))
            figures += figure_plots(f"speedup-{by}-{run.run_id}", title, chart)
    if not figures and not tables:
        return None
    text = "Ratios of throughput per sample (batch / median latency) with 95% bootstrap intervals; 1 is parity."
    return Section("speedups", "Speedups", [text, *paragraphs], figures, tables)


def _energy(runs: list[Run]) -> Section | None:
    table = Table(["run", "cell", "energy label", "basis", "energy", "samples/J", "top-1", "accuracy per kWh"], [])
    names: list[str] = []
    values: list[tuple[float, float, float]] = []
    for run in runs:
        _, rows = efficiency(run, EfficiencyParams())
        for row in rows:
            if row.energy_j is None:
                continue
            table.rows.append(
                [
                    run.run_id,
                    row.label,
                    row.energy_label,
                    row.basis,
                    f"{number(row.energy_j)} J",
                    "-" if row.samples_per_j is None else number(row.samples_per_j),
                    "-" if row.accuracy is None else f"{row.accuracy:.3f}",
                    "-" if row.accuracy_per_kwh is None else number(row.accuracy_per_kwh),
                ]
            )
            if row.samples_per_j is not None:
                names.append(f"{row.label} ({row.energy_label})")
                values.append((row.samples_per_j, row.samples_per_j, row.samples_per_j))
    if not table.rows:
        return None
    figures = figure_plots(
        "energy",
        "Samples per joule",
        plots.bars("samples per joule, each labelled measured or estimated", names, values, "samples/J"),
    )
    text = (
        "Energy per cell as each meter gave it: 'measured' from a hardware counter, 'estimated' from a documented "
        "model (the CPU's TDP and utilisation where no counter is readable). Accuracy per kWh needs a dataset."
    )
    return Section("energy", "Energy: what each joule buys", [text], figures, [table])


def _memory(runs: list[Run]) -> Section | None:
    figures: list[Plot] = []
    table = Table(["run", "configuration", "memory", "degree", "budget", "largest batch (bound / fit)", "search"], [])
    for run in runs:
        curves = _found(lambda run=run: memory_curves(run))  # type: ignore[misc]
        if not curves:
            continue
        varying = _varying([r for r in run.results if r.status in ("ok", "oom")])
        title = f"Peak memory against batch size, run {run.run_id}"
        figures += figure_plots(f"memory-{run.run_id}", title, plots.memory(curves, varying))
        for curve in curves:
            search = curve.search
            table.rows.append(
                [
                    run.run_id,
                    plots.curve_name(curve.key, varying),
                    curve.source,
                    "-" if curve.fit is None else str(curve.fit.degree),
                    quantity(curve.budget_bytes, "B", 1024.0),
                    f"{curve.largest_batch or '-'} / {curve.largest_batch_fit or '-'}",
                    "-" if search is None else f"{search.largest_batch or 'none'}: {search.ended}",
                ]
            )
        for limit in batch_limits(run):
            if not any(tuple(limit.key.items()) == tuple(c.key.items()) for c in curves):
                table.rows.append([run.run_id, plots.curve_name(limit.key, varying), "-", "-", "-", "-", limit.ended])
    if not table.rows:
        return None
    text = (
        "Peak device memory on GPUs, the cell process's peak RSS elsewhere, fitted by a polynomial whose degree "
        "leave-one-out cross-validation chose; crosses mark batches that ran out of memory."
    )
    return Section("memory", "Memory against batch size", [text], figures, [table])


def _blocks(runs: list[Run]) -> list[Section | None]:
    """The section of each kind of workload block the runs' finished cells carry (render/views)."""
    carried = [r for run in runs for r in run.results if r.status == "ok" and r.block is not None]
    kinds = dict.fromkeys(r.block.kind for r in carried if r.block is not None)
    return [VIEWS[kind].section([r for r in carried if r.block is not None and r.block.kind == kind]) for kind in kinds]


def _projection() -> Section:
    entries, source = load_entries(None)
    answer = project(entries, source)
    figures = figure_plots("projection", "Memory projection", plots.projection(answer))
    outgrow = [
        f"{name} outgrow one accelerator's memory {'from ' + str(year) if year else 'not before ' + str(answer.until)}"
        for name, year in answer.outgrows.items()
    ]
    text = (
        f"From {answer.source}: log10(bytes) fitted on the year by polynomial least squares, the degree chosen "
        "by leave-one-out cross-validation (at most 2), with 95% prediction intervals (wattgap project memory)."
    )
    return Section("projection", "Memory needs by year: the projection", [text, *outgrow, *answer.notes], figures)


# ±proc: how far the medians of a cell's processes differ (cv), when it repeats
CELL_COLUMNS = ["run", "cell", "status", "median", "±CI", "±proc", "p95", "samples/s", "peak memory", "energy", "notes"]


def _cells(runs: list[Run]) -> Section:
    table = Table(CELL_COLUMNS, [], caption="Every cell; click a column heading to sort")
    for run in runs:
        flagged = suspects(run)
        for result in run.results:
            latency, energy = result.latency, result.energy
            memory = result.memory.device_peak_allocated_bytes or result.memory.host_peak_rss_bytes
            degraded = result.agreement is not None and result.agreement.degraded
            noisy = latency is not None and latency.noisy
            between = latency.between_repeat_cv if latency else None
            joules = "-" if energy is None or energy.energy_j is None else f"{number(energy.energy_j)} J {energy.label}"
            table.rows.append(
                [
                    run.run_id,
                    result.cell.label,
                    result.status,
                    seconds(latency.median_s) if latency else "-",
                    interval(latency) + covered(latency),
                    f"{between:.1%}" if between is not None else "-",
                    seconds(latency.p95_s) if latency else "-",
                    quantity(result.throughput_median_sps, "").strip(),
                    quantity(memory, "B", 1024.0),
                    joules,
                    result_notes(result, flagged.get(result.cell_id, "")),
                ]
            )
            table.sort_keys.append(
                [
                    None,
                    None,
                    None,
                    latency.median_s if latency else None,
                    latency.median_ci_rel_halfwidth if latency else None,
                    between,
                    latency.p95_s if latency else None,
                    result.throughput_median_sps,
                    float(memory) if memory else None,
                    energy.energy_j if energy else None,
                    None,
                ]
            )
            loud = result.noise is not None and bool(result.noise.suspect)
            if result.status != "ok":
                flag = "skipped" if result.status == "skipped" else "failed"
            else:
                flag = "degraded" if degraded else "suspect" if loud else "noisy" if noisy else ""
            table.row_flags.append(flag)
    return Section("cells", "Every cell", tables=[table])
