"""Results that cannot all be right. Doing more work per iteration never makes an iteration faster by
much, so when a cell's median latency exceeds that of a larger batch of the same model, workload,
backend, device, precision and threads by more than SLOWER_THAN_LARGER, the smaller cell was measured on
a machine busier than its neighbours' (or its neighbour was): it is flagged, never shown as clean. This
is the minimum that stops a wrong figure from looking right; it is not a noise audit."""

from __future__ import annotations

from wattgap.cells import CELL_FIELDS
from wattgap.results import CellResult, Run

SLOWER_THAN_LARGER = 1.5  # median latency ratio smaller batch / larger batch that no steady machine gives


def suspects(run: Run) -> dict[str, str]:
    """Cell id -> why its figures are suspect, for the run's ok cells."""
    groups: dict[tuple[object, ...], list[CellResult]] = {}
    for result in run.results:
        if result.status == "ok" and result.latency is not None:
            key = tuple(getattr(result.cell, name) for name in CELL_FIELDS if name != "batch_size")
            groups.setdefault(key, []).append(result)
    found: dict[str, str] = {}
    for members in groups.values():
        members.sort(key=lambda r: r.cell.batch_size)
        for position, small in enumerate(members):
            assert small.latency is not None
            for large in members[position + 1 :]:
                assert large.latency is not None
                ratio = small.latency.median_s / large.latency.median_s
                if ratio > SLOWER_THAN_LARGER:
                    found[small.cell_id] = (
                        f"suspect: {ratio:.1f}x slower per iteration than batch {large.cell.batch_size} "
                        "(more work cannot take less time: the machine was likely busy)"
                    )
                    break
    return found
