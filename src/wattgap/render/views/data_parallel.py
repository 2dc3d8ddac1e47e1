"""train-ddp's view: a cell's ranks and all-reduce share beside it in every table, and the scaling section
(throughput and scaling efficiency against world size, with intervals) in `wattgap show`, `tradeoff`
and the report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wattgap.analysis.scaling import ScalingPoint, scaling
from wattgap.blocks import DataParallel
from wattgap.render import plots
from wattgap.render.content import Section, Table, figure_plots
from wattgap.render.format import quantity
from wattgap.render.views.base import View
from wattgap.text import number

if TYPE_CHECKING:
    from wattgap.results import CellResult


def note(block: DataParallel) -> str:
    return f"{block.world_size} ranks ({block.process_group}), all-reduce {block.allreduce_share:.0%} of rank 0's time"


def table(results: list[CellResult]) -> Table:
    """The scaling table of the train-ddp cells among ``results`` (table_of)."""
    return table_of(scaling(results))


def table_of(curves: dict[str, list[ScalingPoint]]) -> Table:
    """One row per world size of each configuration: the group's throughput and the scaling efficiency,
    each with its 95% interval, the all-reduce share and the ranks' largest peak host memory."""
    rows = []
    for label, points in curves.items():
        for point in points:
            low, high = point.throughput_ci_sps
            eff = point.efficiency
            efficiency = "base" if point.world_size == 1 else "-"
            if eff is not None:
                efficiency = f"{eff.speedup:.0%} [{eff.ci_low:.0%}, {eff.ci_high:.0%}]"
            block = point.result.block
            assert isinstance(block, DataParallel)
            peaks = [peak for peak in block.rank_peak_rss_bytes if peak is not None]
            rows.append(
                [
                    label.replace("/train-ddp/", "/"),
                    str(point.world_size),
                    f"{number(point.throughput_sps)} [{number(low)}, {number(high)}]",
                    efficiency,
                    f"{point.allreduce_share:.0%}",
                    quantity(max(peaks), "B", 1024.0) if peaks else "-",
                ]
            )
    columns = ["configuration", "ranks", "samples/s [95% CI]", "efficiency [95% CI]", "all-reduce", "peak/rank"]
    caption = "data-parallel scaling (train-ddp): efficiency = throughput(N) / (N x throughput(1))"
    return Table(columns, rows, caption=caption)


def section(results: list[CellResult]) -> Section:
    curves = scaling(results)
    figures = figure_plots("scaling-throughput", "Throughput against world size", plots.scaling(curves, "throughput"))
    figures += figure_plots("scaling-efficiency", "Scaling efficiency", plots.scaling(curves, "efficiency"))
    intro = [
        "Throughput is the group's (world size x batch per rank / rank 0's median step). Scaling efficiency is "
        "throughput(N) / (N x throughput(1)), bounded from both cells' raw samples. The all-reduce share is "
        "the time DDP's gradient all-reduce took over rank 0's measured time; it overlaps the backward pass, "
        "so it bounds what the all-reduce adds from above."
    ]
    return Section("data-parallel", "Data-parallel scaling", intro, figures, [table(results)])


VIEW = View("train-ddp", note, section, table)
