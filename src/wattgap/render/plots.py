"""The report's plots, drawn with matplotlib: one library for both documents (the HTML inlines each plot as
SVG, the Markdown twin links the same SVG files), no JavaScript to ship, and output that depends on the
data alone. Text stays text in the SVG (smaller files, selectable labels), escaped by matplotlib's XML
writer; labels from users go through ``label`` so that a ``$`` in a model name is not read as math.

Each function takes what an analysis returned and gives a Figure, or None when there is nothing to draw."""

from __future__ import annotations

import io
import textwrap
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from wattgap.analysis.memory import MemoryCurve
from wattgap.analysis.projection import Projection
from wattgap.analysis.recommend import Candidate
from wattgap.analysis.scaling import ScalingPoint
from wattgap.analysis.studies import StudyTable
from wattgap.analysis.tradeoff import Curve
from wattgap.blocks import Training
from wattgap.text import number, visible

if TYPE_CHECKING:
    from matplotlib.figure import Figure

WIDTH_IN, HEIGHT_IN = 7.5, 4.2
TITLE_CHARS = 60  # a title line that fits over the axes (a bar chart's labels take a third of the width)


def label(text: object) -> str:
    """Foreign text as matplotlib text: control characters shown as escapes, math markers escaped."""
    return visible(text).replace("\\", "\\\\").replace("$", r"\$")


def _figure(title: str) -> tuple[Figure, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title("\n".join(textwrap.wrap(label(title), TITLE_CHARS)), fontsize=10)  # never cut at the edges
    axes.grid(True, alpha=0.3)
    return figure, axes


def _log(axes: Any, which: str, ticks: Sequence[float] | None = None) -> None:
    """A log-scale axis labelled with plain numbers (1, 2, 4, 300), not powers (2^0, 3 x 10^2)."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    axis = axes.xaxis if which == "x" else axes.yaxis
    (axes.set_xscale if which == "x" else axes.set_yscale)("log", base=2 if ticks else 10)
    if ticks:
        axis.set_major_locator(FixedLocator(sorted(set(ticks))))
        axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    if not ticks:
        axis.set_minor_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def _legend(axes: Any) -> None:
    """The legend inside the plot while it is short; beside it, in a wider figure, when it is long."""
    count = len(axes.get_legend_handles_labels()[0])
    if count <= 8:
        axes.legend(fontsize=7)
        return
    axes.figure.set_size_inches(WIDTH_IN + 3.5, max(HEIGHT_IN, 0.16 * count / 2 + 1))
    axes.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncols=1 + count // 40)


def svg(figure: Figure) -> str:
    """The figure as an SVG document, its text as text, with no date in it."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "wattgap"}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": "wattgap"})
    return buffer.getvalue()


def curve_name(key: dict[str, object], varying: Sequence[str]) -> str:
    return ", ".join(f"{key[name]}" for name in varying if name in key) or "all cells"


MAX_CURVES = 12  # lines on one plot that can still be told apart; the section's table holds every one


T = TypeVar("T")


def _highest(ranks: Sequence[float], count: int) -> list[int]:
    """The indices of the ``count`` highest ``ranks`` (the first of equal ones), in their order."""
    return sorted(sorted(range(len(ranks)), key=lambda i: ranks[i], reverse=True)[:count])


def _most(items: list[T], rank: Callable[[T], float], which: str, title: str) -> tuple[list[T], str]:
    """Of more than MAX_CURVES ``items``, the MAX_CURVES ranked highest (in their order), and ``title``
    saying so."""
    if len(items) <= MAX_CURVES:
        return items, title
    kept = _highest([rank(item) for item in items], MAX_CURVES)
    return [items[i] for i in kept], f"{title} (the {MAX_CURVES} of {len(items)} {which}; every one in the table)"


def _against_batch(curves: list[Curve], title: str, ylabel: str, draw: Callable[[Any, Curve], None]) -> Figure | None:
    """A figure of the curves with more than one batch size (at most MAX_CURVES: those of the highest
    throughput), each drawn by ``draw(axes, curve)``, on a log2 batch axis labelled with the measured batch
    sizes."""
    drawn = [c for c in curves if len(c.points) > 1]
    if not drawn:
        return None
    drawn, title = _most(drawn, lambda c: c.highest.throughput_sps.value, "of the highest throughput", title)
    figure, axes = _figure(title)
    for curve in drawn:
        draw(axes, curve)
    _log(axes, "x", [p.batch_size for c in drawn for p in c.points])
    axes.set_xlabel("batch size")
    axes.set_ylabel(ylabel)
    _legend(axes)
    return figure


def throughput(curves: list[Curve], varying: Sequence[str]) -> Figure | None:
    """Throughput against batch per curve, its bootstrap interval as a band, the knee marked."""

    def draw(axes: Any, curve: Curve) -> None:
        batch = [p.batch_size for p in curve.points]
        value = [p.throughput_sps.value for p in curve.points]
        (line,) = axes.plot(batch, value, marker="o", markersize=3, label=label(curve_name(curve.key, varying)))
        low = [p.throughput_sps.low for p in curve.points]
        high = [p.throughput_sps.high for p in curve.points]
        axes.fill_between(batch, low, high, alpha=0.2, color=line.get_color())
        axes.plot([curve.knee.batch_size], [curve.knee.throughput_sps.value], marker="D", color=line.get_color())

    title = "throughput (batch / median latency) against batch size, 95% interval, knee marked"
    return _against_batch(curves, title, "samples/s", draw)


def latency(curves: list[Curve], varying: Sequence[str]) -> Figure | None:
    """p50 (solid) and p99 (dashed) latency per iteration against batch, with their intervals."""

    def draw(axes: Any, curve: Curve) -> None:
        batch = [p.batch_size for p in curve.points]
        color = None
        for percentile, style in (("p50", "-"), ("p99", "--")):
            estimates = [p.latency_s[percentile] for p in curve.points]
            (line,) = axes.plot(
                batch,
                [e.value * 1e3 for e in estimates],
                linestyle=style,
                marker="o",
                markersize=3,
                color=color,
                label=label(f"{curve_name(curve.key, varying)} {percentile}"),
            )
            color = line.get_color()
            axes.fill_between(
                batch, [e.low * 1e3 for e in estimates], [e.high * 1e3 for e in estimates], alpha=0.15, color=color
            )

    title = "latency per iteration against batch size: p50 solid, p99 dashed, 95% intervals"
    figure = _against_batch(curves, title, "ms per iteration", draw)
    if figure is not None:
        _log(figure.axes[0], "y")
    return figure


def pareto(candidates: list[Candidate], front: list[Candidate], workload: str) -> Figure | None:
    """Every finished cell's p99 latency against its throughput, the Pareto front joined."""
    if len(candidates) < 2:
        return None
    figure, axes = _figure(f"{workload}: p99 latency against throughput; the Pareto front joined")
    axes.scatter(
        [c.throughput_sps for c in candidates],
        [c.latency_s.value * 1e3 for c in candidates],
        s=12,
        color="grey",
        label="cells",
    )
    ordered = sorted(front, key=lambda c: c.throughput_sps)
    axes.plot(
        [c.throughput_sps for c in ordered],
        [c.latency_s.value * 1e3 for c in ordered],
        marker="o",
        color="tab:red",
        label="Pareto front",
    )
    _log(axes, "x")
    _log(axes, "y")
    axes.set_xlabel("samples/s")
    axes.set_ylabel("p99 ms per iteration")
    _legend(axes)
    return figure


MAX_BARS = 40  # a chart of more is not read: the rest stay in the section's table


def kept_bars(values: Sequence[float], unit: str) -> list[int]:
    """Of more than MAX_BARS bars, the indices of those a chart keeps, in their order: farthest from parity
    (ratios, ``unit`` x) or the highest."""
    if len(values) <= MAX_BARS:
        return list(range(len(values)))
    far = [abs(np.log(v)) if v > 0 else np.inf for v in values] if unit == "x" else list(values)
    return _highest(far, MAX_BARS)


def bars(
    title: str,
    names: list[str],
    values: list[tuple[float, float, float]],
    unit: str,
    rest: str = "in the table",
    of: int | None = None,
) -> Figure | None:
    """Horizontal bars with interval whiskers (value, low, high); a line at 1 for ratios. Of more than
    MAX_BARS, those ``kept_bars`` keeps; when fewer than all (``of``, if the caller kept them already) are
    drawn, the title says how many and where the ``rest`` are."""
    if not names:
        return None
    total = of or len(names)
    kept = kept_bars([v for v, _, _ in values], unit)
    names, values = [names[i] for i in kept], [values[i] for i in kept]
    if total > len(names):
        which = "farthest from parity" if unit == "x" else "highest"
        title = f"{title} (the {len(names)} {which} of {total}; every one {rest})"
    figure, axes = _figure(title)
    figure.set_size_inches(WIDTH_IN, max(2.0, 0.9 + 0.28 * len(names)))
    centre = np.array([v for v, _, _ in values])
    errors = np.array([[v - low for v, low, _ in values], [high - v for v, _, high in values]])
    positions = np.arange(len(names))
    axes.barh(positions, centre, xerr=errors, color="tab:blue", alpha=0.7, capsize=3)
    axes.set_yticks(positions, [label(n) for n in names], fontsize=7)
    axes.invert_yaxis()
    if unit == "x":
        axes.axvline(1.0, color="black", linewidth=0.8)
        axes.set_xlabel("ratio (95% interval)")
    else:
        axes.set_xlabel(unit)
    return figure


def study_bars(table: StudyTable, column: str) -> Figure | None:
    rows = [row for row in table.rows if row.values.get(column) is not None]
    names = [", ".join(str(v) for v in row.key.values()) for row in rows]
    values = []
    for row in rows:
        value = row.values[column]
        assert value is not None
        values.append((value.estimate.value, value.estimate.low, value.estimate.high))
    unit = "x" if rows and rows[0].values[column].unit == "x" else column  # type: ignore[union-attr]
    return bars(f"{table.study}: {column}", names, values, unit)


def memory(curves: list[MemoryCurve], varying: Sequence[str]) -> Figure | None:
    """Measured peak memory, the fitted polynomial with its prediction band, out-of-memory batches as
    crosses, and the budget."""
    fitted = [c for c in curves if c.fit is not None]
    if not fitted:
        return None
    fitted, title = _most(
        fitted,
        lambda c: max((p.measured_bytes or 0) for p in c.points),
        "that use the most memory",
        "peak memory against batch size: measured, fit with 95% prediction band, budget",
    )
    figure, axes = _figure(title)
    budgets = set()
    for curve in fitted:
        assert curve.fit is not None
        measured = [p for p in curve.points if p.measured_bytes is not None]
        (line,) = axes.plot(
            [p.batch_size for p in measured],
            [(p.measured_bytes or 0) / 2**30 for p in measured],
            "o",
            markersize=4,
            label=label(curve_name(curve.key, varying)),
        )
        batches = np.array([p.batch_size for p in curve.points], dtype=float)
        grid = np.linspace(batches.min(), batches.max() * 1.25, 50)
        axes.plot(grid, curve.fit.predict(grid) / 2**30, color=line.get_color(), linewidth=1)
        banded = [p for p in curve.points if p.interval_bytes is not None]
        if banded:
            axes.fill_between(
                [p.batch_size for p in banded],
                [p.interval_bytes[0] / 2**30 for p in banded],  # type: ignore[index]
                [p.interval_bytes[1] / 2**30 for p in banded],  # type: ignore[index]
                alpha=0.15,
                color=line.get_color(),
            )
        oom = [p for p in curve.points if p.status == "oom"]
        if oom:
            axes.plot(
                [p.batch_size for p in oom],
                [p.predicted_bytes / 2**30 for p in oom],
                "x",
                color=line.get_color(),
                markersize=8,
            )
        if curve.budget_bytes is not None:
            budgets.add(curve.budget_bytes)
    for budget in budgets:
        if budget <= 4 * max(max((p.predicted_bytes for p in c.points), default=0) for c in fitted):
            axes.axhline(budget / 2**30, color="tab:red", linestyle=":", label=f"budget {number(budget / 2**30)} GiB")
    axes.set_xlabel("batch size")
    axes.set_ylabel("GiB")
    _legend(axes)
    return figure


def training(cells: list[tuple[str, Training]], against: str) -> Figure | None:
    """Validation top-1 per epoch against cumulative time or energy, one line per train-to-accuracy cell
    (its label and its block)."""
    curves = [(name, block) for name, block in cells if block.curve]
    if against == "energy":
        curves = [(name, block) for name, block in curves if all(p.energy_j is not None for p in block.curve)]
    if not curves:
        return None
    unit = "s" if against == "time" else "J"
    figure, axes = _figure(f"validation top-1 against cumulative {against} of training ({unit})")
    for name, block in curves:
        x = [p.time_s if against == "time" else p.energy_j for p in block.curve]
        axes.plot(x, [p.top1 for p in block.curve], marker="o", markersize=3, label=label(name))
        if block.target_accuracy:
            axes.axhline(block.target_accuracy, color="grey", linestyle=":", linewidth=0.8)
    axes.set_xlabel(f"{against} ({unit})")
    axes.set_ylabel("top-1")
    _legend(axes)
    return figure


def scaling(curves: dict[str, list[ScalingPoint]], which: str) -> Figure | None:
    """Data-parallel scaling against world size, one line per configuration (at most MAX_CURVES, the largest
    first): the group's throughput (``which`` = throughput), or the scaling efficiency (``efficiency``),
    each point with its 95% interval as an error bar."""
    named = [(name, points) for name, points in curves.items() if len(points) > 1]
    if not named:
        return None
    title = "throughput of the group against world size" if which == "throughput" else "scaling efficiency"
    named, title = _most(named, lambda item: max(p.throughput_sps for p in item[1]), "configurations", title)
    figure, axes = _figure(title)
    sizes: list[float] = []
    for name, points in named:
        if which == "efficiency":
            points = [p for p in points if p.efficiency is not None or p.world_size == 1]
            values = [p.efficiency.speedup if p.efficiency else 1.0 for p in points]
            lows = [p.efficiency.ci_low if p.efficiency else 1.0 for p in points]
            highs = [p.efficiency.ci_high if p.efficiency else 1.0 for p in points]
        else:
            values = [p.throughput_sps for p in points]
            lows, highs = [p.throughput_ci_sps[0] for p in points], [p.throughput_ci_sps[1] for p in points]
        x = [p.world_size for p in points]
        sizes += x
        below = [value - low for value, low in zip(values, lows, strict=True)]
        errors = [below, [high - value for value, high in zip(values, highs, strict=True)]]
        axes.errorbar(x, values, yerr=errors, marker="o", markersize=3, capsize=3, label=label(name))
    _log(axes, "x", sizes)
    if which == "efficiency":
        axes.axhline(1.0, color="grey", linestyle=":", linewidth=0.8)
    axes.set_xlabel("world size (ranks)")
    axes.set_ylabel("samples/s" if which == "throughput" else "throughput(N) / (N x throughput(1))")
    _legend(axes)
    return figure


def projection(result: Projection) -> Figure:
    """Each series' points, its fit and prediction band, by year, on a log scale."""
    figure, axes = _figure("memory by year: accelerators against what notable models need (log scale)")
    for series in result.series:
        years = np.array([year for year, _, _, _ in series.projected], dtype=float)
        (line,) = axes.plot(years, [value for _, value, _, _ in series.projected], label=label(series.name))
        axes.fill_between(
            years,
            [value if low is None else low for _, value, low, _ in series.projected],
            [value if high is None else high for _, value, _, high in series.projected],
            alpha=0.12,
            color=line.get_color(),
        )
        axes.plot(series.years, series.bytes_, "o", markersize=3, color=line.get_color())
    axes.set_yscale("log")
    axes.set_xlabel("year")
    axes.set_ylabel("bytes")
    _legend(axes)
    return figure
