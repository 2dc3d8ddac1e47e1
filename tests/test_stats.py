from __future__ import annotations

import numpy as np
import pytest

from wattgap.errors import MeasurementError
from wattgap.measure.stats import bootstrap_medians, median_ci, summarize


def test_summary_matches_numpy() -> None:
    rng = np.random.default_rng(1)
    samples = rng.lognormal(-5, 0.1, size=501)
    stats = summarize(samples.tolist())
    assert stats.n == 501
    assert stats.median_s == pytest.approx(np.median(samples))
    assert stats.mean_s == pytest.approx(samples.mean())
    assert stats.std_s == pytest.approx(samples.std(ddof=1))
    assert stats.p99_s == pytest.approx(np.percentile(samples, 99))
    assert stats.iqr_s == pytest.approx(np.subtract(*np.percentile(samples, [75, 25])))
    assert stats.min_s == samples.min() and stats.max_s == samples.max()
    assert stats.median_ci_low_s <= stats.median_s <= stats.median_ci_high_s
    assert stats.cv == pytest.approx(stats.std_s / stats.mean_s)


def test_interval_is_deterministic_for_a_seed() -> None:
    samples = np.random.default_rng(2).normal(1, 0.1, 200)
    assert median_ci(samples, 0.95, 500, seed=3) == median_ci(samples, 0.95, 500, seed=3)


def test_bootstrap_interval_covers_the_true_median_about_95_percent() -> None:
    rng = np.random.default_rng(4)
    trials, covered = 200, 0
    for seed in range(trials):
        samples = rng.exponential(1.0, 101)
        low, high = median_ci(samples, 0.95, 400, seed=seed)
        covered += low <= np.log(2) <= high
    assert 0.88 <= covered / trials <= 0.99


def test_chunked_bootstrap_handles_large_samples() -> None:
    samples = np.arange(200_000, dtype=float)
    medians = bootstrap_medians(samples, 30, seed=0)
    assert medians.shape == (30,)
    assert np.all(np.abs(medians - 100_000) < 2_000)


def test_noise_warning_past_the_threshold() -> None:
    quiet = summarize([1.0, 1.01, 0.99, 1.0, 1.02, 0.98] * 10)
    assert not quiet.noisy and quiet.warnings == []
    noisy = summarize([1.0, 2.0, 0.5, 1.5, 1.0, 3.0] * 10)
    assert noisy.noisy
    assert "IQR" in noisy.warnings[0]


@pytest.mark.parametrize("bad", [[], [1.0], [1.0, float("nan")], [1.0, -1.0]])
def test_bad_samples_are_refused(bad: list[float]) -> None:
    with pytest.raises(MeasurementError):
        summarize(bad)
