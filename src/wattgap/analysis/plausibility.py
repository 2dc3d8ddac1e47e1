"""Results that cannot all be right. Doing more work per iteration never makes an iteration faster by
much, so when a cell's median latency exceeds that of a larger batch of the same model, workload,
backend, device, precision and threads by more than SLOWER_THAN_LARGER, the smaller cell was measured on
a machine busier than its neighbours' (or its neighbour was): it is flagged, never shown as clean. This
is the minimum that stops a wrong figure from looking right; it is not a noise audit."""

from __future__ import annotations

from dataclasses import dataclass

from wattgap.cells import CELL_FIELDS
from wattgap.results import CellResult, Run

SLOWER_THAN_LARGER = 1.5  # median latency ratio smaller batch / larger batch that no steady machine gives


def suspects(run: Run) -> dict[str, str]:
    """Cell id -> why its figures are suspect, for the run's ok cells."""
    groups: dict[tuple[object, ...], list[CellResult]] = {}
    for result in run.results:
        if result.status == "ok" and result.latency is not None and not result.probe:
            key = tuple(getattr(result.cell, name) for name in CELL_FIELDS if name != "batch_size")
            groups.setdefault(key, []).append(result)
    found: dict[str, str] = {}
    for members in groups.values():
        members.sort(key=lambda r: r.cell.batch_size)
        for position, small in enumerate(members):
            assert small.latency is not None
            for large in members[position + 1 :]:
                assert large.latency is not None
                if _same_work(small, large):  # a serve cell's query holds the same samples at any batch
                    continue
                ratio = small.latency.median_s / large.latency.median_s
                if ratio > SLOWER_THAN_LARGER:
                    found[small.cell_id] = (
                        f"suspect: {ratio:.1f}x slower per iteration than batch {large.cell.batch_size} "
                        "(more work cannot take less time: the machine was likely busy)"
                    )
                    break
    return found


def _same_work(small: CellResult, large: CellResult) -> bool:
    """Whether the larger batch's iteration holds no more samples than the smaller's (known for both)."""
    fewer, more = small.samples_per_iteration, large.samples_per_iteration
    return fewer is not None and more is not None and more <= fewer


def suspects_of(runs: list[Run]) -> dict[str, str]:
    """``suspects`` over several runs: a cell held by several of them is judged as the last run given
    holds it (the one the analyses keep: tradeoff.finished_cells)."""
    found: dict[str, str] = {}
    for run in runs:
        flagged = suspects(run)
        for result in run.results:
            found.pop(result.cell_id, None)
            if result.cell_id in flagged:
                found[result.cell_id] = flagged[result.cell_id]
    return found


SUSPECT, NOISY = "SUSPECT", "noisy"


def caveats(result: CellResult, flagged: dict[str, str]) -> list[str]:
    """What must be said before an answer rests on ``result``: SUSPECT (its noise audit found the machine
    busy, or its figures contradict a neighbour's: ``flagged``, from ``suspects``) and noisy (a wide
    spread of latencies, within or between its processes). Empty for a quiet cell."""
    found = []
    if result.cell_id in flagged or (result.noise is not None and result.noise.suspect):
        found.append(SUSPECT)
    if result.latency is not None and result.latency.noisy:
        found.append(NOISY)
    return found


def rests_on(found: list[str]) -> str:
    """The words an answer carries when it rests on a cell with ``found`` caveats ('' for a quiet one)."""
    if SUSPECT in found:
        return f"rests on a {' and '.join(found)} cell: no quiet cell would do; measure again on a quiet machine"
    if found:
        return "rests on a noisy cell: its latencies spread widely around the median"
    return ""


def passed_over(found: list[str]) -> bool:
    """Whether an answer prefers any other cell to one with ``found`` caveats: a SUSPECT cell's figures may
    be wrong (the machine was busy), so a quiet cell is preferred to it; a noisy cell's median stands, with
    its spread said."""
    return SUSPECT in found


@dataclass(frozen=True)
class Highest:
    """The cell of a workload with the highest throughput (batch / median), and its caveats."""

    workload: str
    result: CellResult
    caveats: list[str]


def highest(run: Run) -> list[Highest]:
    """Per workload, the ok cell with the highest throughput (batch / median) among those not SUSPECT, or
    among all when every one is (``passed_over``); with its caveats; degraded cells never compete."""
    flagged = suspects(run)
    by_workload: dict[str, list[CellResult]] = {}
    for result in run.results:
        degraded = result.agreement is not None and result.agreement.degraded
        if result.status == "ok" and result.throughput_median_sps is not None and not (degraded or result.probe):
            by_workload.setdefault(result.cell.workload, []).append(result)
    found = []
    for workload, members in by_workload.items():
        quiet = [member for member in members if not passed_over(caveats(member, flagged))]
        best = max(quiet or members, key=lambda member: member.throughput_median_sps or 0.0)
        found.append(Highest(workload, best, caveats(best, flagged)))
    return found
