"""serve's view: a scenario cell's LoadGen verdict beside it in every table, and the serving table (the
scenario's figures as LoadGen reports them, validity and reasons, energy per query) in `wattgap show`
and the report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wattgap.blocks import Serving
from wattgap.render.content import Section, Table
from wattgap.render.format import seconds
from wattgap.render.views.base import View
from wattgap.text import number

if TYPE_CHECKING:
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


def table(results: list[CellResult]) -> Table:
    """One row per serve cell: the scenario, LoadGen's verdict (and why not), samples per second, its
    50th and 99th percentiles and its early-stopping estimate, the lanes in flight and the energy per query."""
    rows = []
    for result in results:
        block = result.block
        if not isinstance(block, Serving):
            continue
        percentile = METRIC.get(block.scenario, "99.00")
        verdict = note(block).partition(": ")[2]
        if block.reasons:
            verdict += f" ({block.reasons[0]})"
        target = number(block.target_qps) if block.scenario == "server" else "-"
        if block.scenario == "server" and block.probes:
            target += f" (best of {len(block.probes)} probes)"
        rows.append(
            [
                result.cell.label.replace("/serve/", "/"),
                verdict,
                number(block.samples_per_s) if block.samples_per_s is not None else "-",
                target,
                seconds(block.percentiles_s.get("50.00")),
                f"p{percentile[:2]} {seconds(block.percentiles_s.get(percentile))}",
                seconds(block.early_stopping_latency_s) if block.early_stopping_latency_s else "-",
                f"{block.in_flight} x b{block.max_batch}",
                f"{number(block.energy_per_query_j)} J" if block.energy_per_query_j is not None else "-",
            ]
        )
    columns = [
        "configuration",
        "LoadGen",
        "samples/s",
        "target QPS",
        "p50",
        "percentile",
        "early stop",
        "in flight",
        "J/query",
    ]
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
