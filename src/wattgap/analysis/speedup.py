"""Speedups between matched cells: B over A as a ratio of throughput per sample, batch / median latency
(for cells of equal batch size this is the time ratio, median latency of A / median latency of B), with
percentile-bootstrap confidence intervals from the raw samples, and their geometric mean."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wattgap.cells import CELL_FIELDS, Cell
from wattgap.errors import ConfigError, field_error
from wattgap.measure.stats import bootstrap_medians
from wattgap.results import CellResult, Run


@dataclass(frozen=True)
class Pair:
    key: dict[str, object]  # the fields both cells share
    a: CellResult
    b: CellResult
    speedup: float  # throughput per sample of b / that of a (batch / median latency): > 1 means b is faster
    ci_low: float
    ci_high: float
    note: str = ""

    @property
    def work_ratio(self) -> float:
        """Samples per iteration of b over a (1 unless the batch sizes differ)."""
        return self.b.cell.batch_size / self.a.cell.batch_size

    @property
    def latency_change(self) -> tuple[float, float, float]:
        """B's median latency per iteration relative to A's, minus 1, with its interval (low, high)."""
        ratio = self.work_ratio
        return ratio / self.speedup - 1, ratio / self.ci_high - 1, ratio / self.ci_low - 1


@dataclass(frozen=True)
class Comparison:
    by: str
    run_a: str
    run_b: str
    baseline: str
    pairs: list[Pair]
    geomean: float | None
    geomean_ci_low: float | None
    geomean_ci_high: float | None
    confidence: float
    unmatched: int


# Run-wide settings that change the work a cell does: runs that differ in them do not measure the same
# thing, whatever their cells' fields say.
WORK_SETTINGS = (
    "image_size",
    "num_classes",
    "input_shape",
    "infer_low_precision",
    "optimizer",
    "learning_rate",
    "momentum",
    "cudnn_benchmark",
    "end_to_end",
    "compile_mode",
    "calibration_samples",
    "calibration_method",
    "dataset",
)


def _check_same_work(run_a: Run, run_b: Run) -> None:
    differ = [
        f"{name} ({getattr(run_a.config, name)!r} vs {getattr(run_b.config, name)!r})"
        for name in WORK_SETTINGS
        if getattr(run_a.config, name) != getattr(run_b.config, name)
    ]
    if differ:
        raise ConfigError(
            f"compare: runs {run_a.run_id} and {run_b.run_id} differ in {', '.join(differ)}; "
            "their cells do not measure the same work"
        )


def _key(cell: Cell, by: str) -> tuple[tuple[str, object], ...]:
    ignored = {by, "threads"} if by == "device" else {by}
    return tuple((name, getattr(cell, name)) for name in CELL_FIELDS if name not in ignored)


def compare(
    run_a: Run,
    run_b: Run,
    by: str = "device",
    baseline: str | None = None,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Match each successful cell of ``run_a`` with the cells of ``run_b`` that differ from it at most in
    ``by`` (and in threads when comparing devices); where ``run_b`` holds the very same cell, that one
    alone. Runs whose settings change the work (WORK_SETTINGS) are refused. With one run on both sides,
    the A side is the cells whose ``by`` equals ``baseline`` (by default the first value of ``by`` in the
    run's cell order)."""
    if by not in CELL_FIELDS:
        raise field_error("--by", by, CELL_FIELDS)
    _check_same_work(run_a, run_b)
    ok_a = [r for r in run_a.results if r.status == "ok" and r.latencies_s]
    ok_b = [r for r in run_b.results if r.status == "ok" and r.latencies_s]
    if run_a.run_id == run_b.run_id:
        values = list(dict.fromkeys(str(getattr(r.cell, by)) for r in ok_a))
        if len(values) < 2:
            raise ConfigError(f"--by {by}: run {run_a.run_id} has one {by} value among its finished cells ({values})")
        baseline = baseline or values[0]
        if baseline not in values:
            raise field_error("--baseline", baseline, values)
        ok_a, ok_b = (
            [r for r in ok_a if str(getattr(r.cell, by)) == baseline],
            [r for r in ok_b if str(getattr(r.cell, by)) != baseline],
        )
    candidates: dict[tuple[tuple[str, object], ...], list[CellResult]] = {}
    for result in ok_b:
        candidates.setdefault(_key(result.cell, by), []).append(result)
    rng = np.random.default_rng(seed)
    pairs: list[Pair] = []
    log_boot: list[np.ndarray] = []
    unmatched = 0
    for a in ok_a:
        matches = candidates.get(_key(a.cell, by), [])
        same = [b for b in matches if getattr(b.cell, by) == getattr(a.cell, by)]
        if same:  # two runs holding the same cell: compare it with itself, not with its neighbours
            matches = same
        if not matches:
            unmatched += 1
            continue
        for b in matches:
            work = b.cell.batch_size / a.cell.batch_size
            ratios = _bootstrap_ratio(a, b, resamples, int(rng.integers(2**31))) * work
            speedup = _median(a) / _median(b) * work
            tail = (1 - confidence) / 2 * 100
            low, high = np.percentile(ratios, [tail, 100 - tail])
            threads = [f"{side} threads {c.threads}" for side, c in (("A", a.cell), ("B", b.cell)) if c.threads]
            notes = list(threads) if by in ("device", "threads") else []
            notes += [
                f"{side} degraded vs fp32" for side, r in (("A", a), ("B", b)) if r.agreement and r.agreement.degraded
            ]
            note = ", ".join(notes)
            pairs.append(Pair(dict(_key(a.cell, by)), a, b, speedup, float(low), float(high), note))
            log_boot.append(np.log(ratios))
    geomean = low_g = high_g = None
    if pairs:
        geomean = float(np.exp(np.mean([np.log(p.speedup) for p in pairs])))
        boot = np.exp(np.mean(np.vstack(log_boot), axis=0))
        tail = (1 - confidence) / 2 * 100
        low_g, high_g = (float(v) for v in np.percentile(boot, [tail, 100 - tail]))
    return Comparison(
        by, run_a.run_id, run_b.run_id, baseline or "", pairs, geomean, low_g, high_g, confidence, unmatched
    )


def _median(result: CellResult) -> float:
    assert result.latency is not None
    return result.latency.median_s


def _bootstrap_ratio(a: CellResult, b: CellResult, resamples: int, seed: int) -> np.ndarray:
    """Bootstrap distribution of median(a) / median(b), resampling each side independently."""
    medians_a = bootstrap_medians(np.asarray(a.latencies_s), resamples, seed)
    medians_b = bootstrap_medians(np.asarray(b.latencies_s), resamples, seed + 1)
    return medians_a / medians_b


def regressions(comparison: Comparison, threshold_pct: float) -> list[Pair]:
    """The pairs in which B's throughput per sample is below A's by more than ``threshold_pct`` percent
    even at the upper end of its interval (the whole interval beyond the threshold)."""
    return [pair for pair in comparison.pairs if pair.ci_high < 1 - threshold_pct / 100]
