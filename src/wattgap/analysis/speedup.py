"""Speedups between matched cells: B over A as a ratio of throughput per sample, batch / median latency
(for cells of equal batch size this is the time ratio, median latency of A / median latency of B), with
confidence intervals from the raw samples, and their geometric mean.

Each side contributes draws of its log median (measure/stats.log_median_draws): a cell measured in
several processes, from the t distribution of its processes' log medians; a cell measured in one process,
from the bootstrap of its one window, which knows nothing of the drift between processes. A side whose
result was stored with the machine's drift between runs (measure/drift.py) adds that drift to its draws,
and a pair of two such sides covers what another run would find (``between runs``). A single-process side
without one is widened by the between-process spread measured on the same machine (``Spread``: the pooled
spread of the repeated cells of recent runs in the same database) when there is one; when there is none
its pair's interval is only ``within one process``, and ``regressions`` does not judge it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from wattgap.cells import CELL_FIELDS, Cell
from wattgap.config import SweepConfig
from wattgap.errors import ConfigError, field_error
from wattgap.measure.stats import BETWEEN_RUNS, WITHIN_ONE_PROCESS, log_median_draws
from wattgap.plan import COMPONENTS
from wattgap.results import CellResult, Run
from wattgap.text import age


@dataclass(frozen=True)
class Spread:
    """The spread between fresh processes of the same cell on one machine: the pooled standard deviation
    of the log medians of the processes of every repeated cell of ``runs`` (``cells`` of them), the newest
    ``age_s`` old. It widens what a single process cannot know about itself."""

    sd_log: float
    cells: int
    runs: list[str]
    age_s: float

    def text(self) -> str:
        return (
            f"this machine's spread between processes, {self.sd_log:.2%} (pooled over {self.cells} repeated cells "
            f"of {len(self.runs)} runs, the newest {age(self.age_s)} old)"
        )


SPREAD_MAX_AGE_S = 7 * 24 * 3600.0  # a machine's spread older than this is not used: machines change


def spread_of(runs: list[Run], now_s: float, created_s: dict[str, float]) -> Spread | None:
    """The spread between processes measured by the repeated cells (2 or more ok processes) of ``runs``
    (made on one machine; ``created_s``: each run's creation time), or None when they hold none."""
    squares, dof, cells, used = 0.0, 0, 0, []
    for run in runs:
        found = False
        for result in run.results:
            medians = [r.median_s for r in result.repeats if r.status == "ok" and r.median_s]
            if result.status != "ok" or len(medians) < 2:
                continue
            logs = np.log(medians)
            squares += float(np.sum((logs - logs.mean()) ** 2))
            dof += len(logs) - 1
            cells += 1
            found = True
        if found:
            used.append(run.run_id)
    if not dof:
        return None
    newest = max(created_s[run_id] for run_id in used)
    return Spread(float(np.sqrt(squares / dof)), cells, used, max(0.0, now_s - newest))


@dataclass(frozen=True)
class Pair:
    key: dict[str, object]  # the fields both cells share
    a: CellResult
    b: CellResult
    speedup: float  # throughput per sample of b / that of a (batch / median latency): > 1 means b is faster
    ci_low: float
    ci_high: float
    note: str = ""
    log_draws: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)  # of speedup
    covers: str = "between processes"  # what the interval covers: also "within one process", or widened

    @property
    def judged(self) -> bool:
        """Whether a regression gate may act on the pair: its interval covers the drift between processes,
        and neither side's noise audit found the machine busy (a busy machine is not a regression)."""
        return not self.unjudged

    @property
    def unjudged(self) -> str:
        """Why a regression gate may not act on the pair ('' when it may)."""
        if self.covers == WITHIN_ONE_PROCESS:
            return WITHIN_ONE_PROCESS
        return BUSY if self.busy else ""

    @property
    def busy(self) -> bool:
        """Whether either side's noise audit found the machine busy in its window (SUSPECT)."""
        return any(side.noise is not None and bool(side.noise.suspect) for side in (self.a, self.b))

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
    metric: str = "throughput"  # what geomean is a ratio of: throughput per sample, or latency per iteration
    device_names: dict[str, str] = field(default_factory=dict)  # across machines: "A cuda" -> "cuda (NVIDIA T4)"
    notes: list[str] = field(default_factory=list)
    spread: Spread | None = None  # what widened the single-process sides, if any did

    def device_label(self, side: str, device: str) -> str:
        return self.device_names.get(f"{side} {device}", device)


METRICS = ("throughput", "latency")

# Run-wide settings that change the work a cell does: runs that differ in them do not measure the same
# thing, whatever their cells' fields say.
WORK_SETTINGS = (
    "image_size",
    "num_classes",
    "input_shape",
    "end_to_end",
    "dataset",
)


def component_settings(config: SweepConfig) -> dict[str, dict[str, Any]]:
    """The settings of each backend and workload a sweep runs (defaults filled in), as
    ``backends.torch-compile`` -> its settings: they too change the work of their cells."""
    return {
        f"{axis}.{name}": config.settings(axis, name, registry[name].settings_model).model_dump()
        for axis, registry in COMPONENTS.items()
        for name in getattr(config, axis)
        if name in registry
    }


def work_of(config: SweepConfig) -> str:
    """What decides, beside a cell's own fields, the work a sweep's cells do (WORK_SETTINGS and each
    component's settings), as one canonical text: two runs with the same text measure the same work in
    the same cell."""
    work = {name: getattr(config, name) for name in WORK_SETTINGS} | component_settings(config)
    return json.dumps(work, sort_keys=True, default=str)


def check_same_work(run_a: Run, run_b: Run) -> None:
    differ = [
        f"{name} ({getattr(run_a.config, name)!r} vs {getattr(run_b.config, name)!r})"
        for name in WORK_SETTINGS
        if getattr(run_a.config, name) != getattr(run_b.config, name)
    ]
    ours, theirs = component_settings(run_a.config), component_settings(run_b.config)
    for component in ours.keys() & theirs.keys():  # a component only one run swept measured nothing to pair
        for setting, value in ours[component].items():
            if theirs[component].get(setting) != value:
                differ.append(f"{component}.{setting} ({value!r} vs {theirs[component].get(setting)!r})")
    if differ:
        raise ConfigError(
            f"compare: runs {run_a.run_id} and {run_b.run_id} differ in {', '.join(differ)}; "
            "their cells do not measure the same work"
        )


def _key(cell: Cell, by: str) -> tuple[tuple[str, object], ...]:
    ignored = {by, "threads"} if by == "device" else {by}
    return tuple((name, getattr(cell, name)) for name in CELL_FIELDS if name not in ignored)


def matches(
    run_a: Run, run_b: Run, by: str, baseline: str | None = None
) -> tuple[str, list[tuple[CellResult, CellResult]], int]:
    """The pairs ``compare`` draws: each successful cell of ``run_a`` with the cells of ``run_b`` that differ
    from it at most in ``by`` (and in threads when comparing devices; where ``run_b`` holds the very same
    cell, that one alone), or, with one run on both sides, its cells whose ``by`` is ``baseline`` against the
    others. The baseline ("" for two runs), the pairs, and how many A cells found none."""
    if by not in CELL_FIELDS:
        raise field_error("--by", by, CELL_FIELDS)
    ok_a = [r for r in run_a.results if r.status == "ok" and r.latencies_s and not r.probe]
    ok_b = [r for r in run_b.results if r.status == "ok" and r.latencies_s and not r.probe]
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
    matched: list[tuple[CellResult, CellResult]] = []
    unmatched = 0
    for a in ok_a:
        found = candidates.get(_key(a.cell, by), [])
        same = [b for b in found if getattr(b.cell, by) == getattr(a.cell, by)]
        if same:  # two runs holding the same cell: compare it with itself, not with its neighbours
            found = same
        unmatched += not found
        matched += [(a, b) for b in found]
    return baseline or "", matched, unmatched


def compare(
    run_a: Run,
    run_b: Run,
    by: str = "device",
    baseline: str | None = None,
    confidence: float = 0.95,
    seed: int = 0,
    metric: str = "throughput",
    spread: Spread | None = None,
) -> Comparison:
    """Match each successful cell of ``run_a`` with the cells of ``run_b`` that differ from it at most in
    ``by`` (and in threads when comparing devices); where ``run_b`` holds the very same cell, that one
    alone. Runs whose settings change the work (WORK_SETTINGS) are refused. With one run on both sides,
    the A side is the cells whose ``by`` equals ``baseline`` (by default the first value of ``by`` in the
    run's cell order). ``metric``: the geometric mean is of throughput per sample, B over A, or of latency
    per iteration, B over A. Runs from different hardware are compared by device with each device named
    (a T4 run against an L4 run). ``spread``: the machine's between-process spread, which widens each
    side measured in one process (module docstring)."""
    if metric not in METRICS:
        raise field_error("--metric", metric, METRICS)
    check_same_work(run_a, run_b)
    baseline, matched, unmatched = matches(run_a, run_b, by, baseline)
    said = [
        [f"{side} threads {c.threads}" for side, c in (("A", a.cell), ("B", b.cell)) if c.threads]
        if by in ("device", "threads")
        else []
        for a, b in matched
    ]
    pairs = _pairs(matched, [dict(_key(a.cell, by)) for a, _ in matched], said, seed, confidence, spread)
    geomean = geomean_of(pairs, metric, confidence)
    names = device_names(run_a, run_b) if by == "device" else {}
    notes = _machine_notes(run_a, run_b, by)
    widened = spread if any(p.covers == WIDENED for p in pairs) else None
    return Comparison(
        by,
        run_a.run_id,
        run_b.run_id,
        baseline,
        pairs,
        *geomean,
        confidence,
        unmatched,
        metric,
        names,
        notes,
        widened,
    )


def pair(
    a: CellResult,
    b: CellResult,
    key: dict[str, object],
    seed: int,
    notes: list[str] | None = None,
    confidence: float = 0.95,
    resamples: int = 2000,
    spread: Spread | None = None,
) -> Pair:
    """B against A: the ratio of their throughputs per sample with its interval from the raw samples, each
    side drawn on its own (module docstring); a side measured in one process is widened by ``spread``."""
    return _pairs([(a, b)], [key], [notes or []], seed, confidence, spread, resamples)[0]


def _pairs(
    matched: list[tuple[CellResult, CellResult]],
    keys: list[dict[str, object]],
    notes: list[list[str]],
    seed: int,
    confidence: float,
    spread: Spread | None,
    resamples: int = 2000,
) -> list[Pair]:
    """``pair`` for each of ``matched``, drawn into one array (an A cell paired with several B cells is
    drawn once) and bounded in one pass."""
    drawn: dict[str, np.ndarray] = {}
    draws = np.empty((len(matched), resamples))
    for row, (a, b) in enumerate(matched):
        draws[row] = _log_ratios(a, b, seed, resamples, spread, drawn)
    tail = (1 - confidence) / 2 * 100
    lows, highs = np.exp(np.percentile(draws, [tail, 100 - tail], axis=1))  # each row's central share
    return [
        _made(a, b, key, said, draws[row], lows[row], highs[row], spread)
        for row, ((a, b), key, said) in enumerate(zip(matched, keys, notes, strict=True))
    ]


def _log_ratios(
    a: CellResult, b: CellResult, seed: int, resamples: int, spread: Spread | None, drawn: dict[str, np.ndarray]
) -> np.ndarray:
    """Draws of the log of B's throughput per sample over A's; ``drawn``: the A sides' draws by cell."""
    if a.cell_id not in drawn:
        drawn[a.cell_id] = _side_draws(a, "A", seed, resamples, spread if single_process(a) else None)
    b_draws = _side_draws(b, "B", seed, resamples, spread if single_process(b) else None)
    return drawn[a.cell_id] - b_draws + np.log(b.cell.batch_size / a.cell.batch_size)


def single_process(result: CellResult) -> bool:
    """A side measured in one process whose interval knows nothing of the drift between processes."""
    return len(result.sample_groups()) == 1 and not _drifted(result)


def _drifted(result: CellResult) -> bool:
    return result.latency is not None and result.latency.drift is not None


def _made(
    a: CellResult,
    b: CellResult,
    key: dict[str, object],
    notes: list[str],
    log_ratios: np.ndarray,
    low: float,
    high: float,
    spread: Spread | None,
) -> Pair:
    flagged = [f"{side} degraded vs fp32" for side, r in (("A", a), ("B", b)) if r.agreement and r.agreement.degraded]
    single = single_process(a) or single_process(b)
    covers = "between processes" if not single else WIDENED if spread is not None else WITHIN_ONE_PROCESS
    if _drifted(a) and _drifted(b):
        covers = BETWEEN_RUNS
    note = ", ".join([*notes, *flagged])
    return Pair(key, a, b, ratio(a, b), float(low), float(high), note, log_ratios, covers)


def ratio(a: CellResult, b: CellResult) -> float:
    """B's throughput per sample over A's (batch / median latency), without its interval."""
    return _median(a) / _median(b) * (b.cell.batch_size / a.cell.batch_size)


def _side_draws(result: CellResult, side: str, seed: int, resamples: int, spread: Spread | None) -> np.ndarray:
    """Draws of one side's log median, seeded by the comparison's seed, the side and the cell (the same
    cell on both sides of an A/A pair is drawn twice, independently): widened by the machine's drift
    between runs its result was stored with (a t variable of its degrees of freedom times its standard
    deviation), or else, for a single process, by ``spread`` when given."""
    rng = np.random.default_rng([seed, "AB".index(side), int(result.cell_id, 16)])
    draws = log_median_draws([np.asarray(g) for g in result.sample_groups()], resamples, int(rng.integers(2**31)))
    drift = result.latency.drift if result.latency is not None else None
    if drift is not None:
        return draws + drift.sd_log * _t_or_normal(rng, drift.dof, resamples)
    return draws if spread is None else draws + spread.sd_log * rng.standard_normal(resamples)


def _t_or_normal(rng: np.random.Generator, dof: float, count: int) -> np.ndarray:
    return rng.standard_t(dof, count) if 0 < dof < np.inf else rng.standard_normal(count)


WIDENED = "widened by this machine's spread between processes"
BUSY = "SUSPECT side (the machine was busy)"


def geomean_of(pairs: list[Pair], metric: str, confidence: float) -> tuple[float | None, float | None, float | None]:
    """The geometric mean of the pairs' ratios of ``metric`` (throughput: B over A, latency per iteration:
    B over A) with its interval, the bootstrap draws of every pair averaged in log space draw by draw."""
    if not pairs:
        return None, None, None
    sign = 1.0 if metric == "throughput" else -1.0
    shifts = [0.0 if metric == "throughput" else np.log(p.work_ratio) for p in pairs]
    central = np.mean([sign * np.log(p.speedup) + shift for p, shift in zip(pairs, shifts, strict=True)])
    total = np.zeros_like(pairs[0].log_draws)  # summed pair by pair: no copy of every pair's draws at once
    for p, shift in zip(pairs, shifts, strict=True):
        total += sign * p.log_draws + shift  # in the order np.mean of their stack adds them: the same bits
    boot = total / len(pairs)
    tail = (1 - confidence) / 2 * 100
    low, high = np.exp(np.percentile(boot, [tail, 100 - tail]))
    return float(np.exp(central)), float(low), float(high)


def device_names(run_a: Run, run_b: Run) -> dict[str, str]:
    """For runs made on different hardware, each side's devices named by what they are (a T4 run and an
    L4 run both call theirs cuda): side and device -> "cuda (NVIDIA L4)". Empty for one machine."""
    named = {side: hardware(run) for side, run in (("A", run_a), ("B", run_b))}
    if named["A"] == named["B"]:
        return {}
    return {
        f"{side} {device}": f"{device} ({name})" for side, devices in named.items() for device, name in devices.items()
    }


def hardware(run: Run) -> dict[str, str]:
    """The devices of the machines that ran ``run``'s cells, named: "cpu" -> its CPU model, "cuda:0" ->
    its GPU (names of several machines that differ joined by " / ")."""
    named: dict[str, list[str]] = {}
    for machine in run.machines_used().values():
        for device, name in machine.device_names().items():
            named.setdefault(device, [])
            if name not in named[device]:
                named[device].append(name)
    return {device: " / ".join(names) for device, names in named.items()}


def _machine_notes(run_a: Run, run_b: Run, by: str) -> list[str]:
    if by == "device" or hardware(run_a) == hardware(run_b):
        return []
    return [
        f"runs {run_a.run_id} and {run_b.run_id} were made on different hardware: every pair's difference in {by} "
        "comes with a difference in machine"
    ]


def _median(result: CellResult) -> float:
    assert result.latency is not None
    return result.latency.median_s


GATE_ALPHA = 0.05  # the chance, at most, that --fail-above cries regression over all it judges when nothing changed


@dataclass(frozen=True)
class Regression:
    pair: Pair
    best: float  # B's change against A in the gate's metric at its most favourable bound (throughput: -0.2 = -20%)


def regressions(comparison: Comparison, threshold_pct: float, alpha: float = GATE_ALPHA) -> list[Regression]:
    """The pairs in which B is worse than A by more than ``threshold_pct`` percent even at the bound most
    favourable to B: throughput per sample lower, or (metric latency) latency per iteration higher. Only
    pairs whose interval covers the drift between processes are judged (``Pair.judged``), and the chance
    of any false alarm among the m judged pairs is held to ``alpha`` (Bonferroni): each pair's bound is
    one-sided at 1 - alpha / m. A sweep of many cells would otherwise cry regression somewhere by chance
    (four pairs at a two-sided 95% each: about one A/A comparison in ten)."""
    judged = [p for p in comparison.pairs if p.judged]
    found = []
    for p in judged:
        upper = float(np.exp(np.quantile(p.log_draws, 1 - alpha / len(judged))))  # of B's throughput over A's
        best = p.work_ratio / upper - 1 if comparison.metric == "latency" else upper - 1
        worse = best > threshold_pct / 100 if comparison.metric == "latency" else best < -threshold_pct / 100
        if worse:
            found.append(Regression(p, best))
    return found
