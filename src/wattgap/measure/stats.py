"""Statistics of per-iteration latencies: robust summaries, a bootstrap confidence interval of the
median, and noise warnings. numpy only; seeded, so the same samples give the same interval."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import BaseModel

from wattgap.errors import MeasurementError

_CHUNK_ELEMENTS = 4_000_000


class LatencyStats(BaseModel):
    """Summary of one cell's latency samples, in seconds."""

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


def bootstrap_medians(samples: np.ndarray, resamples: int, seed: int = 0) -> np.ndarray:
    """Medians of ``resamples`` bootstrap resamples of ``samples`` (with replacement)."""
    return bootstrap_quantiles(samples, 0.5, resamples, seed)


def bootstrap_quantiles(
    samples: np.ndarray, quantile: float | Sequence[float], resamples: int, seed: int = 0
) -> np.ndarray:
    """The ``quantile`` (0.5: the median) of ``resamples`` bootstrap resamples of ``samples`` (with
    replacement), in chunks so that memory stays bounded whatever the sample count. Several quantiles
    are read off the same resamples: an array of one row per quantile."""
    if samples.size == 0:
        raise MeasurementError("cannot bootstrap an empty sample")
    rng = np.random.default_rng(seed)
    per_chunk = max(1, _CHUNK_ELEMENTS // samples.size)
    values = np.empty((*np.shape(quantile), resamples))
    for start in range(0, resamples, per_chunk):
        count = min(per_chunk, resamples - start)
        picks = rng.integers(0, samples.size, size=(count, samples.size))
        values[..., start : start + count] = np.quantile(samples[picks], quantile, axis=1)
    return values


def median_ci(samples: np.ndarray, confidence: float, resamples: int, seed: int = 0) -> tuple[float, float]:
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
    samples = np.asarray(latencies_s, dtype=float)
    if samples.size < 2:
        raise MeasurementError(f"need at least 2 latency samples for statistics, got {samples.size}")
    if not np.all(np.isfinite(samples)) or np.any(samples < 0):
        raise MeasurementError("latency samples must be finite and non-negative")
    p25, p50, p75, p90, p95, p99 = np.percentile(samples, [25, 50, 75, 90, 95, 99])
    median = float(p50)
    mean = float(samples.mean())
    std = float(samples.std(ddof=1))
    low, high = median_ci(samples, confidence, resamples, seed)
    iqr = float(p75 - p25)
    rel_half = (high - low) / 2 / median if median > 0 else float("inf")
    warnings: list[str] = []
    noisy = median > 0 and iqr / median > noise_iqr_ratio
    if noisy:
        warnings.append(f"noisy: IQR is {iqr / median:.0%} of the median (threshold {noise_iqr_ratio:.0%})")
    return LatencyStats(
        n=int(samples.size),
        median_s=median,
        mean_s=mean,
        std_s=std,
        min_s=float(samples.min()),
        max_s=float(samples.max()),
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
    )
