"""Data-parallel scaling (train-ddp): each configuration's throughput against its world size, and its
scaling efficiency throughput(N) / (N x throughput(1)) with an interval.

With the batch per rank fixed, throughput(N) = N x batch / median step(N), so the efficiency is
median step(1) / median step(N): the ratio of two cells' medians, bounded from their raw samples as every
speedup is (analysis/speedup.pair: each side resampled on its own)."""

from __future__ import annotations

from dataclasses import dataclass

from wattgap.analysis.speedup import Pair, pair
from wattgap.blocks import DataParallel
from wattgap.results import CellResult


@dataclass(frozen=True)
class ScalingPoint:
    result: CellResult  # the cell at this world size
    world_size: int
    throughput_sps: float  # the group's: world size x batch / median step
    throughput_ci_sps: tuple[float, float]  # from the median's interval
    efficiency: Pair | None  # against the same configuration at world size 1 (None: no such cell finished)
    allreduce_share: float


def scaling(results: list[CellResult], seed: int = 0) -> dict[str, list[ScalingPoint]]:
    """The finished train-ddp cells of ``results`` by configuration (their label without the world size),
    each configuration's points in world-size order."""
    groups: dict[str, list[CellResult]] = {}
    for result in results:
        if result.status == "ok" and result.latency is not None and isinstance(result.block, DataParallel):
            label = result.cell.model_copy(update={"world_size": 1}).label
            groups.setdefault(label, []).append(result)
    curves = {}
    for label, cells in groups.items():
        cells.sort(key=lambda r: r.cell.world_size)
        base = cells[0] if cells[0].cell.world_size == 1 else None
        points = []
        for result in cells:
            stats, block = result.latency, result.block
            assert stats is not None and isinstance(block, DataParallel)
            group_batch = result.cell.batch_size * result.cell.world_size
            low, high = stats.median_ci_low_s, stats.median_ci_high_s
            efficiency = None
            if base is not None and result is not base:
                efficiency = pair(base, result, {"world_size": result.cell.world_size}, seed)
            points.append(
                ScalingPoint(
                    result,
                    result.cell.world_size,
                    group_batch / stats.median_s,
                    (group_batch / high, group_batch / low),
                    efficiency,
                    block.allreduce_share,
                )
            )
        curves[label] = points
    return curves
