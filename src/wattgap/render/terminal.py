"""Terminal rendering with rich: result tables, run listings, comparisons, the environment."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.table import Table
from rich.text import Text

from wattgap.analysis.efficiency import JOULES_PER, Efficiency, EfficiencyParams, default_rank
from wattgap.analysis.memory import BatchLimit, MemoryCurve, batch_limits
from wattgap.analysis.plausibility import highest, rests_on, suspects
from wattgap.analysis.projection import Projection
from wattgap.analysis.recommend import OBJECTIVES, Candidate, Recommendation
from wattgap.analysis.speedup import WIDENED, Comparison
from wattgap.analysis.studies import StudyTable, Value
from wattgap.analysis.tradeoff import Curve, Tradeoff
from wattgap.analysis.whatif import UNVALIDATED, WhatIf
from wattgap.cells import CELL_FIELDS, Cell
from wattgap.machines import Machine
from wattgap.measure.drift import Drift, key_of
from wattgap.measure.stats import LatencyStats
from wattgap.render.content import Table as ContentTable
from wattgap.render.format import by_unit, interval, number, plain, quantity, result_notes, seconds
from wattgap.render.views import VIEWS
from wattgap.render.views.data_parallel import table_of as scaling_table
from wattgap.results import CellResult, Run

if TYPE_CHECKING:
    from wattgap.plan import Plan

STATUS_STYLE = {"ok": "green", "skipped": "dim", "failed": "red", "oom": "magenta", "timeout": "yellow"}


_HEADERS = {"batch_size": "batch"}


def _varying_fields(cells: Sequence[Cell]) -> tuple[list[str], dict[str, object]]:
    """The cell fields whose value differs between the cells (shown as columns), and the others with
    their one value (said once, above the table)."""
    varying, fixed = [], {}
    for name in CELL_FIELDS:
        values = {getattr(cell, name) for cell in cells}
        if len(values) > 1:
            varying.append(name)
        elif values:
            fixed[name] = values.pop()
    return varying, fixed


def _table() -> Table:
    """The style of every table of cells: a rule under the header, no vertical rules, tight padding."""
    return Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)


def _identity_column(table: Table, name: str, values: Iterable[object]) -> None:
    """A column of a cell field that says which row is which: never wrapped, never shortened."""
    header = _HEADERS.get(name, name)
    table.add_column(header, no_wrap=True, min_width=max([len(header), *(len(plain(v)) for v in values)]))


def _shared_line(fixed: dict[str, object], what: str = "every cell") -> Text:
    shared = ", ".join(f"{_HEADERS.get(k, k)} {v}" for k, v in fixed.items() if v is not None and v != "")
    return Text(plain(f"{what}: {shared or '-'}"))


PROBE_LINE = (
    "fits: a probe of --batch-size max, a few iterations that showed the batch fits (its peak memory is what it "
    "measured); the largest batch that fits is measured in full"
)


def _peak_memory(result: CellResult) -> int | None:
    return result.memory.device_peak_allocated_bytes or result.memory.host_peak_rss_bytes


ALL_ROWS = "--rows 0 shows every one, --format json holds all"


def more_rows(total: int, rows_shown: int, what: str, how: str = ALL_ROWS) -> list[Text]:
    """The line under a table cut at ``rows_shown`` (0: not cut) of its ``total`` rows of ``what``."""
    if not rows_shown or total <= rows_shown:
        return []
    return [Text(plain(f"{total - rows_shown} more {what} not shown, of {total}: {how}"), style="dim")]


def run_view(run: Run, rows_shown: int = 0) -> RenderableType:
    """A run for people: the fields every cell shares, once; a table of the cells that ran (or failed)
    with the fields that vary as columns, which never wrap (the first ``rows_shown`` in sweep order, 0 for
    all, and a line saying how many more there are and how to see them); the skipped cells summarised by
    reason; the counts and the idle power. Throughput is given both ways and labelled: batch / median latency
    ("b/med", the studies' definition) and samples / measured wall time ("wall", outliers included)."""
    varying, fixed = _varying_fields(run.cells)
    by_id = {r.cell_id: r for r in run.results}
    flagged = suspects(run)
    shown = [c for c in run.cells if c.cell_id not in by_id or by_id[c.cell_id].status != "skipped"]
    results = [by_id[c.cell_id] for c in shown if c.cell_id in by_id]
    with_top1 = any(r.accuracy_top1 is not None for r in results)
    repeated = any(r.latency is not None and r.latency.repeats > 1 for r in results)
    labels = {r.energy.label for r in results if r.energy is not None}
    one_label = labels.pop() if len(labels) == 1 else None
    title = Text(f"run {run.run_id} (", style="bold")
    title.append(plain(run.name + (f"; tags: {', '.join(run.tags)}" if run.tags else "")))
    title.append(f", {run.status})")
    columns = {
        "status": "left",
        "median": "right",
        "±CI": "right",
        **({"±proc": "right"} if repeated else {}),
        "p95": "right",
        "sps\nb/med": "right",
        "sps\nwall": "right",
        "FLOP/s\n(of peak)": "right",
        "peak\nmemory": "right",
        f"energy J\n{ENERGY_HEADER.get(one_label or '', one_label or '')}": "right",
        "J/\nsample": "right",
        **({"top-1": "right"} if with_top1 else {}),
    }
    rows: list[tuple[list[Text | str], str]] = []
    for cell in shown[: rows_shown or None]:
        result = by_id.get(cell.cell_id)
        identity: list[Text | str] = [Text(plain(getattr(cell, name))) for name in varying]
        if result is None:
            rows.append(([*identity, Text("pending", style="dim"), *["-"] * (len(columns) - 1)], ""))
            continue
        if result.probe:  # it showed whether the batch fits, in a few iterations: its memory is what it measured
            status = Text(
                "fits" if result.status == "ok" else result.status, style=STATUS_STYLE.get(result.status, "red")
            )
            figures: list[Text | str] = ["-"] * (len(columns) - 1)
            figures[list(columns).index("peak\nmemory") - 1] = quantity(_peak_memory(result), "B", 1024.0)
            rows.append(([*identity, status, *figures], plain(result_notes(result))))
            continue
        latency, energy = result.latency, result.energy
        memory = _peak_memory(result)
        utilisation = f" {result.flop_utilisation:.0%}" if result.flop_utilisation else ""
        joules = "-" if energy is None or energy.energy_j is None else quantity(energy.energy_j, "").strip()
        row: list[Text | str] = [
            *identity,
            Text(result.status, style=STATUS_STYLE.get(result.status, "red")),
            seconds(latency.median_s) if latency else "-",
            interval(latency),
            *([_between(latency)] if repeated else []),
            seconds(latency.p95_s) if latency else "-",
            quantity(result.throughput_median_sps, "").strip(),
            quantity(result.throughput_sps, "").strip(),
            quantity(result.achieved_flops_per_s, "").strip() + utilisation,
            quantity(memory, "B", 1024.0),
            joules if one_label or energy is None else f"{joules} {energy.label}",
            "-" if energy is None or energy.j_per_sample is None else number(energy.j_per_sample),
        ]
        if with_top1:
            row.append(f"{result.accuracy_top1:.3f}" if result.accuracy_top1 is not None else "-")
        rows.append((row, plain(result_notes(result, flagged.get(cell.cell_id, "")))))
    headers = [(_HEADERS.get(name, name), "left") for name in varying] + list(columns.items())
    table = CellTable(headers, rows, len(varying))
    where = f"`wattgap show {run.run_id} --rows 0` shows every one, `wattgap export {run.run_id}` writes them"
    parts: list[RenderableType] = [
        title,
        _shared_line(fixed),
        table,
        *more_rows(len(shown), rows_shown, "cells", where),
    ]
    parts += _best_lines(run, varying)
    parts += _block_tables(results)
    parts += [_search_line(limit, varying) for limit in batch_limits(run)]
    if any(r.probe for r in results):
        parts.append(Text(PROBE_LINE))
    parts += _skipped_lines(Counter(r.reason for r in run.results if r.status == "skipped"))
    parts += [Text(summary_line(run)), Text(plain(idle_line(run)))]
    parts += [Text(plain(line)) for line in interval_lines(run, results)]
    return Group(*parts)


ENERGY_HEADER = {"estimated": "(est.)", "measured": "(meas.)"}  # a narrow column; the idle line names the model
NOTES_MIN_WIDTH = 24  # narrower, and the notes leave the table for lines under it


class CellTable:
    """A results table laid out for the width it is printed at: every column but the notes as wide as its
    widest entry (a number or a cell's name is never cut). The notes fold in a last column when it can be
    NOTES_MIN_WIDTH wide; else each is referred to by number ("n1") and written whole under the table. When
    even the figures do not fit, they are split over tables printed one under the other, each repeating
    the columns that say which cell a row is (the first ``identity`` columns)."""

    def __init__(self, headers: list[tuple[str, str]], rows: list[tuple[list[Text | str], str]], identity: int):
        self.headers, self.rows, self.identity = headers, rows, identity

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        widths = [
            max([*(len(line) for line in header.split("\n")), *(len(str(row[index])) for row, _ in self.rows)])
            for index, (header, _) in enumerate(self.headers)
        ]
        room = options.max_width
        keys = {note: f"n{number}" for number, note in enumerate(dict.fromkeys(n for _, n in self.rows if n), 1)}
        key_width = max([0, *(len(key) for key in keys.values())])
        inline = sum(widths) + 2 * len(widths) + NOTES_MIN_WIDTH <= room
        groups: list[list[int]] = [[]]
        base = sum(widths[: self.identity]) + 2 * self.identity + key_width  # a 2-space gap before each column
        for index in range(self.identity, len(widths)):  # as many figures per table as fit beside the key
            if groups[-1] and base + sum(widths[i] + 2 for i in groups[-1]) + widths[index] + 2 > room:
                groups.append([])
            groups[-1].append(index)
        for group in groups:
            table = _table()
            chosen = [*range(self.identity), *group]
            for index in chosen:
                header, justify = self.headers[index]
                table.add_column(header, justify=justify, no_wrap=True, min_width=widths[index])
            if inline:
                table.add_column("notes", overflow="fold", min_width=NOTES_MIN_WIDTH)
            else:  # a key per row, its note under the table
                table.add_column("", no_wrap=True, min_width=key_width)
            for row, note in self.rows:
                table.add_row(*(row[index] for index in chosen), Text(note if inline else keys.get(note, "")))
            yield table
        if not inline:
            yield from (Text(f"{key}: {note}") for note, key in keys.items())


SINGLE_PROCESS_LINE = (
    "±CI (1 process): the interval of the median within one process, below/above it; it does not cover the drift "
    "between processes or runs (a second run of the same cells on this machine measures that for the runs after it)"
)


def _between(latency: LatencyStats | None) -> str:
    cv = latency.between_repeat_cv if latency else None
    return "-" if cv is None else f"{cv:.1%}"


def repeats_line(run: Run) -> str:
    """How the cells of a run that repeats were measured, and what ±CI and ±proc then mean."""
    config = run.config
    order = "in a seeded random order" if config.order == "interleaved" else "round after round, in sweep order"
    return (
        f"repeats: each cell measured in {config.protocol.repeats} fresh processes, {order}; ±CI is the interval "
        "of the median over them (t interval on their log medians), ±proc how far their medians differ (cv)"
    )


def interval_lines(run: Run, results: list[CellResult]) -> list[str]:
    """What ±CI covers in ``results`` of ``run``: how its processes were measured, and the drift between
    runs that widened the intervals (measure/drift.py), or, where none did, that one process's interval
    cannot cover the drift between processes."""
    lines = [repeats_line(run)] if run.config.protocol.repeats > 1 else []
    used = dict.fromkeys(
        key_of(r.cell.device, r.latency.repeats) for r in results if r.latency is not None and r.latency.drift
    )
    for key in used:
        entry = run.environment.drift.get(key)
        measured = Drift.model_validate(entry).text() if entry else "a drift between runs"
        kind = key.partition("/")[2]
        lines.append(
            f"±CI ({kind}): the run's own interval widened by {measured}, so that it covers what another run of "
            "the cell on this machine finds; `wattgap export` keeps the run's own"
        )
    single = [r for r in results if r.latency is not None and r.latency.repeats == 1 and r.latency.drift is None]
    if single:
        lines.append(SINGLE_PROCESS_LINE)
    return lines


def _best_lines(run: Run, varying: list[str]) -> list[RenderableType]:
    """Per workload, the cell with the highest throughput (analysis.plausibility.highest), named by the
    fields that vary, with what it rests on when no quiet cell would do."""
    lines: list[RenderableType] = []
    for best in highest(run):
        result = best.result
        name = ", ".join(f"{_HEADERS.get(k, k)} {getattr(result.cell, k)}" for k in varying if k != "workload")
        rate = quantity(result.throughput_median_sps, "samples/s")
        caveat = f" ({rests_on(best.caveats)})" if best.caveats else ""
        line = f"highest throughput, {best.workload}: {name or result.cell.label}: {rate} (batch / median){caveat}"
        lines.append(Text(plain(line)))
    return lines


def _block_tables(results: list[CellResult]) -> list[RenderableType]:
    """The tables a workload's view shows under the run's (train-ddp: its scaling), each with its title."""
    parts: list[RenderableType] = []
    for kind, view in VIEWS.items():
        carried = [r for r in results if r.status == "ok" and r.block is not None and r.block.kind == kind]
        shown = view.terminal(carried) if view.terminal is not None and carried else None
        if shown is not None and shown.rows:
            parts.append(_content_table(shown))
    return parts


def _content_table(shown: ContentTable) -> Table:
    """A table of strings (render/content.py) as the terminal shows tables: no value ever cut."""
    table = _table()
    table.title, table.title_justify = shown.caption, "left"
    for index, column in enumerate(shown.columns):  # each column as wide as its widest value
        widest = max(len(row[index]) for row in [shown.columns, *shown.rows])
        table.add_column(column, no_wrap=True, min_width=widest)
    for row in shown.rows:
        table.add_row(*(Text(plain(value)) for value in row))
    return table


def _search_line(limit: BatchLimit, varying: Sequence[str]) -> Text:
    """A batch search's answer: the largest batch that ran (the limit, or a lower bound), the probes in the
    order they ran, and why the search ended."""
    name = ", ".join(f"{_HEADERS.get(k, k)} {limit.key[k]}" for k in varying if k in limit.key)
    found = "none" if limit.largest_batch is None else f"{limit.largest_batch}"
    if limit.largest_batch is not None:
        found += " (the limit)" if limit.exact else " (a lower bound)"
    probes = ", ".join(f"{batch} {status}" for batch, status in limit.probes)
    head = f"largest batch that ran{', ' + name if name else ''}: {found}"
    return Text(plain(f"{head}; probes {probes}; {limit.ended}"))


def summary_line(run: Run) -> str:
    counts = run.counts()
    parts = [f"{count} {status}" for status, count in counts.items() if count]
    return f"{len(run.cells)} cells: " + ", ".join(parts)


def idle_line(run: Run) -> str:
    """The idle power its cells' net energy subtracts, of each machine that ran them."""
    used = run.machines_used()
    lines = []
    for machine in used.values():
        where = f" of {machine.hostname}" if len(used) > 1 else ""
        if not machine.idle_power:
            lines.append(f"idle power{where}: not measured (energy.idle_s 0, or energy disabled): no net energy")
            continue
        parts = [
            f"{domain} {quantity(entry.get('power_w'), 'W')} ({entry.get('label')}, {entry.get('meter')})"
            + (f" NOT IDLE: {entry['warning']}" if entry.get("warning") else "")
            for domain, entry in machine.idle_power.items()
        ]
        reused = machine.idle_power_reused
        if reused:
            parts.append(f"reused from run {reused['run_id']}, measured {seconds(reused['age_s'])} before this one")
        lines.append(f"idle power{where}: " + "; ".join(parts))
    return "\n".join(lines)


def efficiency_table(
    run: Run,
    rank: str,
    rows: list[Efficiency],
    params: EfficiencyParams,
    defaulted: bool = False,
    rows_shown: int = 0,
) -> RenderableType:
    """The ranking (its first ``rows_shown`` rows; 0: all); ``defaulted``: the rank was not asked for, so
    the title says why it was chosen. Notes are footnotes below the table (each text once), so that long
    ones squeeze no column."""
    unit = params.electricity_unit
    why = f" (default: {default_rank(rows)[1]})" if defaulted else ""
    title = Text(f"run {run.run_id}: efficiency, ranked by {rank}{why}; {params.energy} energy\n{params.formula()}")
    by_label = {cell.label: cell for cell in run.cells}
    cells = [by_label[row.label] for row in rows if row.label in by_label]
    varying, fixed = _varying_fields(cells)
    labels = {row.energy_label for row in rows}
    one_label = labels.pop() if len(labels) == 1 else None
    table = _table()
    table.add_column("#", justify="right", no_wrap=True)
    for name in varying:
        _identity_column(table, name, (getattr(cell, name) for cell in cells))
    accuracy = any(row.accuracy is not None for row in rows)  # else top-1, top-1/kWh and GQI are all "-"
    columns = ["per", f"energy {unit}\n{one_label or ''}", *(["top-1"] if accuracy else []), "samples/J"]
    columns += [*(["top-1/kWh", "GQI"] if accuracy else []), "gCO2e", f"cost\n{params.currency}", "time", "note"]
    for column in columns:
        table.add_column(column, justify="left" if column == "per" else "right", no_wrap=True)
    notes: dict[str, int] = {}
    for position, row in enumerate(rows[: rows_shown or None], 1):
        cell = by_label.get(row.label)
        energy = quantity(row.energy_j / JOULES_PER[unit] if row.energy_j is not None else None, "").strip()
        note = notes.setdefault(row.note, len(notes) + 1) if row.note else None
        table.add_row(
            str(position),
            *(Text(plain(getattr(cell, name))) if cell else Text("?") for name in varying),
            row.basis,
            energy if one_label else f"{energy} {row.energy_label}",
            *([f"{row.accuracy:.3f}" if row.accuracy is not None else "-"] if accuracy else []),
            _maybe(row.samples_per_j),
            *([_maybe(row.accuracy_per_kwh), _maybe(row.gqi)] if accuracy else []),
            _maybe(row.co2_g),
            _maybe(row.cost),
            seconds(row.time_s),
            f"[{note}]" if note else "",
        )
    footnotes = [Text(plain(f"[{number}] {text}")) for text, number in notes.items()]
    return Group(title, _shared_line(fixed), table, *more_rows(len(rows), rows_shown, "cells"), *footnotes)


def _maybe(value: float | None) -> str:
    return number(value) if value is not None else "-"


def coverage(comparison: Comparison) -> str:
    """What the pairs' intervals cover, said once: between processes, widened by the machine's spread, or
    within one process (a gate does not judge those)."""
    kinds = list(dict.fromkeys(pair.covers for pair in comparison.pairs))
    if kinds == [WIDENED] and comparison.spread is not None:
        return f"single-process sides widened by {comparison.spread.text()}"
    return "; ".join(kinds) if kinds else "no pairs"


def comparison_table(comparison: Comparison, rows_shown: int = 0) -> RenderableType:
    """The pairs: the fields every pair shares said once, those that vary as unbroken columns; A's and B's
    value of the compared field (devices named by their hardware when the runs come from two machines),
    medians, the compared metric's ratio with its CI, and the other metric beside it."""
    level = f"{comparison.confidence:.0%}"
    if comparison.run_a == comparison.run_b:
        sides = f"run {comparison.run_a}: A = {comparison.by} {comparison.baseline}, B = the other values"
    else:
        sides = f"A = run {comparison.run_a}, B = run {comparison.run_b}"
    latency = comparison.metric == "latency"
    what = (
        "median latency per iteration of B over A"
        if latency
        else "speedup of B over A: throughput per sample (batch / median latency) of B over A"
    )
    title = Text(f"{comparison.by} ({sides}): {what}, {level} CI ({coverage(comparison)})")
    keys = [
        name for name in CELL_FIELDS if name != comparison.by and comparison.pairs and name in comparison.pairs[0].key
    ]
    varying = [k for k in keys if len({str(p.key.get(k)) for p in comparison.pairs}) > 1]
    fixed = {k: comparison.pairs[0].key[k] for k in keys if k not in varying} if comparison.pairs else {}
    table = _table()
    for name in varying:
        _identity_column(table, name, (p.key.get(name) for p in comparison.pairs))
    by = _HEADERS.get(comparison.by, comparison.by)
    ratio_columns = (
        ("B/A latency", f"{level} CI", "speedup") if latency else ("speedup", f"{level} CI", "B latency vs A")
    )
    for column in (f"A {by}", f"B {by}", "A median", "B median", *ratio_columns):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("note", overflow="fold", min_width=8)
    for pair in comparison.pairs[: rows_shown or None]:
        assert pair.a.latency is not None and pair.b.latency is not None
        change, low, high = pair.latency_change
        if latency:
            ratios = [f"{number(change + 1)}x", f"{number(low + 1)}-{number(high + 1)}", f"{number(pair.speedup)}x"]
        else:
            ratios = [
                f"{number(pair.speedup)}x",
                f"{number(pair.ci_low)}-{number(pair.ci_high)}",
                f"{change:+.0%} ({low:+.0%}..{high:+.0%})",
            ]
        sides_values = [str(getattr(p.cell, comparison.by)) for p in (pair.a, pair.b)]
        if comparison.by == "device":
            sides_values = [comparison.device_label(side, v) for side, v in zip("AB", sides_values, strict=True)]
        table.add_row(
            *(Text(plain(pair.key.get(name))) for name in varying),
            *(Text(plain(value)) for value in sides_values),
            seconds(pair.a.latency.median_s),
            seconds(pair.b.latency.median_s),
            *ratios,
            Text(plain(", ".join(filter(None, [pair.note, pair.unjudged])))),
        )
    notes = [*more_rows(len(comparison.pairs), rows_shown, "pairs")]
    notes += [Text(plain(f"note: {note}"), style="dim") for note in comparison.notes]
    if comparison.spread is not None and len({pair.covers for pair in comparison.pairs}) > 1:
        notes.append(Text(plain(f"note: single-process sides widened by {comparison.spread.text()}"), style="dim"))
    return Group(title, _shared_line({k: v for k, v in fixed.items() if k != "threads"}, "every pair"), table, *notes)


def tradeoff_view(result: Tradeoff, rows_shown: int = 0) -> RenderableType:
    """One table per curve: throughput and latency percentiles against batch size with their intervals,
    the knee and the best batch under the bound marked, and what the rule was. Whole curves, in order,
    until their rows reach ``rows_shown`` (0: every curve), then a line saying how many more there are."""
    level = f"{result.confidence:.0%}"
    bound = (
        f"; best batch: highest throughput with {result.percentile} <= {seconds(result.max_latency_s)}"
        if result.max_latency_s is not None
        else ""
    )
    parts: list[RenderableType] = [
        Text(
            f"latency-throughput trade-off of run(s) {', '.join(result.run_ids)}: throughput = batch / median "
            f"latency; [{level} bootstrap intervals from the raw samples]; knee: the smallest batch reaching "
            f"{result.share:.0%} of the highest throughput{bound}"
        )
    ]
    varying = [
        name for name in CELL_FIELDS if name != "batch_size" and len({str(c.key.get(name)) for c in result.curves}) > 1
    ]
    fixed = {k: v for k, v in result.curves[0].key.items() if k not in varying} if result.curves else {}
    parts.append(_shared_line(fixed, "every curve"))
    shown: list[Curve] = []
    rows = 0
    for curve in result.curves:
        if rows_shown and shown and rows + len(curve.points) > rows_shown:
            break
        shown.append(curve)
        rows += len(curve.points)
    for curve in shown:
        head = ", ".join(f"{_HEADERS.get(k, k)} {curve.key[k]}" for k in varying)
        if head:
            parts.append(Text(plain(head), style="bold"))
        table = _table()
        table.add_column("batch", justify="right", no_wrap=True)
        for column in ("sps b/med", f"[{level}]", "p50", f"[{level}]", result.percentile, f"[{level}]"):
            table.add_column(column, justify="right", no_wrap=True)
        table.add_column("", no_wrap=True)
        for point in curve.points:
            marks = [
                *(["knee"] if point is curve.knee else []),
                *(["best under bound"] if point is curve.bounded else []),
                *point.caveats,
            ]
            tail = point.latency_s[result.percentile]
            median = point.latency_s["p50"]
            table.add_row(
                str(point.batch_size),
                number(point.throughput_sps.value),
                f"{number(point.throughput_sps.low)}-{number(point.throughput_sps.high)}",
                seconds(median.value),
                f"{seconds(median.low)}-{seconds(median.high)}",
                seconds(tail.value),
                f"{seconds(tail.low)}-{seconds(tail.high)}",
                ", ".join(marks),
            )
        parts.append(table)
        parts += [Text(plain(f"  note: {note}"), style="dim") for note in curve.notes]
    parts += more_rows(len(result.curves), len(shown), "curves")
    if result.scaling:  # train-ddp cells: throughput and efficiency against world size
        parts.append(_content_table(scaling_table(result.scaling)))
    return Group(*parts)


def _score_text(candidate: Candidate, objective: str, currency: str = "") -> str:
    """The objective's value with its interval; energy and cost (one reading each, no interval) say
    whether the energy was measured or estimated, and cost its currency."""
    score = candidate.score
    if score is None:
        return "-"
    show = seconds if objective == "latency" else number
    interval = f" [{show(score.low)}-{show(score.high)}]" if score.low != score.high else ""
    unit = "" if objective == "latency" else f" {OBJECTIVES[objective]}"
    if objective == "cost":
        unit = f" {currency}{unit}"
    energy = candidate.result.energy
    label = f" ({energy.label} energy)" if objective in ("energy", "cost") and energy is not None else ""
    return f"{show(score.value)}{unit}{interval}{label}"


def _constraint_text(answer: Recommendation) -> str:
    bounds = answer.constraints
    parts = [
        *([f"{bounds.percentile} <= {seconds(bounds.max_latency_s)}"] if bounds.max_latency_s else []),
        *([f"top-1 agreement >= {bounds.min_agreement:.1%}"] if bounds.min_agreement is not None else []),
        *([f"peak memory <= {quantity(bounds.max_memory_bytes, 'B', 1024.0)}"] if bounds.max_memory_bytes else []),
        "degraded cells " + ("allowed" if bounds.include_degraded else "excluded"),
    ]
    return ", ".join(parts)


def recommendation_view(answer: Recommendation, rows_shown: int = 0) -> RenderableType:
    """The answer first (best, runner-up, whether they are tied), then why each other cell lost (the
    first ``rows_shown`` of them, in the order the analysis ranks them; 0: all)."""
    objective = answer.objective
    direction = "higher" if objective == "throughput" else "lower"
    parts: list[RenderableType] = [
        Text(plain(f"objective: {objective} ({direction} is better); constraints: {_constraint_text(answer)}"))
    ]
    if answer.best is None:
        parts.append(Text("no cell satisfies every constraint", style="bold"))
        parts.append(Text(plain(f"binding constraint: {answer.binding}")))
        if answer.closest is not None:
            parts.append(Text(plain(f"closest: {answer.closest.result.cell.label} ({_why_text(answer.closest)})")))
    else:
        parts.append(
            Text(
                plain(f"best: {answer.best.result.cell.label}: {_score_text(answer.best, objective, answer.currency)}"),
                style="bold",
            )
        )
        if answer.best.caveats:
            parts.append(Text(plain(f"caution: the answer {rests_on(answer.best.caveats)}"), style="bold"))
        if answer.runner_up is not None:
            tie = "statistically tied with the best (intervals overlap)" if answer.tied else answer.runner_up.verdict
            parts.append(
                Text(
                    plain(
                        f"runner-up: {answer.runner_up.result.cell.label}: "
                        f"{_score_text(answer.runner_up, objective, answer.currency)}; {tie}"
                    )
                )
            )
    if answer.others:
        others = answer.others[: rows_shown or None]
        table = _table()
        _identity_column(table, "cell", (c.result.cell.label for c in others))
        table.add_column(objective, justify="right", no_wrap=True)
        table.add_column("why not", overflow="fold", min_width=16)
        for candidate in others:
            table.add_row(
                Text(plain(candidate.result.cell.label)),
                _score_text(candidate, objective, answer.currency),
                Text(plain(candidate.verdict)),
            )
        parts += [table, *more_rows(len(answer.others), rows_shown, "other cells")]
    parts.append(
        Text(
            f"Pareto front (p99 latency, throughput, J/sample): {len(answer.pareto)} cell(s); --format json lists them"
        )
    )
    return Group(*parts)


def _why_text(candidate: Candidate) -> str:
    return ", ".join(f"{name} +{excess:.0%}" for name, excess in candidate.broken) or "satisfies every constraint"


def _bytes(value: float | None) -> str:
    return quantity(value, "B", 1024.0) if value is not None and value == value else "-"


def memory_view(run_id: str, curves: list[MemoryCurve], confidence: float = 0.95) -> RenderableType:
    """Per configuration: the fitted polynomial and how it was chosen, measured and predicted memory with
    the prediction interval per batch, and the largest batch within the budget."""
    parts: list[RenderableType] = [
        Text(
            f"peak memory against batch size, run {run_id}: polynomial least squares, degree by leave-one-out "
            f"cross-validation, {confidence:.0%} prediction intervals"
        )
    ]
    varying = [name for name in CELL_FIELDS if name != "batch_size" and len({str(c.key.get(name)) for c in curves}) > 1]
    parts.append(_shared_line({k: v for k, v in curves[0].key.items() if k not in varying}, "every curve"))
    for curve in curves:
        head = ", ".join(f"{_HEADERS.get(k, k)} {curve.key[k]}" for k in varying)
        if head:
            parts.append(Text(plain(head), style="bold"))
        fit = curve.fit
        if fit is not None:
            terms = []
            for power, c in enumerate(fit.coefficients):
                sign = "-" if c < 0 else "+" if power else ""
                unit = f" x batch^{power}" if power > 1 else " x batch" if power else ""
                terms.append(f"{sign} {_bytes(abs(c))}{unit}".strip())
            quality = f"leave-one-out RMSE {_bytes(fit.loocv_rmse)}" if fit.loocv_rmse else "no CV"
            r2 = f", R^2 {fit.r2:.4f}" if fit.r2 is not None else ""
            parts.append(Text(f"  {curve.source}: degree {fit.degree} ({quality}{r2}): {' '.join(terms)}"))
        table = _table()
        for column in ("batch", "measured", "predicted", f"{confidence:.0%} interval", "status"):
            table.add_column(column, justify="right", no_wrap=True)
        for point in curve.points:
            interval = (
                f"{_bytes(point.interval_bytes[0])}-{_bytes(point.interval_bytes[1])}" if point.interval_bytes else "-"
            )
            table.add_row(
                str(point.batch_size),
                _bytes(point.measured_bytes),
                _bytes(point.predicted_bytes),
                interval,
                point.status,
            )
        parts.append(table)
        if curve.budget_bytes is not None and fit is not None:
            parts.append(
                Text(
                    f"  budget {_bytes(curve.budget_bytes)}: largest batch within it {curve.largest_batch or 'none'} "
                    f"(upper prediction bound), {curve.largest_batch_fit or 'none'} by the fitted curve"
                )
            )
        if curve.search is not None:
            parts.append(Text("  ").append(_search_line(curve.search, [])))
        parts += [Text(plain(f"  note: {note}"), style="dim") for note in curve.notes]
    return Group(*parts)


def projection_view(projection: Projection) -> RenderableType:
    """The fits (growth per year, degree, quality), the projected memory per year with intervals, and the
    year each model curve outgrows one accelerator."""
    level = f"{projection.confidence:.0%}"
    parts: list[RenderableType] = [
        Text(
            plain(
                f"memory by year from {projection.source}: polynomial fits of log10(bytes) on the year, degree by "
                f"leave-one-out cross-validation (at most 2), {level} prediction intervals; a model needs "
                f"{projection.weight_bytes:g} B/parameter for its weights, {projection.training_bytes:g} to train "
                "with Adam in mixed precision"
            )
        )
    ]
    for series in projection.series:
        fit = series.fit
        growth = f", x{number(10 ** fit.coefficients[1])} a year at {fit.offset:.0f}" if fit.degree >= 1 else ""
        quality = (
            f"leave-one-out RMSE x{number(10**fit.loocv_rmse)}" if fit.loocv_rmse is not None else "no cross-validation"
        )
        r2 = f", R^2 {fit.r2:.3f}" if fit.r2 is not None else ""
        parts.append(Text(f"  {series.name}: {len(series.years)} points, degree {fit.degree}{growth} ({quality}{r2})"))
    table = _table()
    table.add_column("year", justify="right", no_wrap=True)
    for series in projection.series:
        table.add_column(series.name, justify="right", no_wrap=True)
        table.add_column(f"[{level}]", justify="right", no_wrap=True)
    for row, year in enumerate(y for y, *_ in projection.series[0].projected):
        cells = [str(year)]
        for series in projection.series:
            _, value, low, high = series.projected[row]
            cells += [_bytes(value), f"{_bytes(low)}-{_bytes(high)}" if low is not None else "-"]
        table.add_row(*cells)
    parts.append(table)
    for name, crossing in projection.outgrows.items():
        when = f"from {crossing}" if crossing is not None else f"not before {projection.until}"
        parts.append(Text(f"{name} outgrow one accelerator's memory (the fitted curves): {when}"))
    parts += [Text(plain(f"note: {note}"), style="dim") for note in projection.notes]
    return Group(*parts)


def plan_view(name: str, plan: Plan) -> RenderableType:
    """What a sweep would run here, without running it: the fields every cell shares, the cells to run,
    and the skipped ones summarised by reason."""
    varying, fixed = _varying_fields(plan.cells)
    runnable = plan.runnable
    head = Text(plain(f"plan of {name}: {len(plan.cells)} cells, {len(runnable)} to run, {len(plan.skipped)} skipped"))
    shared = _shared_line(fixed)
    parts: list[RenderableType] = [head, shared]
    if runnable and varying:
        table = _table()
        for field in varying:
            _identity_column(table, field, (getattr(cell, field) for cell in runnable))
        for cell in runnable:
            table.add_row(*(Text(plain(getattr(cell, field))) for field in varying))
        parts.append(table)
    parts += _skipped_lines(Counter(plan.skipped.values()))
    return Group(*parts)


def _skipped_lines(reasons: Counter[str]) -> list[RenderableType]:
    if not reasons:
        return []
    lines: list[RenderableType] = [Text(f"skipped {sum(reasons.values())} cells before running:")]
    return lines + [Text(plain(f"  {count} x {reason}")) for reason, count in reasons.most_common()]


def _value_text(value: Value | None) -> str:
    """A study's value and its interval, compactly: the half-width of the wider side in percent, or for a
    change its interval in points."""
    if value is None:
        return "-"
    estimate = value.estimate
    if value.unit == "change":
        return f"{estimate.value:+.1%} ({estimate.low * 100:+.0f}..{estimate.high * 100:+.0f})"
    shown = by_unit(value.unit)
    spread = max(estimate.high - estimate.value, estimate.value - estimate.low) / estimate.value
    return f"{shown(estimate.value)} ±{spread:.0%}" if spread >= 0.005 else f"{shown(estimate.value)} ±<1%"


def study_view(table: StudyTable) -> RenderableType:
    """A study's table in its shape: the identifying columns, then each value with its interval (the wider
    side's half-width; the JSON holds both ends), a note per row, and the study's notes below."""
    level = f"{table.confidence:.0%}"
    out = _table()
    keys = [k for k in table.key_columns if len({str(row.key.get(k)) for row in table.rows}) > 1]
    fixed = {k: table.rows[0].key.get(k) for k in table.key_columns if k not in keys}
    for name in keys:
        _identity_column(out, name, (row.key.get(name) for row in table.rows))
    for column in table.value_columns:
        out.add_column(column, justify="right", no_wrap=True)
    with_notes = any(row.note for row in table.rows)
    if with_notes:
        out.add_column("note", overflow="fold", min_width=10)
    for row in table.rows:
        cells = [Text(plain(row.key.get(name))) for name in keys]
        cells += [Text(_value_text(row.values.get(column))) for column in table.value_columns]
        out.add_row(*cells, *([Text(plain(row.note))] if with_notes else []))
    title = Text(plain(f"{table.title}; {level} bootstrap intervals from the raw samples"), style="bold")
    notes = [Text(plain(f"note: {note}"), style="dim") for note in table.notes]
    shared = [_shared_line(fixed, "every row")] if fixed else []
    return Group(title, *shared, out, *notes)


def whatif_view(answer: WhatIf) -> RenderableType:
    """The estimates, each labelled, with the roofline they rest on, the spread of its cell's other
    measurements, the measured error of the owned pairs like it (or "unvalidated") and its source's
    caveats; then the error of each kind of owned pair (or that there were none to measure it on)."""
    cells = [row.result.cell for row in answer.rows]
    varying, fixed = _varying_fields(cells)
    parts: list[RenderableType] = [
        Text(
            "what-if: ESTIMATES by roofline (share = the share of its roofline a cell reached where it ran, "
            "assumed on the target: estimate = target roofline / share; range = the estimates of each of this "
            "cell's measurements on this machine; error = the median |error| of the owned pairs of the same kind; "
            "ceiling = batch / target roofline, the most the target can do)",
            style="bold",
        )
    ]
    if cells:
        parts.append(_shared_line(fixed))
    columns = ["target", "bound", "measured", "share", "estimate", "range", "est. sps", "ceiling sps", "error"]
    headers = [(_HEADERS.get(name, name), "left") for name in varying] + [(c, "right") for c in [*columns, "label"]]
    check = answer.check
    rows: list[tuple[list[Text | str], str]] = []
    for row in answer.rows:
        error = check.for_row(row)
        spread = row.estimate_range_s
        rows.append(
            (
                [
                    *(Text(plain(getattr(row.result.cell, name))) for name in varying),
                    Text(plain(row.target)),
                    row.bound,
                    seconds(row.measured_s),
                    "-" if row.share is None else f"{row.share:.0%}",
                    seconds(row.estimate_s),
                    "-"
                    if spread is None or spread[2] < 2
                    else f"{seconds(spread[0])}-{seconds(spread[1])} ({spread[2]})",
                    quantity(row.estimate_throughput_sps, "").strip(),
                    quantity(row.ceiling_throughput_sps, "").strip(),
                    UNVALIDATED if error is None else f"{error.median_abs_error:.0%}",
                    row.label,
                ],
                f"from a {' and '.join(row.caveats)} cell: measure it again on a quiet machine" if row.caveats else "",
            )
        )
    if answer.rows:
        parts.append(CellTable(headers, rows, len(varying)))
    for kind, error in check.by_kind.items():
        parts.append(
            Text(
                f"the estimator's error on the {error.pairs} owned {kind} pairs of these runs (each cell estimated "
                f"from its twin): median |error| {error.median_abs_error:.0%}, worst {error.max_abs_error:.0%}"
            )
        )
    unvalidated = sorted({row.kind for row in answer.rows if check.for_row(row) is None})
    if unvalidated:
        parts.append(
            Text(
                f"{UNVALIDATED}: these runs own no {' or '.join(unvalidated)} pair (the same cell measured on both "
                "kinds of device), so the error of those estimates is not measured here; the error of another kind "
                "says nothing of it"
            )
        )
    if any(row.estimate_s is None for row in answer.rows):
        parts.append(
            Text("estimate '-': the rates of the device that ran the cell are unknown; the ceiling stands", style="dim")
        )
    if any(row.share is not None and row.share > 1 for row in answer.rows):
        parts.append(
            Text(
                "share above 100%: the cell beat its memory-bandwidth roofline (its data fit in the caches); its "
                "estimate is the target's ceiling",
                style="dim",
            )
        )
    parts += [Text(plain(f"left out: {count} x {why}"), style="dim") for why, count in answer.left_out.items()]
    return Group(*parts)


def print_comparison(console: Console, comparison: Comparison, rows_shown: int = 0) -> None:
    console.print(comparison_table(comparison, rows_shown))
    low, high = comparison.geomean_ci_low, comparison.geomean_ci_high
    if comparison.geomean is not None and low is not None and high is not None:
        what = "latency per iteration, B over A," if comparison.metric == "latency" else "speedup"
        console.print(
            f"geometric mean {what} over {len(comparison.pairs)} pairs: {number(comparison.geomean)}x "
            f"({comparison.confidence:.0%} CI {number(low)}-{number(high)})"
        )
    if comparison.unmatched:
        console.print(f"[dim]{comparison.unmatched} cell(s) of A had no match in B[/]")


def environment_tables(environment: Machine) -> list[Table]:
    machine = Table(title="machine", title_justify="left", show_header=False, box=box.SIMPLE, show_edge=False)
    machine.add_column("what")
    machine.add_column("value")
    cpu = environment.cpu
    machine.add_row("cpu", f"{cpu.model} ({cpu.physical_cores} physical / {cpu.logical_cores} logical cores)")
    machine.add_row("cpu features", ", ".join(cpu.flags) or "-")
    machine.add_row("memory", quantity(environment.memory_bytes, "B", 1024.0))
    for gpu in environment.gpus:
        machine.add_row(
            f"gpu {gpu.index}", f"{gpu.name}, {quantity(gpu.memory_bytes, 'B', 1024.0)}, compute {gpu.capability}"
        )
    machine.add_row("nvidia driver", str(environment.nvidia_driver or "-"))
    machine.add_row("cuda (torch build)", str(environment.torch.get("cuda") or "-"))
    machine.add_row("cudnn", str(environment.torch.get("cudnn") or "-"))
    machine.add_row("os / python", f"{environment.os} / {environment.python}")
    versions = ", ".join(f"{k} {v}" for k, v in environment.libraries.items() if v)
    machine.add_row("libraries", versions)
    wattgap = environment.wattgap
    machine.add_row("wattgap", f"{wattgap.get('version')} ({wattgap.get('commit') or 'no git checkout'})")
    usable = Table(title="devices and backends", title_justify="left", box=box.SIMPLE_HEAD, show_edge=False)
    for column in ("kind", "name", "usable"):
        usable.add_column(column, no_wrap=True)
    usable.add_column("why not", overflow="fold")
    for kind, entries in (("device", environment.devices), ("backend", environment.backends)):
        for name, entry in entries.items():
            usable.add_row(kind, name, "yes" if entry.usable else "[red]no[/]", Text(plain(entry.reason or "")))
    return [machine, usable]
