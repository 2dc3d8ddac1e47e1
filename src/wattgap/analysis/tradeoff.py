"""The latency-throughput trade-off over batch size, and the best batch by a stated rule.

Cells that differ only in batch size form a curve (one per model, workload, backend, device, precision,
threads and memory format). Each point carries throughput per sample (batch / median latency) and
latency percentiles, each with a percentile-bootstrap interval from the cell's raw samples. Two rules
pick a batch:

- the knee: the smallest batch whose throughput reaches ``share`` (90% by default) of the curve's
  highest throughput: past it, a larger batch buys little throughput and costs latency;
- under a latency bound: the batch of highest throughput whose latency percentile is within the bound.

Both rules pass over a SUSPECT point (its machine was busy, or it contradicts a neighbour:
analysis/plausibility.py) unless every point is one, and a pick that rests on a SUSPECT or noisy point
says so in the curve's notes.

Pure: stored results in, typed results out; no formatting."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from wattgap.analysis.plausibility import caveats, passed_over, rests_on, suspects_of
from wattgap.analysis.scaling import ScalingPoint, scaling
from wattgap.cells import curve_key
from wattgap.errors import ConfigError, field_error
from wattgap.measure.stats import PERCENTILES, percentile_intervals, pooled_quantiles
from wattgap.results import CellResult, Run
from wattgap.text import number
from wattgap.workloads import WORKLOADS


@dataclass(frozen=True)
class Estimate:
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Point:
    result: CellResult
    throughput_sps: Estimate  # batch / median latency
    latency_s: dict[str, Estimate]  # by percentile name
    samples: int
    caveats: list[str] = field(default_factory=list)  # SUSPECT, noisy (set by tradeoff)

    @property
    def batch_size(self) -> int:
        return self.result.cell.batch_size

    def resolves(self, percentile: str) -> bool:
        """Whether the cell has samples enough for the percentile to be more than its largest sample
        (at least 1 / (1 - q) of them: 100 for p99)."""
        return self.samples * (1 - PERCENTILES[percentile]) >= 1


@dataclass(frozen=True)
class Curve:
    key: dict[str, object]  # the cell fields the points share (all but batch_size)
    points: list[Point]  # by batch size
    knee: Point
    bounded: Point | None  # the best batch under the latency bound; None without a bound or within none
    highest: Point  # the highest throughput, a SUSPECT point only when every point is one
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Tradeoff:
    run_ids: list[str]
    share: float
    percentile: str
    max_latency_s: float | None
    confidence: float
    curves: list[Curve]
    scaling: dict[str, list[ScalingPoint]] = field(default_factory=dict)  # train-ddp cells against world size


def tradeoff(
    runs: list[Run],
    share: float = 0.9,
    max_latency_s: float | None = None,
    percentile: str = "p99",
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> Tradeoff:
    """The curves of the runs' finished cells. A cell held by several of the runs counts once, as the
    last run given holds it."""
    if not 0 < share <= 1:
        raise field_error("--share", share, "a fraction in (0, 1]")
    if max_latency_s is not None and not max_latency_s > 0:
        raise field_error("--max-latency-ms", max_latency_s * 1e3, "a positive number of milliseconds")
    if percentile not in PERCENTILES:
        raise field_error("--percentile", percentile, PERCENTILES)
    groups: dict[tuple[tuple[str, object], ...], list[CellResult]] = {}
    finished = finished_cells(runs, "tradeoff")
    for result in finished:
        groups.setdefault(curve_key(result.cell), []).append(result)
    flagged = suspects_of(runs)
    curves = []
    for key, results in groups.items():
        points = [replace(measure_point(r, confidence, resamples, seed), caveats=caveats(r, flagged)) for r in results]
        points.sort(key=lambda p: p.batch_size)
        curves.append(_curve(dict(key), points, share, max_latency_s, percentile))
    by_world = scaling(finished, seed)
    return Tradeoff([r.run_id for r in runs], share, percentile, max_latency_s, confidence, curves, by_world)


def finished_cells(runs: list[Run], command: str) -> list[CellResult]:
    """The finished timed cells of ``runs`` whose samples are batch iterations (Workload.batch_iterations:
    not serve's queries); a cell held by several runs counts once, as the last run given holds it. None at
    all is a one-line error naming ``command``."""
    cells: dict[str, CellResult] = {}
    queries = {name for name, workload in WORKLOADS.items() if not workload.batch_iterations}
    for run in runs:
        cells.update(
            {
                r.cell_id: r
                for r in run.results
                if r.status == "ok" and r.latencies_s and not r.probe and r.cell.workload not in queries
            }
        )
    if not cells:
        served = any(r.cell.workload in queries for run in runs for r in run.results)
        also = " (serve cells are LoadGen's queries, not batches: `wattgap show` has their table)" if served else ""
        raise ConfigError(f"{command}: runs {', '.join(r.run_id for r in runs)} hold no finished timed cells{also}")
    return list(cells.values())


def measure_point(result: CellResult, confidence: float, resamples: int, seed: int) -> Point:
    """A cell's throughput and latency percentiles, each with its percentile-bootstrap interval: those
    stored with the cell when they were computed at this confidence and resample count (every result since
    schema 8), else computed here from its samples with ``seed``."""
    stats = result.latency
    if stats is not None and stats.percentile_ci_s and (stats.confidence, stats.resamples) == (confidence, resamples):
        centres = [getattr(stats, f"{name}_s") for name in PERCENTILES]
        intervals, samples = stats.percentile_ci_s, stats.n
    else:
        groups = [np.asarray(group) for group in result.sample_groups()]  # one per process when the cell repeats
        centres = list(pooled_quantiles(groups, list(PERCENTILES.values())))
        intervals, samples = percentile_intervals(groups, confidence, resamples, seed), sum(g.size for g in groups)
    latency = {
        name: Estimate(float(centre), *intervals[name]) for name, centre in zip(PERCENTILES, centres, strict=True)
    }
    batch = result.cell.batch_size
    median = latency["p50"]
    throughput = Estimate(batch / median.value, batch / median.high, batch / median.low)
    return Point(result, throughput, latency, samples)


def _curve(
    key: dict[str, object], points: list[Point], share: float, max_latency_s: float | None, percentile: str
) -> Curve:
    trusted = [p for p in points if not passed_over(p.caveats)] or points  # SUSPECT points only when all are
    highest = max(trusted, key=lambda p: p.throughput_sps.value)
    knee = next(p for p in trusted if p.throughput_sps.value >= share * highest.throughput_sps.value)
    notes = []
    if len(points) == 1:
        notes.append("one batch size: no trade-off to read")
    left = [p.batch_size for p in points if passed_over(p.caveats)] if trusted is not points else []
    if left:
        notes.append(f"batch {', '.join(map(str, left))} passed over: SUSPECT (measure again on a quiet machine)")
    bounded = None
    if max_latency_s is not None:
        within = [p for p in trusted if p.latency_s[percentile].value <= max_latency_s]
        bounded = max(within, key=lambda p: p.throughput_sps.value, default=None)
        if bounded is None:
            fastest = min(trusted, key=lambda p: p.latency_s[percentile].value)
            notes.append(
                f"no batch within the bound: the lowest {percentile} is batch {fastest.batch_size}'s, "
                f"{number(fastest.latency_s[percentile].value * 1e3)} ms"
            )
    for what, point in (("the knee", knee), ("the best batch under the bound", bounded)):
        if point is not None and point.caveats:
            notes.append(f"{what} (batch {point.batch_size}) {rests_on(point.caveats)}")
    unresolved = [p.batch_size for p in points if not p.resolves(percentile)]
    if unresolved:
        notes.append(
            f"{percentile} of batch {', '.join(map(str, unresolved))} rests on fewer than "
            f"{round(1 / (1 - PERCENTILES[percentile]))} samples (it is close to their maximum)"
        )
    return Curve(key, points, knee, bounded, highest, notes)
