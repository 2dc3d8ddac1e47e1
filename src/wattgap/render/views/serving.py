"""serve's view: a scenario cell's LoadGen verdict beside it in every table, and the serving table (the
scenario's figures as LoadGen reports them, validity and reasons, energy per query) in `wattgap show`
and the report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wattgap.blocks import Serving
from wattgap.cells import CELL_FIELDS
from wattgap.render.content import Section, Table
from wattgap.render.format import seconds
from wattgap.render.views.base import View
from wattgap.text import number

if TYPE_CHECKING:
    from wattgap.cells import Cell
    from wattgap.results import CellResult

METRIC = {  # each scenario's MLPerf metric: the percentile it bounds, or its throughput
    "single-stream": "90.00",
    "multi-stream": "99.00",
}


def note(block: Serving) -> str:
    if block.mlperf_valid:
        verdict = "MLPerf-valid"
    elif block.validity == "VALID":
        verdict = "VALID, shorter than MLPerf's"
    else:
        verdict = "INVALID"
    return f"LoadGen {block.scenario}: {verdict}"


def _verdict(block: Serving) -> str:
    """LoadGen's verdict in a few words: MLPerf-valid, VALID but shortened, or INVALID and what failed."""
    if block.validity == "VALID":
        return "MLPerf-valid" if block.mlperf_valid else "VALID, shortened"
    failed = [reason.removeprefix("the ").removesuffix(" was not met").removesuffix(" was not satisfied")
              for reason in block.reasons if reason.endswith(("was not met", "was not satisfied"))]  # fmt: skip
    return f"INVALID: {', '.join(failed)}" if failed else "INVALID"


PREFIXES = {"batch_size": "b", "threads": "t", "world_size": "w"}


def _label(cell: Cell, served: list[CellResult]) -> str:
    """The cell by what differs between the serve cells (what they share is said above the table), its
    scenario always."""
    varying = [
        name
        for name in CELL_FIELDS
        if name not in ("workload", "scenario") and len({getattr(r.cell, name) for r in served}) > 1
    ]
    return "/".join([*(f"{PREFIXES.get(name, '')}{getattr(cell, name)}" for name in varying), cell.scenario])


def table(results: list[CellResult]) -> Table:
    """One row per serve cell: LoadGen's verdict (and what failed), samples per second, the server's
    target, the 50th percentile and the scenario's (its early-stopping estimate where LoadGen gives one),
    the lanes in flight and the energy per query."""
    rows = []
    served = [result for result in results if isinstance(result.block, Serving)]
    for result in served:
        block = result.block
        assert isinstance(block, Serving)
        percentile = METRIC.get(block.scenario, "99.00")
        tail = f"p{percentile[:2]} {seconds(block.percentiles_s.get(percentile))}"
        if block.early_stopping_latency_s:
            tail += f" (est. {seconds(block.early_stopping_latency_s)})"
        target = number(block.target_qps) if block.scenario == "server" else "-"
        if block.scenario == "server" and block.probes:
            target += f" ({len(block.probes)} probes)"
        rows.append(
            [
                _label(result.cell, served),
                _verdict(block),
                number(block.samples_per_s) if block.samples_per_s is not None else "-",
                target,
                seconds(block.percentiles_s.get("50.00")),
                tail,
                f"{block.in_flight}",
                f"{number(block.energy_per_query_j)} J" if block.energy_per_query_j is not None else "-",
            ]
        )
    columns = ["cell", "LoadGen", "samples/s", "target QPS", "p50", "percentile", "lanes", "J/query"]
    caption = "serving (MLPerf LoadGen): figures as LoadGen reports them; latency from issue to completion"
    return Table(columns, rows, caption=caption)


def section(results: list[CellResult]) -> Section:
    intro = [
        "Each cell is one MLPerf LoadGen test of the cell's inference as the system under test, with MLPerf's "
        "settings unless the sweep gave its own: a test shorter than MLPerf's minimums can be VALID for LoadGen "
        "and is then not MLPerf-valid. Single-stream is judged by its 90th percentile, multi-stream by its 99th, "
        "server by whether its 99th percentile stays under the latency bound at the target QPS, offline by its "
        "samples per second. LoadGen's summary and detail logs are kept with each result (`wattgap export`)."
    ]
    return Section("serving", "Serving scenarios (MLPerf LoadGen)", intro, [], [table(results)])


VIEW = View("serve", note, section, table)
