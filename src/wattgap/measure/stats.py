"""Statistics of per-iteration latencies: robust summaries, confidence intervals of the median, and
noise warnings. numpy (and scipy's t distribution); seeded, so the same samples give the same interval.

Samples come in one window or in several (``protocol.repeats``: one per fresh process). One window's
interval is a percentile bootstrap of its median: it covers the noise inside that window and says nothing
of the drift between processes (README: Statistics), so every view labels it ``within one process``.
Several windows are summarised as one distribution in which every repeat weighs the same (a repeat that
ran faster, and so took more iterations in its time window, does not pull the median its way); the
interval of their median is a Student t interval on the processes' log medians: each process is one
observation of what the cell does, and with k of them the t distribution with k - 1 degrees of freedom
pays honestly for not knowing the spread between processes (a percentile bootstrap over 3 processes
cannot see the spread it has not sampled: it held the truth 76% of the time where it claimed 95%)."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
from pydantic import BaseModel, Field

from wattgap.errors import MeasurementError
from wattgap.text import number

_CHUNK_ELEMENTS = 4_000_000


Samples = np.ndarray | Sequence[np.ndarray]  # one window's samples, or one array per repeat
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p95": 0.95, "p99": 0.99}  # those with intervals (the trade-off's)


class DriftWidening(BaseModel):
    """What widened a result's interval of the median: the machine's drift between runs as a standard
    deviation of log medians (``sd_log``, estimated with ``dof`` degrees of freedom), and the interval the
    run's own samples gave before it."""

    sd_log: float
    dof: float
    own_ci_low_s: float
    own_ci_high_s: float


class LatencyStats(BaseModel):
    """Summary of one cell's latency samples, in seconds. With several repeats the median is the pooled
    one and its interval the t interval over the processes; ``repeat_medians_s`` and ``between_repeat_cv``
    say how far the processes disagreed, ``within_ci_rel_halfwidth`` how wide one window's own interval
    was (the median over the repeats)."""

    n: int
    median_s: float
    mean_s: float
    std_s: float
    min_s: float
    max_s: float
    p50_s: float
    p90_s: float
    p95_s: float
    p99_s: float
    iqr_s: float
    cv: float
    confidence: float
    median_ci_low_s: float
    median_ci_high_s: float
    median_ci_rel_halfwidth: float
    noisy: bool
    warnings: list[str]
    repeats: int = 1
    repeat_medians_s: list[float] = Field(default_factory=list)
    between_repeat_cv: float | None = None  # standard deviation of the repeats' medians over their mean
    within_ci_rel_halfwidth: float | None = None
    # each of PERCENTILES' percentile-bootstrap interval at ``confidence`` over ``resamples`` resamples,
    # computed as the cell is stored, so that analyses need not resample (none in results of 0.1.0)
    resamples: int | None = None
    percentile_ci_s: dict[str, tuple[float, float]] = Field(default_factory=dict)
    # this machine's drift between runs, measured from its earlier runs (measure/drift.py), by which the
    # interval of the median was widened as the result was stored; None: no such drift was measured
    drift: DriftWidening | None = None

    @property
    def covers(self) -> str:
        """What the interval of the median covers, for every view to say."""
        if self.drift is not None:
            return f"{BETWEEN_RUNS} (this machine's drift {self.drift.sd_log:.1%})"
        if self.repeats > 1:
            return f"between {self.repeats} processes"
        return WITHIN_ONE_PROCESS

    @property
    def own_interval(self) -> tuple[float, float]:
        """The interval of the median from this run's samples alone, before any widening by drift."""
        if self.drift is not None:
            return self.drift.own_ci_low_s, self.drift.own_ci_high_s
        return self.median_ci_low_s, self.median_ci_high_s


WITHIN_ONE_PROCESS = "within one process"
BETWEEN_RUNS = "between runs"


def t_quantile(confidence: float, dof: float) -> float:
    """The two-sided ``confidence`` quantile of Student's t with ``dof`` degrees of freedom (infinite: the
    normal one, without importing scipy, a second of a process's start)."""
    level = 1 - (1 - confidence) / 2
    if dof == float("inf"):
        return NormalDist().inv_cdf(level)
    from scipy.stats import t

    return float(t.ppf(level, dof))


def process_interval(medians: Sequence[float], confidence: float) -> tuple[float, float]:
    """The interval of a cell's median from its processes' medians (at least 2): a t interval on their
    logarithms, mapped back (asymmetric, never below zero)."""
    center, error = log_mean_and_error(medians)
    half = t_quantile(confidence, len(medians) - 1) * error
    return float(np.exp(center - half)), float(np.exp(center + half))


def widened(stats: LatencyStats, sd_log: float, dof: float) -> LatencyStats:
    """``stats`` with its interval of the median widened by a drift between runs of ``sd_log`` (a standard
    deviation of log medians, estimated with ``dof`` degrees of freedom): on each side of the median, in
    log space, the run's own standard error (a repeated cell's t interval; one window's bootstrap interval,
    read as a normal one on each side) and the drift are added in quadrature, and the quantile is Student's
    t at the Welch-Satterthwaite degrees of freedom of that sum. The interval the run alone gave is kept.
    A median or interval at zero (no log) is left as it is."""
    own_low, own_high = stats.own_interval
    if not 0 < own_low <= stats.median_s or min(stats.repeat_medians_s, default=1.0) <= 0:
        return stats
    if stats.repeats > 1 and len(stats.repeat_medians_s) > 1:
        center, error = log_mean_and_error(stats.repeat_medians_s)
        errors, own_dof = (error, error), float(len(stats.repeat_medians_s) - 1)
    else:
        z = t_quantile(stats.confidence, float("inf"))
        center = float(np.log(stats.median_s))
        errors = ((center - np.log(own_low)) / z, (np.log(own_high) - center) / z)
        own_dof = float("inf")
    bounds = []
    for sign, error in zip((-1.0, 1.0), errors, strict=True):
        own, extra = float(error) ** 2, sd_log**2
        total = own + extra
        parts = own**2 / own_dof + (extra**2 / dof if dof > 0 else float("inf"))
        freedom = total**2 / parts if parts > 0 else float("inf")
        bounds.append(float(np.exp(center + sign * t_quantile(stats.confidence, freedom) * np.sqrt(total))))
    low, high = bounds
    return stats.model_copy(
        update={
            "median_ci_low_s": low,
            "median_ci_high_s": high,
            "median_ci_rel_halfwidth": (high - low) / 2 / stats.median_s if stats.median_s > 0 else float("inf"),
            "drift": DriftWidening(sd_log=sd_log, dof=dof, own_ci_low_s=own_low, own_ci_high_s=own_high),
        }
    )


def log_mean_and_error(medians: Sequence[float]) -> tuple[float, float]:
    """The mean of the processes' log medians and its standard error (k - 1 degrees of freedom)."""
    logs = np.log(np.asarray(medians, dtype=float))
    return float(np.mean(logs)), float(np.std(logs, ddof=1)) / float(np.sqrt(logs.size))


def log_median_draws(samples: Samples, resamples: int, seed: int = 0) -> np.ndarray:
    """``resamples`` draws of the log of a cell's median, for intervals of ratios between cells: one
    window's are the logs of bootstrap medians; several processes' are their mean log median plus a t
    variable (k - 1 degrees of freedom) scaled by its standard error, the sampling distribution the
    cell's own interval comes from."""
    groups = _groups(samples)
    if len(groups) == 1:
        return np.log(bootstrap_medians(groups[0], resamples, seed))
    center, error = log_mean_and_error([float(np.median(group)) for group in groups])
    return center + error * np.random.default_rng(seed).standard_t(len(groups) - 1, resamples)


def bootstrap_medians(samples: Samples, resamples: int, seed: int = 0) -> np.ndarray:
    """Medians of ``resamples`` bootstrap resamples of ``samples`` (hierarchical for several repeats)."""
    return bootstrap_quantiles(samples, 0.5, resamples, seed)


def _groups(samples: Samples) -> list[np.ndarray]:
    groups = [np.asarray(samples, dtype=float)] if isinstance(samples, np.ndarray) else [np.asarray(g) for g in samples]
    if not groups or any(group.size == 0 for group in groups):
        raise MeasurementError("cannot bootstrap an empty sample")
    return groups


def bootstrap_quantiles(
    samples: Samples, quantile: float | Sequence[float], resamples: int, seed: int = 0
) -> np.ndarray:
    """The ``quantile`` (0.5: the median) of ``resamples`` bootstrap resamples of ``samples``, in chunks so
    that memory stays bounded whatever the sample count. Several quantiles are read off the same resamples:
    an array of one row per quantile. One array: resampled with replacement (drawn through its order
    statistics, ``_one_window``). Several (one per repeat): each resample picks as many repeats with
    replacement, then from each picked repeat as many samples as the smallest repeat holds (every repeat
    weighs the same; the within-repeat part is then, if anything, wider than it should be, not narrower)."""
    groups = _groups(samples)
    rng = np.random.default_rng(seed)
    if len(groups) == 1:
        return _one_window(groups[0], quantile, resamples, rng)
    values = np.empty((*np.shape(quantile), resamples))
    flat = np.concatenate(groups)
    sizes = np.array([group.size for group in groups])
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    draw = int(sizes.min())
    count_groups = len(groups)
    per_chunk = max(1, _CHUNK_ELEMENTS // (count_groups * draw))
    for start in range(0, resamples, per_chunk):
        count = min(per_chunk, resamples - start)
        chosen = rng.integers(0, count_groups, size=(count, count_groups, 1))
        within = (rng.random((count, count_groups, draw)) * sizes[chosen]).astype(np.int64)
        picks = (starts[chosen] + within).reshape(count, count_groups * draw)
        values[..., start : start + count] = np.quantile(flat[picks], quantile, axis=1)
    return values


def _one_window(
    sample: np.ndarray, quantile: float | Sequence[float], resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """``np.quantile(resample, quantile)`` for ``resamples`` resamples of ``sample`` with replacement,
    drawn exactly in distribution without forming one. A resample is n draws ``sorted[ceil(n U) - 1]``
    with U uniform, so its k-th order statistic is ``sorted[ceil(n U_(k)) - 1]``, where U_(k), the k-th of n
    uniforms, is Beta(k, n - k + 1), and the next one up is U_(k) + (1 - U_(k)) Beta(1, n - k) (the least
    of the n - k above it). NumPy's linear quantile at q is the k-th order statistic plus (h - k + 1) times
    the step to the next, h = (n - 1) q, k = floor(h) + 1: two Beta draws per resample and quantile, where
    forming the resamples costs n draws and a partial sort each (20 times slower at a few hundred samples)."""
    ordered = np.sort(sample)
    n = ordered.size
    positions = (n - 1) * np.atleast_1d(np.asarray(quantile, dtype=float))
    values = np.empty((positions.size, resamples))
    for row, position in enumerate(positions):
        k = int(np.floor(position)) + 1
        lower_u = rng.beta(k, n - k + 1, resamples)
        lower = ordered[np.clip(np.ceil(n * lower_u).astype(np.int64) - 1, 0, n - 1)]
        fraction = position - (k - 1)
        if fraction > 0 and k < n:
            upper_u = lower_u + (1 - lower_u) * rng.beta(1, n - k, resamples)
            upper = ordered[np.clip(np.ceil(n * upper_u).astype(np.int64) - 1, 0, n - 1)]
            lower = lower + fraction * (upper - lower)
        values[row] = lower
    return values.reshape((*np.shape(quantile), resamples))


def pooled_quantiles(samples: Samples, quantile: float | Sequence[float]) -> np.ndarray:
    """The ``quantile`` of the samples, every repeat weighing the same (one array: the plain quantile)."""
    groups = _groups(samples)
    if len(groups) == 1:
        return np.asarray(np.quantile(groups[0], quantile))
    weights = np.concatenate([np.full(group.size, 1 / group.size) for group in groups])
    return np.asarray(np.quantile(np.concatenate(groups), quantile, weights=weights, method="inverted_cdf"))


def percentile_intervals(
    samples: Samples, confidence: float, resamples: int, seed: int = 0
) -> dict[str, tuple[float, float]]:
    """Each of PERCENTILES' percentile-bootstrap interval, all read off the same resamples (hierarchical
    for several repeats). One window's p50 interval is median_ci's with the same seed."""
    boots = bootstrap_quantiles(samples, list(PERCENTILES.values()), resamples, seed)
    tail = (1 - confidence) / 2 * 100
    lows, highs = np.percentile(boots, [tail, 100 - tail], axis=-1)
    return {name: (float(low), float(high)) for name, low, high in zip(PERCENTILES, lows, highs, strict=True)}


def median_ci(samples: Samples, confidence: float, resamples: int, seed: int = 0) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the median."""
    medians = bootstrap_medians(samples, resamples, seed)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(medians, [tail, 100 - tail])
    return float(low), float(high)


def summarize(
    latencies_s: Sequence[float],
    confidence: float = 0.95,
    resamples: int = 1000,
    noise_iqr_ratio: float = 0.10,
    seed: int = 0,
) -> LatencyStats:
    """One window's samples summarised."""
    return summarize_repeats([latencies_s], confidence, resamples, noise_iqr_ratio, seed)


def summarize_repeats(
    repeats: Sequence[Sequence[float]],
    confidence: float = 0.95,
    resamples: int = 1000,
    noise_iqr_ratio: float = 0.10,
    seed: int = 0,
) -> LatencyStats:
    """The samples of one or more windows (one per repeat) summarised as one distribution in which each
    repeat weighs the same, with the interval of its median (within the one window, or a t interval over
    the processes) and the spread between repeats."""
    groups = [np.asarray(samples, dtype=float) for samples in repeats]
    for index, samples in enumerate(groups):
        which = f" (repeat {index + 1})" if len(groups) > 1 else ""
        if samples.size < 2:
            raise MeasurementError(f"need at least 2 latency samples for statistics{which}, got {samples.size}")
        if not np.all(np.isfinite(samples)) or np.any(samples < 0):
            raise MeasurementError(f"latency samples must be finite and non-negative{which}")
    pooled = np.concatenate(groups)
    weights = np.concatenate([np.full(samples.size, 1 / samples.size) for samples in groups])
    p25, p50, p75, p90, p95, p99 = pooled_quantiles(groups, [0.25, 0.5, 0.75, 0.9, 0.95, 0.99])
    median = float(p50)
    mean = float(np.average(pooled, weights=weights))
    spread = np.average((pooled - mean) ** 2, weights=weights) * pooled.size / (pooled.size - 1)
    std = float(np.sqrt(spread))
    medians = [float(np.median(samples)) for samples in groups]
    intervals = percentile_intervals(groups, confidence, resamples, seed)
    if len(groups) > 1:
        low, high = process_interval(medians, confidence)
    else:
        low, high = intervals["p50"]  # median_ci's, read off the same resamples as the other percentiles
    iqr = float(p75 - p25)
    rel_half = (high - low) / 2 / median if median > 0 else float("inf")
    warnings: list[str] = []
    noisy = median > 0 and iqr / median > noise_iqr_ratio
    if noisy:
        warnings.append(f"noisy: IQR is {iqr / median:.0%} of the median (threshold {noise_iqr_ratio:.0%})")
    between: dict[str, object] = {}
    if len(groups) > 1:
        cv = float(np.std(medians, ddof=1) / np.mean(medians)) if np.mean(medians) > 0 else float("inf")
        within = []
        for index, samples in enumerate(groups):
            one_low, one_high = median_ci(samples, confidence, resamples, seed + 1 + index)
            within.append((one_high - one_low) / 2 / medians[index] if medians[index] > 0 else float("inf"))
        between = {
            "repeats": len(groups),
            "repeat_medians_s": medians,
            "between_repeat_cv": cv,
            "within_ci_rel_halfwidth": float(np.median(within)),
        }
        if cv > noise_iqr_ratio:
            noisy = True
            shown = ", ".join(f"{number(m * 1e3)}" for m in medians)
            warnings.append(
                f"noisy between processes: the repeats' medians ({shown} ms) vary by {cv:.0%} "
                f"(threshold {noise_iqr_ratio:.0%})"
            )
    return LatencyStats(
        n=int(pooled.size),
        median_s=median,
        mean_s=mean,
        std_s=std,
        min_s=float(pooled.min()),
        max_s=float(pooled.max()),
        p50_s=median,
        p90_s=float(p90),
        p95_s=float(p95),
        p99_s=float(p99),
        iqr_s=iqr,
        cv=std / mean if mean > 0 else float("inf"),
        confidence=confidence,
        median_ci_low_s=low,
        median_ci_high_s=high,
        median_ci_rel_halfwidth=rel_half,
        noisy=noisy,
        warnings=warnings,
        resamples=resamples,
        percentile_ci_s=intervals,
        **between,
    )
