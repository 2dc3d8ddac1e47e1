"""What to run: the best stored cell for an objective under constraints, the runner-up, why every other
candidate lost, and the Pareto front over tail latency, throughput and energy per sample.

Objectives (each of one sample's worth of work, so cells of different batch sizes compare):
- ``throughput``: batch / median latency, higher is better; interval from the median's bootstrap;
- ``latency``: the chosen latency percentile of one iteration, lower is better; bootstrap interval;
- ``energy``: joules per sample over the measured window, lower is better; one reading, no interval;
- ``cost``: electricity plus device time per 1,000 samples (the efficiency prices), lower is better.

Constraints: a latency percentile bound, a minimum top-1 agreement with fp32 (cells without an agreement,
the fp32 reference among them, pass), a peak memory bound (device memory on GPUs, host RSS otherwise), and
no degraded cells unless asked. The answer rests on a SUSPECT cell only when no other satisfies the
constraints, and says so, as it says when it rests on a noisy one (``Candidate.caveats``). Where nothing
satisfies them, the answer names the binding constraint and the closest cell. Pure: stored results in,
typed results out."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from wattgap.analysis.efficiency import EfficiencyParams, cell_efficiency
from wattgap.analysis.plausibility import caveats, passed_over, suspects_of
from wattgap.analysis.tradeoff import Estimate, finished_cells, measure_point
from wattgap.errors import field_error
from wattgap.measure.stats import PERCENTILES
from wattgap.results import CellResult, Run
from wattgap.text import number

OBJECTIVES = {"throughput": "samples/s", "latency": "s", "energy": "J/sample", "cost": "per 1000 samples"}
HIGHER_IS_BETTER = {"throughput"}


@dataclass(frozen=True)
class Constraints:
    max_latency_s: float | None = None
    percentile: str = "p99"
    min_agreement: float | None = None
    max_memory_bytes: float | None = None
    include_degraded: bool = False

    def check(self) -> None:
        if self.percentile not in PERCENTILES:
            raise field_error("--percentile", self.percentile, PERCENTILES)
        if self.max_latency_s is not None and not self.max_latency_s > 0:
            raise field_error("--max-latency-ms", self.max_latency_s * 1e3, "a positive number of milliseconds")
        if self.min_agreement is not None and not 0 < self.min_agreement <= 1:
            raise field_error("--min-agreement", self.min_agreement, "a fraction in (0, 1]")
        if self.max_memory_bytes is not None and not self.max_memory_bytes > 0:
            raise field_error("--max-memory-gb", self.max_memory_bytes / 2**30, "a positive number of GiB")


@dataclass(frozen=True)
class Candidate:
    result: CellResult
    score: Estimate | None  # the objective's value; None when the cell lacks it (no energy reading)
    latency_s: Estimate  # at the constraints' percentile
    throughput_sps: float
    j_per_sample: float | None
    memory_bytes: int | None
    broken: list[tuple[str, float]] = field(default_factory=list)  # constraint, relative excess (> 0)
    verdict: str = ""  # why it is not the answer
    caveats: list[str] = field(default_factory=list)  # SUSPECT, noisy: quiet cells are preferred to it

    @property
    def satisfies(self) -> bool:
        return not self.broken and self.score is not None


@dataclass(frozen=True)
class Recommendation:
    objective: str
    constraints: Constraints
    best: Candidate | None
    runner_up: Candidate | None
    tied: bool  # the intervals of best and runner-up overlap
    others: list[Candidate]
    binding: str  # with no answer: the constraint that binds
    closest: Candidate | None  # with no answer: the cell nearest to satisfying every constraint
    pareto: list[Candidate]  # no other cell is at least as good on p99 latency, throughput and J/sample
    currency: str = ""  # of the cost objective


def memory_of(result: CellResult) -> int | None:
    memory = result.memory
    return memory.device_peak_allocated_bytes or memory.host_peak_rss_bytes


def _score(
    result: CellResult, objective: str, latency: Estimate, throughput: Estimate, params: EfficiencyParams
) -> Estimate | None:
    energy = result.energy
    if objective == "throughput":
        return throughput
    if objective == "latency":
        return latency
    if objective == "energy":
        value = energy.j_per_sample if energy else None
        return Estimate(value, value, value) if value is not None else None
    cost = cell_efficiency(result, params).cost
    return Estimate(cost, cost, cost) if cost is not None else None


def _broken(candidate: Candidate, constraints: Constraints) -> list[tuple[str, float]]:
    result = candidate.result
    broken = []
    if constraints.max_latency_s is not None and candidate.latency_s.value > constraints.max_latency_s:
        broken.append(("max-latency", candidate.latency_s.value / constraints.max_latency_s - 1))
    agreement = result.agreement.top1 if result.agreement else None
    if constraints.min_agreement is not None and agreement is not None and agreement < constraints.min_agreement:
        broken.append(("min-agreement", constraints.min_agreement / max(agreement, 1e-9) - 1))
    if not constraints.include_degraded and result.agreement is not None and result.agreement.degraded:
        broken.append(("degraded", 1.0))
    memory = candidate.memory_bytes
    if constraints.max_memory_bytes is not None and memory is not None and memory > constraints.max_memory_bytes:
        broken.append(("max-memory", memory / constraints.max_memory_bytes - 1))
    return broken


def _why(candidate: Candidate, best: Candidate | None, objective: str, constraints: Constraints) -> str:
    if candidate.score is None:
        return f"no {objective} value (no energy reading)" if objective in ("energy", "cost") else "no value"
    reasons = []
    for name, excess in candidate.broken:
        if name == "max-latency":
            reasons.append(
                f"{constraints.percentile} {number(candidate.latency_s.value * 1e3)} ms > bound (+{excess:.0%})"
            )
        elif name == "min-agreement":
            assert candidate.result.agreement is not None
            reasons.append(f"top-1 agreement {candidate.result.agreement.top1:.1%} < {constraints.min_agreement:.1%}")
        elif name == "degraded":
            reasons.append("degraded against fp32")
        else:
            reasons.append(f"memory {number((candidate.memory_bytes or 0) / 2**30)} GiB > bound (+{excess:.0%})")
    if reasons:
        return "; ".join(reasons)
    if best is None or best.score is None:
        return ""
    ratio = candidate.score.value / best.score.value if best.score.value else float("inf")
    behind = 1 - ratio if objective in HIGHER_IS_BETTER else ratio - 1
    return f"{behind:.1%} behind on {objective}"


def _pareto(candidates: list[Candidate]) -> list[Candidate]:
    """Cells no other cell dominates on (p99 latency down, throughput up, J/sample down); a cell without an
    energy reading competes on the first two."""

    def vector(c: Candidate) -> tuple[float, float, float]:
        p99 = c.result.latency.p99_s if c.result.latency else float("inf")
        energy = c.j_per_sample if c.j_per_sample is not None else float("inf")
        return p99, -c.throughput_sps, energy

    values = np.array([vector(c) for c in candidates], dtype=float).reshape(-1, 3)
    # In lexicographic order a cell's dominators all come before it (each is no worse anywhere; one equal
    # everywhere dominates nothing), and a cell beaten by a dominated cell is beaten by what beat that one:
    # so each cell is checked against the front found so far only, not against every other cell.
    rows: list[tuple[float, float, float]] = [tuple(row) for row in values.tolist()]
    front: list[tuple[float, float, float]] = []
    kept: list[int] = []
    for index in np.lexsort(values.T[::-1]).tolist():
        value = rows[index]  # beaten: no worse anywhere and not equal (then better somewhere)
        if not any(f[0] <= value[0] and f[1] <= value[1] and f[2] <= value[2] and f != value for f in front):
            front.append(value)
            kept.append(index)
    return [candidates[index] for index in sorted(kept)]


def recommend(
    runs: list[Run],
    objective: str = "throughput",
    constraints: Constraints | None = None,
    params: EfficiencyParams | None = None,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> Recommendation:
    if objective not in OBJECTIVES:
        raise field_error("--objective", objective, OBJECTIVES)
    constraints = constraints or Constraints()
    constraints.check()
    params = params or EfficiencyParams()
    flagged = suspects_of(runs)
    candidates = []
    for result in finished_cells(runs, "recommend"):
        point = measure_point(result, confidence, resamples, seed)
        latency = point.latency_s[constraints.percentile]
        energy = result.energy.j_per_sample if result.energy else None
        bare = Candidate(
            result,
            _score(result, objective, latency, point.throughput_sps, params),
            latency,
            point.throughput_sps.value,
            energy,
            memory_of(result),
            caveats=caveats(result, flagged),
        )
        candidates.append(replace(bare, broken=_broken(bare, constraints)))
    satisfying = [c for c in candidates if c.satisfies]
    order = sorted(  # an answer rests on a SUSPECT cell only when every satisfying cell is one
        satisfying,
        key=lambda c: (passed_over(c.caveats), -c.score.value if objective in HIGHER_IS_BETTER else c.score.value),  # type: ignore[union-attr]
    )
    best = order[0] if order else None
    runner_up = order[1] if len(order) > 1 else None
    tied = bool(
        best
        and runner_up
        and best.score
        and runner_up.score
        and best.score.low <= runner_up.score.high
        and runner_up.score.low <= best.score.high
        and best.score.low != best.score.high
    )
    others = [
        replace(c, verdict=_why(c, best, objective, constraints))
        for c in candidates
        if c is not best and c is not runner_up
    ]
    binding, closest = "", None
    if best is None:
        binding, closest = _binding(candidates)
    runner = replace(runner_up, verdict=_why(runner_up, best, objective, constraints)) if runner_up else None
    pareto = _pareto(candidates)
    return Recommendation(objective, constraints, best, runner, tied, others, binding, closest, pareto, params.currency)


def _binding(candidates: list[Candidate]) -> tuple[str, Candidate | None]:
    """The constraint whose relaxation alone admits the most cells (else the one the most cells break),
    and the cell with the smallest worst excess."""
    scored = [c for c in candidates if c.score is not None]
    if not scored:
        return "no cell has a value for the objective", None
    names = [name for c in scored for name, _ in c.broken]
    alone = [c.broken[0][0] for c in scored if len(c.broken) == 1]
    binding = max(set(alone), key=alone.count) if alone else max(set(names), key=names.count)
    closest = min(scored, key=lambda c: max(excess for _, excess in c.broken))
    return binding, closest
