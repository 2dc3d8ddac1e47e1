"""This machine's drift between runs: how far the median of the same cell moves from one run to the next
beyond what each run's own interval says, measured from the runs a database already holds.

The processes of one run share its stretch of the machine's life (its neighbours, its thermal state, the
host's other guests), so their medians agree with each other better than with a run made minutes or hours
later: on the 2-core VM, t intervals over 3 or 5 processes held the median of the other runs of the same
cells 50-77% of the time where they claimed 95%. A run's interval covers what a rerun would find only if it
includes that drift. Model, in log space: a run's figure for a cell (the log median of its one window, or
the mean log median of its processes) is the cell's true value, plus a run effect of variance sigma^2,
plus the run's own error, whose variance v the run states itself (its t interval's standard error, or its
bootstrap interval's). Over the runs of one cell, the sample variance of their figures estimates sigma^2 +
mean(v); pooled over every cell with two runs or more, sigma^2 = (sum of squares - sum of (k - 1) mean(v))
/ sum of (k - 1), never below zero, with sum of (k - 1) degrees of freedom.

What a run misses depends on how it measured: a single process misses both the drift between runs and the
spread between processes of one run; several processes miss the first only. So the drift is estimated for
each kind of run apart (runs of one process, runs of several) and each device family (the CPU drifts
otherwise than a GPU). A kind with no history of its own borrows the other's, and says so: a single
process takes the repeated runs' drift plus their spread between processes, several processes take the
single-process drift (which is wider than theirs: an upper bound). Cells of the same fields measure the
same work only under the same work settings (image size, dataset, each component's settings), so those
are part of what makes two cells the same. Cells the noise audit flagged SUSPECT, probes and failed cells
are passed over: a busy machine is not the machine's drift."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from wattgap.measure.stats import LatencyStats, log_mean_and_error, t_quantile, widened
from wattgap.text import age

ONE, SEVERAL = "one process", "several processes"
DRIFT_MAX_AGE_S = 7 * 24 * 3600.0  # older runs are not used: machines change
# a drift of several processes measured on fewer degrees of freedom is young: from a few runs the
# method-of-moments estimate often comes out at zero (it did for the first runs of the A/A bench, whose
# later runs drifted 7%), so it is bounded above by what a single process misses, which the same runs
# measure from far more degrees of freedom (the spread between their processes)
YOUNG_DOF = 30
DRIFT_RUNS = 200  # at most this many of the newest runs on the machine are read (a new run starts in well under 1 s)


class Drift(BaseModel):
    """The drift between runs that widens the intervals of one kind of run on one device family: a
    standard deviation of log medians with its degrees of freedom, and how it was measured."""

    sd_log: float
    dof: float
    cells: int  # cell histories (the same cell and work in two runs or more) it pools
    runs: list[str]  # the runs they came from
    newest_age_s: float  # the newest of them, when this run started
    source: str  # which runs measured it ("runs of one process", or what it borrowed)

    def text(self) -> str:
        return (
            f"this machine's drift between runs, {self.sd_log:.2%} ({self.source}: {self.cells} cells measured "
            f"again in {len(self.runs)} runs, the newest {age(self.newest_age_s)} old; {self.dof:g} degrees of "
            "freedom)"
        )


@dataclass(frozen=True)
class Observation:
    """One stored result as the drift sees it: which cell and work, its device family and kind of run, its
    figure (a log median), the variance the run itself states for that figure, and, for several
    processes, the sum of squares of their log medians about their mean with its degrees of freedom."""

    run_id: str
    same: tuple[str, str]  # (work settings, cell id): the same cell doing the same work
    family: str
    kind: str
    center: float
    variance: float
    within_squares: float = 0.0
    within_dof: int = 0


def family(device: str) -> str:
    """A device's family: cuda:1 and cuda drift alike (one pool), the CPU otherwise."""
    return device.partition(":")[0]


def observe(run_id: str, work: str, cell_id: str, device: str, latency: dict[str, Any]) -> Observation | None:
    """The observation of a stored result's latency summary (a LatencyStats as JSON), or None when it
    states no usable interval."""
    try:
        stats = LatencyStats.model_validate(latency)
    except ValueError:
        return None
    medians = [m for m in stats.repeat_medians_s if m > 0]
    same = (work, cell_id)
    if stats.repeats > 1 and len(medians) > 1:
        mean, error = log_mean_and_error(medians)  # the run's own t interval's centre and standard error
        count = len(medians)
        squares = error**2 * count * (count - 1)  # of the log medians about their mean
        return Observation(run_id, same, family(device), SEVERAL, mean, error**2, squares, count - 1)
    low, high = stats.own_interval
    if not 0 < low <= stats.median_s <= high:
        return None
    z = t_quantile(stats.confidence, math.inf)
    variance = ((math.log(high) - math.log(low)) / (2 * z)) ** 2
    return Observation(run_id, same, family(device), ONE, math.log(stats.median_s), variance)


@dataclass(frozen=True)
class _Pool:
    variance: float
    dof: int
    cells: int
    runs: list[str]
    within: float | None  # the pooled variance between processes of one run (several processes only)


def _pool(observations: list[Observation]) -> _Pool | None:
    by_cell: dict[tuple[str, str], list[Observation]] = {}
    for seen in observations:
        by_cell.setdefault(seen.same, []).append(seen)
    squares = stated = 0.0
    dof = cells = 0
    runs: list[str] = []
    for history in by_cell.values():
        if len(history) < 2:
            continue
        mean = sum(seen.center for seen in history) / len(history)
        squares += sum((seen.center - mean) ** 2 for seen in history)
        stated += (len(history) - 1) * sum(seen.variance for seen in history) / len(history)
        dof += len(history) - 1
        cells += 1
        runs += [seen.run_id for seen in history]
    if not dof:
        return None
    within_dof = sum(seen.within_dof for seen in observations)
    within = sum(seen.within_squares for seen in observations) / within_dof if within_dof else None
    return _Pool(max(0.0, (squares - stated) / dof), dof, cells, list(dict.fromkeys(runs)), within)


def estimate(observations: Iterable[Observation], created_s: dict[str, float], now_s: float) -> dict[str, Drift]:
    """The drift of each device family and kind of run ("cpu/one process"), from ``observations`` of
    earlier runs (``created_s``: each run's creation time), borrowing across kinds where one has no history
    (module docstring). Empty when no cell was measured twice."""
    grouped: dict[tuple[str, str], list[Observation]] = {}
    for seen in observations:
        grouped.setdefault((seen.family, seen.kind), []).append(seen)
    pools = {key: pool for key, history in grouped.items() if (pool := _pool(history)) is not None}
    found: dict[str, Drift] = {}
    for device in {key[0] for key in grouped}:
        one, several = pools.get((device, ONE)), pools.get((device, SEVERAL))
        chosen: dict[str, tuple[float, float, _Pool, str]] = {}
        if one is not None:
            chosen[ONE] = (one.variance, one.dof, one, "runs of one process")
        elif several is not None and several.within is not None:
            source = "runs of several processes: their drift between runs plus their spread between processes"
            chosen[ONE] = (several.variance + several.within, several.dof, several, source)
        if several is not None and several.dof < YOUNG_DOF and several.within is not None:
            source = (
                f"runs of several processes, whose drift rests on fewer than {YOUNG_DOF} degrees of freedom: "
                "their drift between runs plus their spread between processes, an upper bound"
            )
            chosen[SEVERAL] = (several.variance + several.within, several.dof, several, source)
        elif several is not None:
            chosen[SEVERAL] = (several.variance, several.dof, several, "runs of several processes")
        elif one is not None:
            chosen[SEVERAL] = (one.variance, one.dof, one, "runs of one process, an upper bound for several")
        for kind, (variance, dof, pool, source) in chosen.items():
            newest = max(created_s.get(run_id, now_s) for run_id in pool.runs)
            found[f"{device}/{kind}"] = Drift(  # the key_of a result it applies to
                sd_log=math.sqrt(variance),
                dof=float(dof),
                cells=pool.cells,
                runs=pool.runs,
                newest_age_s=round(max(0.0, now_s - newest), 1),
                source=source,
            )
    return found


def key_of(device: str, processes: int) -> str:
    """Which drift applies to a result of ``processes`` processes on ``device``: "cpu/one process"."""
    return f"{family(device)}/{SEVERAL if processes > 1 else ONE}"


def drift_for(drifts: dict[str, Drift], device: str, processes: int) -> Drift | None:
    """The drift that applies to a result of ``processes`` processes on ``device``, if one was measured."""
    return drifts.get(key_of(device, processes))


def apply(stats: LatencyStats, drift: Drift) -> LatencyStats:
    """``stats`` with its interval of the median widened by ``drift`` (measure/stats.widened)."""
    return widened(stats, drift.sd_log, drift.dof)
