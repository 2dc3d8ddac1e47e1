from __future__ import annotations

import numpy as np
import pytest

from wattgap.errors import MeasurementError
from wattgap.measure.stats import bootstrap_medians, bootstrap_quantiles, median_ci, summarize, summarize_repeats


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


def _processes(rng: np.random.Generator, count: int, between_cv: float, within_cv: float) -> list[list[float]]:
    """``count`` processes of one cell whose true median is 1: each process off it by a lognormal drift
    (``between_cv``), its 100 samples lognormal around its own median (``within_cv``)."""
    drift = rng.lognormal(0.0, between_cv, count)
    return [(level * rng.lognormal(0.0, within_cv, 100)).tolist() for level in drift]


@pytest.mark.parametrize("count", [2, 3, 5, 10])
def test_the_interval_over_processes_covers_a_known_truth_95_percent(count: int) -> None:
    """Between-process drift 5%, noise within a window 1%: the hierarchical bootstrap this replaced held
    the truth 76% of the time with 3 processes, 87% with 5, 91% with 10. The t interval on the processes'
    log medians holds it about 95% of the time at every count (400 draws: at least 92%, 3 standard errors
    below 95%), and its width pays for few processes (t with 1 degree of freedom at 2)."""
    rng = np.random.default_rng(count)
    held, widths = 0, []
    for _ in range(400):
        stats = summarize_repeats(_processes(rng, count, 0.05, 0.01), resamples=50)
        held += stats.median_ci_low_s <= 1.0 <= stats.median_ci_high_s
        widths.append(stats.median_ci_high_s / stats.median_ci_low_s)
    assert held / 400 >= 0.92, f"{count} processes: the interval held the truth {held / 400:.1%} of the time"
    assert held / 400 <= 0.985  # honest, not merely wide
    assert stats.covers == f"between {count} processes"
    if count == 2:
        assert np.median(widths) > 1.5  # two processes cannot say much about the spread between them


def test_one_process_says_its_interval_is_within_it() -> None:
    stats = summarize(np.random.default_rng(0).normal(1, 0.01, 100).tolist())
    assert stats.covers == "within one process"


@pytest.mark.parametrize("size", [1, 2, 7, 40, 301])
def test_one_windows_bootstrap_draws_what_formed_resamples_give(size: int) -> None:
    """The quantiles of one window's resamples, drawn through their order statistics, have the
    distribution that forming each resample and taking its quantile gives (two-sample KS test)."""
    from scipy.stats import ks_2samp

    rng = np.random.default_rng(size)
    sample = rng.lognormal(0, 0.3, size)
    quantiles = [0.5, 0.9, 0.99]
    drawn = bootstrap_quantiles(sample, quantiles, 20_000, seed=1)
    formed = np.quantile(sample[rng.integers(0, size, size=(20_000, size))], quantiles, axis=1)
    for ours, theirs in zip(drawn, formed, strict=True):
        assert ks_2samp(ours, theirs).pvalue > 0.001
    assert bootstrap_quantiles(sample, 0.5, 1000, seed=1).shape == (1000,)
