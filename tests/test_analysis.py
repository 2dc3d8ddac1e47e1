"""The studies' answers from stored results, on known results (exact answers) and end to end through the
CLI: the latency-throughput trade-off with its knee and the best batch under a bound; the recommendation
under constraints, with the runner-up, ties, why each other cell lost, the binding constraint and the
Pareto front; memory against batch size; the projection of memory needs by year."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import fast_config, make_run, repeated_result, result, wattgap

import wattgap as api
from wattgap.analysis.memory import memory_curves
from wattgap.analysis.plausibility import caveats, passed_over, suspects
from wattgap.analysis.projection import load_entries, project
from wattgap.analysis.recommend import Constraints, recommend
from wattgap.analysis.studies import study
from wattgap.analysis.tradeoff import tradeoff
from wattgap.analysis.whatif import whatif
from wattgap.errors import ConfigError
from wattgap.machines import Environment
from wattgap.measure.energy import CellEnergy
from wattgap.measure.guardrail import Agreement
from wattgap.measure.noise import NoiseAudit
from wattgap.results import CellResult, Memory

BATCHES = [1, 2, 4, 8, 16, 32]
THROUGHPUT = [100.0, 180.0, 300.0, 380.0, 400.0, 410.0]  # samples/s at each batch
SPREAD = np.linspace(0.99, 1.01, 201)  # 201 samples whose median is exactly the centre


def curve_run(run_id: str = "r", precision: str = "fp32", scale: float = 1.0, samples: np.ndarray = SPREAD) -> api.Run:
    results = [
        result(batch / (rate * scale) * samples, batch_size=batch, precision=precision)
        for batch, rate in zip(BATCHES, THROUGHPUT, strict=True)
    ]
    return make_run(run_id, results)


@pytest.mark.parametrize(("share", "knee"), [(0.9, 8), (0.75, 8), (0.7, 4), (1.0, 32), (0.2, 1)])
def test_the_knee_is_the_smallest_batch_reaching_the_share(share: float, knee: int) -> None:
    (curve,) = tradeoff([curve_run()], share=share).curves
    assert [p.batch_size for p in curve.points] == BATCHES
    assert [p.throughput_sps.value for p in curve.points] == pytest.approx(THROUGHPUT)
    assert curve.knee.batch_size == knee and curve.bounded is None


def test_the_best_batch_under_a_latency_bound() -> None:
    # p99 latencies: about 10.1, 11.2, 13.5, 21.3, 40.4, 78.8 ms
    (curve,) = tradeoff([curve_run()], max_latency_s=0.025, percentile="p99").curves
    assert curve.bounded is not None and curve.bounded.batch_size == 8
    (curve,) = tradeoff([curve_run()], max_latency_s=0.0405, percentile="p50").curves
    assert curve.bounded is not None and curve.bounded.batch_size == 16  # the median of batch 16 is 40 ms
    (curve,) = tradeoff([curve_run()], max_latency_s=0.005).curves
    assert curve.bounded is None
    assert "no batch within the bound: the lowest p99 is batch 1's, 10.1 ms" in curve.notes


def test_the_knee_and_the_bounded_batch_pass_over_suspect_points_and_say_what_they_rest_on() -> None:
    """Batch 16's noise audit found the machine busy: the knee (90% of the highest, 410 at batch 32) and
    the best batch under a bound skip it; a pick on a noisy point says so; when every point is SUSPECT
    the pick still stands, flagged."""
    run = curve_run()
    busy = NoiseAudit(window_s=1.0, suspect=["other processes used 0.98 cores (over 0.1)"])
    inflated = result(16 / 1000 * SPREAD, batch_size=16).model_copy(update={"noise": busy})  # 1000 sps
    results = [inflated if r.cell.batch_size == 16 else r for r in run.results]
    (curve,) = tradeoff([run.model_copy(update={"results": results})], max_latency_s=0.022, percentile="p50").curves
    assert curve.knee.batch_size == 8  # 380 of 410; with batch 16's 1000 the knee was 16
    assert curve.points[4].caveats == ["SUSPECT"] and "batch 16 passed over: SUSPECT" in curve.notes[0]
    assert curve.bounded is not None and curve.bounded.batch_size == 8  # batch 16 (16 ms, 1000 sps) passed over
    wide = np.concatenate([SPREAD[:100] * 0.5, [1.0], SPREAD[101:] * 1.5])  # median 1, a spread far beyond noisy's
    noisy = [result(8 / 380 * wide, batch_size=8) if r.cell.batch_size == 8 else r for r in run.results]
    (curve,) = tradeoff([run.model_copy(update={"results": noisy})]).curves
    assert curve.knee.batch_size == 8 and curve.knee.caveats == ["noisy"]
    assert "the knee (batch 8) rests on a noisy cell" in " ".join(curve.notes)
    all_busy = [r.model_copy(update={"noise": busy}) for r in run.results]
    (curve,) = tradeoff([run.model_copy(update={"results": all_busy})]).curves
    assert curve.knee.batch_size == 8 and "the knee (batch 8) rests on a SUSPECT cell" in " ".join(curve.notes)


def test_intervals_come_from_the_samples_and_contain_the_estimate() -> None:
    rng = np.random.default_rng(3)
    noisy = rng.lognormal(0, 0.05, 400)
    (curve,) = tradeoff([curve_run(samples=noisy)]).curves
    for point in curve.points:
        throughput = point.throughput_sps
        assert throughput.low < throughput.value < throughput.high
        for estimate in point.latency_s.values():
            assert estimate.low <= estimate.value <= estimate.high
        assert point.latency_s["p50"].value < point.latency_s["p99"].value
        assert point.latency_s["p99"].value == pytest.approx(np.quantile(point.result.latencies_s, 0.99))
    assert tradeoff([curve_run(samples=noisy)]).curves[0].points[0] == curve.points[0]  # seeded


def test_the_intervals_stored_with_a_cell_are_those_its_samples_give() -> None:
    """Analyses read each percentile's interval stored with the cell (schema 8) instead of resampling; a
    result stored before has none and is resampled: the answers are the same either way."""
    rng = np.random.default_rng(4)
    groups = [rng.lognormal(0, 0.05, 300) * (1 + 0.03 * i) for i in range(3)]
    results = [
        result(rng.lognormal(-5, 0.05, 300), batch_size=1),
        repeated_result(groups, resamples=1000, batch_size=2),  # hierarchical resampling over its processes
    ]
    assert all(set(r.latency.percentile_ci_s) == {"p50", "p90", "p95", "p99"} for r in results if r.latency)
    older = [
        r.model_copy(update={"latency": r.latency.model_copy(update={"percentile_ci_s": {}, "resamples": None})})
        for r in results
        if r.latency
    ]
    for answer in (tradeoff, recommend):
        stored, resampled = answer([make_run("a", results)]), answer([make_run("a", older)])  # type: ignore[operator]
        assert _estimates(stored) == _estimates(resampled)
    (single, _) = tradeoff([make_run("a", results)]).curves[0].points
    p50, stats = single.latency_s["p50"], results[0].latency
    assert stats is not None and (p50.low, p50.high) == (stats.median_ci_low_s, stats.median_ci_high_s)
    other = tradeoff([make_run("a", results)], confidence=0.9).curves[0].points[0]  # not what was stored
    narrower, stored_p50 = other.latency_s["p50"], single.latency_s["p50"]
    assert narrower.high - narrower.low < stored_p50.high - stored_p50.low


def _estimates(answer: object) -> list[object]:
    if hasattr(answer, "curves"):
        return [(p.throughput_sps, p.latency_s, p.samples) for c in answer.curves for p in c.points]
    candidates = [answer.best, answer.runner_up, *answer.others, *answer.pareto]  # type: ignore[attr-defined]
    return [(c.result.cell_id, c.throughput_sps, c.latency_s, c.score, c.verdict) for c in candidates if c]


def test_curves_are_per_configuration_and_a_cell_counts_once() -> None:
    fp32, bf16 = curve_run("a"), curve_run("b", precision="bf16", scale=2.0)
    again = curve_run("c", scale=4.0)  # the same cells as run a, measured again
    result_ = tradeoff([fp32, bf16, again], share=0.9)
    by_precision = {c.key["precision"]: c for c in result_.curves}
    assert set(by_precision) == {"fp32", "bf16"}
    assert by_precision["bf16"].points[0].throughput_sps.value == pytest.approx(200.0)
    assert by_precision["fp32"].points[0].throughput_sps.value == pytest.approx(400.0)  # the last run's
    few = tradeoff([curve_run(samples=SPREAD[:50])]).curves[0]
    assert any("rests on fewer than 100 samples" in note for note in few.notes)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"share": 0.0}, "--share: got 0.0; allowed: a fraction in (0, 1]"),
        ({"max_latency_s": -0.001}, "--max-latency-ms: got -1.0; allowed: a positive number of milliseconds"),
        ({"percentile": "p42"}, "--percentile: got 'p42'; allowed: p50, p90, p95, p99"),
    ],
)
def test_bad_rules_are_refused(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tradeoff([curve_run()], **arguments)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, api.Run]:
    folder = tmp_path_factory.mktemp("analysis")
    return folder, api.run(fast_config(batch_sizes=[1, 2, 4]), db=folder / "wattgap.db")


def test_tradeoff_on_a_real_run(stored: tuple[Path, api.Run]) -> None:
    folder, run = stored
    db = str(folder / "wattgap.db")
    table = wattgap("tradeoff", run.run_id, "--max-latency-ms", "1000", "--db", db, cwd=folder)
    assert table.returncode == 0, table.stderr
    assert "knee" in table.stdout and "best under bound" in table.stdout and "every curve: model conv6" in table.stdout
    data = json.loads(wattgap("tradeoff", "latest", "--format", "json", "--db", db, cwd=folder).stdout)
    (curve,) = data["curves"]
    assert [p["batch_size"] for p in curve["points"]] == [1, 2, 4] and curve["knee_batch_size"] in (1, 2, 4)
    assert data["rule"] == {"knee_share": 0.9, "percentile": "p99", "max_latency_s": None, "confidence": 0.95}
    bad = wattgap("tradeoff", run.run_id, "--max-latency-ms", "0", "--db", db, cwd=folder)
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "wattgap: error: --max-latency-ms: got 0.0; allowed: a positive number of milliseconds"
    ]


def test_a_thousand_cell_database_answers_the_same_with_or_without_stored_intervals(
    stored: tuple[Path, api.Run], tmp_path: Path
) -> None:
    """Issue 31's check: a database of 1,000 cells (the real run's results cloned) read back and analysed,
    once as written now and once as a result written before schema 8 would be (no stored intervals)."""
    from wattgap.analysis.speedup import compare
    from wattgap.cells import Cell
    from wattgap.store.sqlite import Store

    _, run = stored
    ok = [r for r in run.results if r.status == "ok"]
    cells = [
        Cell(
            model="conv6",
            workload="infer",
            backend="torch-eager",
            device="cpu",
            precision="fp32",
            batch_size=b,
            threads=t,
        )
        for b in range(1, 251)
        for t in (1, 2, 3, 4)
    ]
    results = [ok[index % len(ok)].model_copy(update={"cell": cell}) for index, cell in enumerate(cells)]
    older = [
        r.model_copy(update={"latency": r.latency.model_copy(update={"percentile_ci_s": {}, "resamples": None})})
        for r in results
        if r.latency
    ]
    with Store.open(tmp_path / "scale.db") as store:
        for run_id, held in (("now", results), ("before", older)):
            store.create_run(run_id, run.config, run.environment, cells, {}, "test")
            for result in held:
                store.store_result(run_id, result)
        now, before = store.load_run("now"), store.load_run("before")
    assert len(now.results) == 1000 and all(r.latency and r.latency.percentile_ci_s for r in now.results)
    for answer in (tradeoff, recommend):
        assert _estimates(answer([now])) == _estimates(answer([before]))  # type: ignore[operator]
    ours, theirs = compare(now, now, by="batch_size"), compare(before, before, by="batch_size")
    assert [(p.speedup, p.ci_low, p.ci_high) for p in ours.pairs] == [
        (p.speedup, p.ci_low, p.ci_high) for p in theirs.pairs
    ]


def test_studies_on_a_real_run(stored: tuple[Path, api.Run]) -> None:
    folder, run = stored
    db = str(folder / "wattgap.db")
    table = wattgap("study", "precisions", run.run_id, "--db", db, cwd=folder)
    assert table.returncode == 0, table.stderr
    assert "inference throughput per precision and batch" in table.stdout and "no int8 cell" in table.stdout
    data = json.loads(wattgap("study", "precisions", "latest", "--format", "json", "--db", db, cwd=folder).stdout)
    assert [row["key"]["batch_size"] for row in data["rows"]] == [1, 2, 4]
    fp32 = data["rows"][0]["values"]["fp32"]["estimate"]
    assert fp32["low"] <= fp32["value"] <= fp32["high"]
    missing = wattgap("study", "gpu-vs-cpu", run.run_id, "--db", db, cwd=folder)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "no accelerator cell has a CPU cell" in missing.stderr


def candidate(
    rate: float,
    p99_ms: float | None = None,
    j_per_sample: float | None = None,
    top1: float | None = None,
    memory_gib: float | None = None,
    samples: np.ndarray = SPREAD,
    **fields: object,
) -> CellResult:
    """A cell at ``rate`` samples/s (batch 8); its p99 raised to ``p99_ms`` by a tail of slow samples (5%
    of them, above the rest)."""
    latencies = 8 / rate * samples
    if p99_ms is not None:
        latencies = np.concatenate([latencies, np.full(10, p99_ms / 1e3)])
    cell = result(latencies, **fields)
    agreement = (
        Agreement(
            samples=32,
            reference="fp32",
            max_abs_diff=0.1,
            mean_rel_diff=0.01,
            top1=top1,
            threshold=0.99,
            degraded=top1 < 0.99,
        )
        if top1 is not None
        else None
    )
    energy = CellEnergy(label="estimated", j_per_sample=j_per_sample) if j_per_sample is not None else None
    memory = Memory(host_peak_rss_bytes=int(memory_gib * 2**30)) if memory_gib is not None else Memory()
    return cell.model_copy(update={"agreement": agreement, "energy": energy, "memory": memory})


CANDIDATES = [
    candidate(400, p99_ms=80, j_per_sample=0.02, top1=0.95, memory_gib=2, backend="onnxruntime", precision="int8"),
    candidate(300, p99_ms=45, j_per_sample=0.03, top1=1.0, memory_gib=1, backend="openvino"),
    candidate(200, p99_ms=42, j_per_sample=0.05, memory_gib=0.5),
    candidate(100, p99_ms=90, j_per_sample=0.10, memory_gib=0.5, backend="tf-eager"),  # dominated by every other
]


def _label(answer_cell: object) -> str:
    return answer_cell.result.cell.backend  # type: ignore[attr-defined]


def test_the_best_cell_under_constraints_and_why_the_others_lost() -> None:
    answer = recommend([make_run("r", CANDIDATES)])  # the int8 cell is degraded: excluded
    assert answer.best is not None and answer.runner_up is not None
    assert (_label(answer.best), _label(answer.runner_up)) == ("openvino", "torch-eager")
    assert answer.runner_up.verdict == "33.3% behind on throughput" and not answer.tied
    why = {_label(c): c.verdict for c in answer.others}
    assert why == {"onnxruntime": "degraded against fp32", "tf-eager": "66.7% behind on throughput"}
    bounded = recommend([make_run("r", CANDIDATES)], constraints=Constraints(max_latency_s=0.043))
    assert bounded.best is not None and _label(bounded.best) == "torch-eager" and bounded.runner_up is None
    why = {_label(c): c.verdict for c in bounded.others}
    assert why["openvino"] == "p99 45.0 ms > bound (+5%)"
    assert (
        recommend([make_run("r", CANDIDATES)], constraints=Constraints(include_degraded=True)).best.result.cell.backend
        == "onnxruntime"
    )  # type: ignore[union-attr]


def test_objectives_energy_latency_and_memory() -> None:
    run = make_run("r", [*CANDIDATES, candidate(500, backend="torch-compile")])  # no energy reading
    assert _label(recommend([run], "energy").best) == "openvino"  # the degraded int8 cell is excluded
    no_energy = next(c for c in recommend([run], "energy").others if _label(c) == "torch-compile")
    assert no_energy.verdict == "no energy value (no energy reading)"
    assert _label(recommend([run], "latency", Constraints(percentile="p50")).best) == "torch-compile"
    small = recommend([run], constraints=Constraints(max_memory_bytes=0.75 * 2**30, include_degraded=True))
    assert _label(small.best) == "torch-compile" and _label(small.runner_up) == "torch-eager"


def test_overlapping_intervals_are_a_statistical_tie() -> None:
    rng = np.random.default_rng(5)
    close = [
        candidate(300, samples=rng.lognormal(0, 0.2, 60)),
        candidate(301, samples=rng.lognormal(0, 0.2, 60), backend="openvino"),
    ]
    answer = recommend([make_run("r", close)])
    assert answer.tied
    apart = recommend([make_run("r", [candidate(300), candidate(600, backend="openvino")])])
    assert not apart.tied


def test_an_unsatisfiable_constraint_names_the_binding_constraint_and_the_closest_cell() -> None:
    answer = recommend([make_run("r", CANDIDATES)], constraints=Constraints(max_latency_s=0.02))
    assert answer.best is None and answer.runner_up is None
    assert answer.binding == "max-latency" and answer.closest is not None and _label(answer.closest) == "torch-eager"


def test_the_pareto_front() -> None:
    front = recommend([make_run("r", CANDIDATES)]).pareto
    assert sorted(_label(c) for c in front) == ["onnxruntime", "openvino", "torch-eager"]


@pytest.mark.parametrize(
    ("objective", "constraints", "message"),
    [
        ("speed", Constraints(), "--objective: got 'speed'; allowed: throughput, latency, energy, cost"),
        ("throughput", Constraints(percentile="p1"), "--percentile: got 'p1'"),
        ("throughput", Constraints(max_latency_s=-1.0), "--max-latency-ms: got -1000.0"),
        ("throughput", Constraints(min_agreement=1.5), "--min-agreement: got 1.5; allowed: a fraction in"),
        ("throughput", Constraints(max_memory_bytes=0.0), "--max-memory-gb: got 0.0"),
    ],
)
def test_bad_recommendation_input_is_refused(objective: str, constraints: Constraints, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        recommend([make_run("r", CANDIDATES)], objective, constraints)


def test_recommend_on_a_real_run(stored: tuple[Path, api.Run]) -> None:
    folder, run = stored
    db = str(folder / "wattgap.db")
    table = wattgap("recommend", run.run_id, "--objective", "latency", "--db", db, cwd=folder)
    assert table.returncode == 0, table.stderr
    flagged = suspects(run)  # a SUSPECT cell is the answer only when every cell is one
    candidates = [r for r in run.results if not passed_over(caveats(r, flagged))] or run.results
    quickest = min(candidates, key=lambda r: float(np.quantile(r.latencies_s, 0.99)))  # p99, the default
    assert f"best: {quickest.cell.label}" in table.stdout and "Pareto front" in table.stdout
    data = json.loads(wattgap("recommend", run.run_id, "--format", "json", "--db", db, cwd=folder).stdout)
    fastest = max(candidates, key=lambda r: r.throughput_median_sps or 0)  # batch / median: the objective
    assert data["best"]["cell_id"] == fastest.cell_id and data["objective"] == "throughput"
    assert data["pareto_front"] and data["binding_constraint"] is None
    none = wattgap("recommend", run.run_id, "--max-latency-ms", "0.000001", "--db", db, cwd=folder)
    assert none.returncode == 0 and "no cell satisfies every constraint" in none.stdout
    assert "binding constraint: max-latency" in none.stdout
    bad = wattgap("recommend", run.run_id, "--objective", "speed", "--db", db, cwd=folder)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def memory_run(
    coefficients: tuple[float, ...], batches: list[int], noise_bytes: float = 1e6, oom: int | None = None, seed: int = 0
) -> api.Run:
    rng = np.random.default_rng(seed)
    results = []
    for batch in batches:
        value = sum(c * batch**power for power, c in enumerate(coefficients)) + rng.normal(0, noise_bytes)
        cell = result(SPREAD * 0.01, batch_size=batch)
        results.append(cell.model_copy(update={"memory": Memory(host_peak_rss_bytes=int(value))}))
    if oom is not None:
        results.append(CellResult(cell=result(SPREAD, batch_size=oom).cell, status="oom", reason="out of memory"))
    run = make_run("m", results)
    return run.model_copy(update={"environment": Environment.model_validate({"memory_bytes": 8 * 2**30})})


QUADRATIC = (5e8, 3e6, 2e4)  # bytes: framework footprint, activations, and a term that grows with batch^2


def test_the_memory_fit_recovers_a_known_polynomial_and_its_degree() -> None:
    (curve,) = memory_curves(memory_run(QUADRATIC, [1, 2, 4, 8, 16, 32, 64, 128]), budget_bytes=2 * 2**30)
    assert curve.fit is not None and curve.fit.degree == 2
    assert curve.fit.coefficients == pytest.approx(QUADRATIC, rel=0.05)
    assert curve.fit.r2 is not None and curve.fit.r2 > 0.9999 and curve.source == "host peak RSS"
    # the exact answer of the true polynomial: 2e4 b^2 + 3e6 b + 5e8 = 2 GiB
    exact = int((-3e6 + np.sqrt(3e6**2 - 4 * 2e4 * (5e8 - 2 * 2**30))) / (2 * 2e4))
    assert curve.largest_batch_fit is not None and abs(curve.largest_batch_fit - exact) <= 1
    assert curve.largest_batch is not None and curve.largest_batch <= curve.largest_batch_fit  # the upper bound
    for point in curve.points:
        low, high = point.interval_bytes  # type: ignore[misc]
        assert low <= point.predicted_bytes <= high and low <= point.measured_bytes <= high  # type: ignore[operator]
    linear = memory_curves(memory_run((5e8, 4e6), [1, 2, 4, 8, 16, 32]))[0]
    assert linear.fit is not None and linear.fit.degree == 1 and linear.budget_bytes == 8 * 2**30
    # over noise draws, cross-validation finds the true degree nearly always (a cubic fits noise too)
    degrees = [
        memory_curves(memory_run(QUADRATIC, [1, 2, 4, 8, 16, 32, 64, 128], seed=seed))[0].fit.degree  # type: ignore[union-attr]
        for seed in range(20)
    ]
    assert degrees.count(2) >= 17 and set(degrees) <= {2, 3}


def test_out_of_memory_cells_are_set_against_the_prediction() -> None:
    (curve,) = memory_curves(memory_run(QUADRATIC, [1, 2, 4, 8, 16, 32, 64], oom=128), budget_bytes=16 * 2**30)
    oom = curve.points[-1]
    assert (oom.batch_size, oom.status, oom.measured_bytes) == (128, "oom", None)
    assert oom.predicted_bytes == pytest.approx(sum(c * 128**p for p, c in enumerate(QUADRATIC)), rel=0.05)
    assert any("batch 128 ran out of memory where the fit predicts" in note for note in curve.notes)
    few = memory_curves(memory_run(QUADRATIC, [1]))[0]
    assert few.fit is None and few.largest_batch is None
    with pytest.raises(ConfigError, match=r"^--budget-gb: got -1.0; allowed: a positive number of GiB"):
        memory_curves(memory_run(QUADRATIC, [1, 2]), budget_bytes=-(2**30))


def test_observations_outrank_a_fit_and_a_fit_that_explains_nothing_answers_nothing() -> None:
    """A degree-0 fit with R^2 0 over batches 1-8 answered 'largest batch 65536'; after a batch search the
    fit said 33 fits where 31 ran out of memory, and blamed the allocator for a host-RSS limit."""
    flat = memory_curves(memory_run((5e8,), [1, 2, 4, 8], noise_bytes=1e7), budget_bytes=16 * 2**30)[0]
    assert flat.largest_batch is None and flat.largest_batch_fit is None
    assert any("explains little of how memory grows with batch" in note for note in flat.notes)
    (searched,) = memory_curves(memory_run(QUADRATIC, [1, 2, 4, 8, 16, 30], oom=31), budget_bytes=16 * 2**30)
    assert searched.largest_batch is not None and searched.largest_batch <= 30
    assert searched.largest_batch_fit is not None and searched.largest_batch_fit <= 30
    assert any("batch 31 ran out of memory: the answer stays below it" in note for note in searched.notes)
    assert not any("fragmentation" in note for note in searched.notes)  # host RSS: the cap's own reasons


def test_memory_on_a_real_run(stored: tuple[Path, api.Run]) -> None:
    folder, run = stored
    db = str(folder / "wattgap.db")
    table = wattgap("memory", run.run_id, "--budget-gb", "64", "--db", db, cwd=folder)
    assert table.returncode == 0, table.stderr
    assert "host peak RSS: degree" in table.stdout and "largest batch within it" in table.stdout
    data = json.loads(wattgap("memory", run.run_id, "--format", "json", "--db", db, cwd=folder).stdout)
    (curve,) = data["curves"]
    assert [p["batch_size"] for p in curve["points"]] == [1, 2, 4] and curve["budget_bytes"] > 0


def test_the_shipped_memory_projection_is_reproducible() -> None:
    entries, source = load_entries()
    assert all(e.source for e in entries) and {e.kind for e in entries} == {"accelerator", "model"}
    projection = project(entries, source, until=2030)
    assert project(entries, source, until=2030) == projection
    accelerators, weights, training = projection.series
    assert [s.fit.degree for s in projection.series] == [1, 1, 1]
    assert 10 ** accelerators.fit.coefficients[1] == pytest.approx(1.353, abs=0.001)  # x1.35 a year, per GPU
    assert 10 ** weights.fit.coefficients[1] == pytest.approx(2.358, abs=0.001)
    assert training.projected[-1][1] == pytest.approx(8 * weights.projected[-1][1])  # 16 bytes against 2
    assert projection.outgrows == {"model weights": 2021, "model training": 2017}
    for _, value, low, high in accelerators.projected:
        assert low is not None and high is not None and low < value < high


def test_a_users_csv_in_the_same_columns(tmp_path: Path) -> None:
    rows = ["kind,name,year,memory_bytes,parameters,source"]
    rows += [f"accelerator,a{y},{y},{2**30 * 2 ** ((y - 2010) / 2)},,sheet {y}" for y in range(2010, 2021)]
    rows += [f"model,m{y},{y},,{1e8 * 10 ** ((y - 2010) / 4)},paper {y}" for y in range(2010, 2021)]
    data = tmp_path / "mine.csv"
    data.write_text("\n".join(rows) + "\n")
    entries, source = load_entries(data)
    projection = project(entries, source, until=2040, weight_bytes=2)
    accelerators = projection.series[0]
    assert accelerators.fit.degree == 1 and accelerators.fit.r2 == pytest.approx(1.0)
    assert 10 ** accelerators.fit.coefficients[1] == pytest.approx(2**0.5)  # doubling every two years
    # weights 2e8 x 10^((y-2010)/4) bytes meet 2^30 x 2^((y-2010)/2): solved for y, the first whole year after
    crossing = 2010 + np.log10(2**30 / 2e8) / (0.25 - np.log10(2) / 2)
    assert projection.outgrows["model weights"] == int(np.ceil(crossing))
    result_ = wattgap("project", "memory", "--data", str(data), "--until", "2040", "--format", "json", cwd=tmp_path)
    assert result_.returncode == 0 and json.loads(result_.stdout)["outgrows"]["model weights"] == int(np.ceil(crossing))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("kind,name,year\nmodel,x,2020\n", "lacks column(s) memory_bytes, parameters, source"),
        ("kind,name,year,memory_bytes,parameters,source\nmodel,x,20x0,,5,me\n", "line 2: year: got '20x0'"),
        ("kind,name,year,memory_bytes,parameters,source\nmodel,x,2020,,5,\n", "line 2: source: got ''"),
        ("kind,name,year,memory_bytes,parameters,source\nchip,x,2020,5,,me\n", "line 2: kind: got 'chip'"),
        ("kind,name,year,memory_bytes,parameters,source\nmodel,x,2020,,-5,me\n", "line 2: parameters: got '-5'"),
    ],
)
def test_a_bad_csv_is_one_line_and_exit_2(tmp_path: Path, text: str, message: str) -> None:
    data = tmp_path / "bad.csv"
    data.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_entries(data)


def test_the_memory_formula_keeps_its_signs() -> None:
    from rich.console import Console

    from wattgap.analysis.memory import MemoryCurve
    from wattgap.analysis.regression import Fit
    from wattgap.render.terminal import memory_view

    curve = MemoryCurve({"model": "m"}, "host peak RSS", Fit(2, [5e8, -3e6, 2e4], 1e6, 0.99, 3), [], None, None, None)
    console = Console(width=200, record=True)
    console.print(memory_view("r", [curve]))
    assert "477 MiB - 2.86 MiB x batch + 19.5 KiB x batch^2" in console.export_text()


def test_a_study_passes_over_a_suspect_cpu_cell_and_flags_a_row_that_rests_on_one() -> None:
    """The 2-thread CPU cell is quicker but its noise audit found the machine busy: the speedup is over
    the 1-thread cell; the GPU cell it is set against is SUSPECT too, and the row says so."""
    busy = NoiseAudit(window_s=1.0, suspect=["other processes used 0.98 cores (over 0.1)"])
    cpu = make_run(
        "cpu", [result(SPREAD * 0.2, threads=1), result(SPREAD * 0.1, threads=2).model_copy(update={"noise": busy})]
    )
    gpu = make_run("gpu", [result(SPREAD * 0.01, device="cuda", threads=None).model_copy(update={"noise": busy})])
    (row,) = study("gpu-vs-cpu", [cpu, gpu]).rows
    assert row.values["speedup"].estimate.value == pytest.approx(20.0)  # type: ignore[union-attr]
    assert row.caveats == ["SUSPECT"] and row.note == "CPU at 1 threads, rests on a SUSPECT cell"
    (row,) = study("precisions", [gpu]).rows
    assert row.caveats == ["SUSPECT"]


def test_gpu_vs_cpu_table_sets_each_accelerator_cell_against_the_fastest_cpu_cell() -> None:
    cpu = make_run(
        "cpu",
        [
            result(SPREAD * 0.2, threads=1),
            result(SPREAD * 0.1, threads=2),
            result(SPREAD * 0.5, threads=2, workload="train"),
        ],
    )
    gpu = make_run(
        "gpu",
        [
            result(SPREAD * 0.01, device="cuda", threads=None),
            result(SPREAD * 0.005, device="cuda", threads=None, workload="train"),
        ],
    )
    table = study("gpu-vs-cpu", [cpu, gpu])
    rows = {row.key["workload"]: row for row in table.rows}
    infer, train = rows["infer"], rows["train"]
    speedup = infer.values["speedup"]
    assert speedup is not None and speedup.estimate.value == pytest.approx(10.0)
    assert speedup.estimate.low < 10.0 < speedup.estimate.high
    assert infer.note == "CPU at 2 threads" and train.note == ""  # the CPU at its best, said so
    assert train.values["speedup"].estimate.value == pytest.approx(100.0)  # type: ignore[union-attr]
    cpu_time = infer.values["CPU time"]
    assert cpu_time is not None and cpu_time.estimate.value == pytest.approx(0.1)
    with pytest.raises(ConfigError, match=r"^study gpu-vs-cpu: no accelerator cell"):
        study("gpu-vs-cpu", [cpu])


def test_framework_table_gives_tensorflow_latency_change_against_its_pytorch_twin() -> None:
    run = make_run(
        "f",
        [
            result(SPREAD * 0.1),
            result(SPREAD * 0.085, backend="tf-eager"),
            result(SPREAD * 0.2, model="vgg16"),
            result(SPREAD * 0.17, model="vgg16", backend="tf-eager"),
            result(SPREAD * 0.05, backend="tf-xla"),  # no torch-compile twin: no row
        ],
    )
    table = study("frameworks", [run])
    assert [row.key["model"] for row in table.rows] == ["resnet18", "vgg16"]
    for row in table.rows:
        change = row.values["TensorFlow latency change"]
        assert change is not None and change.estimate.value == pytest.approx(-0.15)
        assert row.key["stacks"] == "tf-eager vs torch-eager"
    assert "geometric mean TensorFlow latency change over 2 pairs: -15.0%" in table.notes[0]


def test_precision_table_gives_throughput_per_precision_and_int8_over_the_cpu() -> None:
    run = make_run(
        "p",
        [
            result(SPREAD * 0.4, device="cpu"),  # batch 8: 20 samples/s
            result(SPREAD * 0.01, device="cuda", threads=None),
            result(SPREAD * 0.005, device="cuda", threads=None, precision="fp16"),
            result(SPREAD * 0.004, device="cuda", threads=None, precision="int8", backend="onnxruntime"),
            result(SPREAD * 0.0025, device="cuda", threads=None, precision="int8", backend="tensorrt"),
            result(SPREAD * 0.02, device="cuda", threads=None, batch_size=32),
        ],
    )
    table = study("precisions", [run])
    assert table.value_columns == ["fp32", "fp16", "int8", "int8 / CPU fp32"]
    rows = {(row.key["device"], row.key["batch_size"]): row for row in table.rows}
    gpu = rows[("cuda", 8)]
    assert {name: v.estimate.value for name, v in gpu.values.items() if v} == pytest.approx(
        {"fp32": 800.0, "fp16": 1600.0, "int8": 3200.0, "int8 / CPU fp32": 160.0}
    )
    assert "int8 tensorrt" in gpu.note  # the fastest backend of each precision, named
    assert rows[("cuda", 32)].values["int8"] is None and rows[("cuda", 32)].values["int8 / CPU fp32"] is None
    assert "160x the CPU's fp32" in table.notes[-1]
    with pytest.raises(ConfigError, match="study: got 'mlperf'; allowed: gpu-vs-cpu, frameworks, precisions"):
        study("mlperf", [run])


def _counted(median_s: float, **fields: object) -> CellResult:
    """A cell of 1 GFLOP and 1 M activation elements per sample and 1 M weight elements (fp32: 4 B each)."""
    counted = result(median_s * SPREAD, **fields)
    return counted.model_copy(
        update={
            "flops_per_sample": 1e9,
            "weight_traffic_elements": 1e6,
            "activation_traffic_elements_per_sample": 1e6,
        }
    )


CPU_ROOFLINE = {
    "1": {"fp32_flops_per_s": 1e11, "bf16_flops_per_s": 2e11, "bandwidth_bytes_per_s": 1e10},
    "2": {"fp32_flops_per_s": 2e11, "bf16_flops_per_s": 4e11, "bandwidth_bytes_per_s": 1e10},
}


def test_whatif_scales_the_measured_time_by_the_ratio_of_rooflines() -> None:
    run = make_run("w", [_counted(0.16, threads=1), _counted(0.12, threads=2), result(SPREAD * 0.1, model="vgg16")])
    run = run.model_copy(update={"environment": Environment.model_validate({"cpu_roofline": CPU_ROOFLINE})})
    answer = whatif([run], ["T4"])
    assert answer.label == "estimate" and all(row.label == "estimate" for row in answer.rows)
    one = next(row for row in answer.rows if row.result.cell.threads == 1)
    flops, moved = 8e9, (1e6 + 8e6) * 4  # batch 8
    assert (one.flops, one.moved_bytes) == (flops, moved)
    assert one.source_roof_s == pytest.approx(0.08) and one.share == pytest.approx(0.5)  # compute-bound at 1e11
    t4 = flops / 8.1e12  # T4 is compute-bound too: 0.99 ms against 0.11 ms of memory
    assert one.target_roof_s == pytest.approx(t4) and one.bound == "compute"
    assert one.estimate_s == pytest.approx(0.16 * t4 / 0.08)  # half the roofline there, as here
    assert one.ceiling_throughput_sps == pytest.approx(8 / t4)
    assert answer.left_out == {"no traffic count (inference cells stored by wattgap before result schema 3)": 1}
    # the owned pair: 1 thread estimated from 2 (roofline 0.04 s there) and back
    first, second = sorted(answer.check.pairs, key=lambda p: p.source.cell.threads or 0)
    assert first.estimate_s == pytest.approx(0.16 * 0.04 / 0.08) and first.error == pytest.approx(0.08 / 0.12 - 1)
    assert second.estimate_s == pytest.approx(0.12 * 0.08 / 0.04) and second.error == pytest.approx(0.24 / 0.16 - 1)
    assert answer.check.by_kind["cpu to cpu"].median_abs_error == pytest.approx((1 / 3 + 1 / 2) / 2)
    # a thread count's error says nothing of a GPU's: the estimates stay unvalidated, and say so
    assert {row.kind for row in answer.rows} == {"cpu to gpu"} and answer.check.for_row(one) is None
    assert one.caveats == [] and one.estimate_range_s == pytest.approx((one.estimate_s, one.estimate_s, 1))


def test_whatif_never_estimates_below_the_targets_roofline_and_names_what_it_cannot_do() -> None:
    fast = _counted(0.01, threads=1)  # beats its own roofline (0.08 s): its data lived in caches
    run = make_run("w", [fast, _counted(0.16, threads=1, precision="bf16")])
    run = run.model_copy(update={"environment": Environment.model_validate({"cpu_roofline": CPU_ROOFLINE})})
    answer = whatif([run], ["t4"])
    (row,) = answer.rows
    assert row.share == pytest.approx(8.0) and row.estimate_s == pytest.approx(row.target_roof_s)
    assert answer.left_out == {"T4 lists no bf16 rate": 1}
    assert answer.check.pairs == [] and answer.check.by_kind == {}
    unknown = make_run("u", [_counted(0.16, threads=1)])  # a CPU whose rates the run did not measure
    (row,) = whatif([unknown], ["L4"]).rows
    assert row.source_roof_s is None and row.estimate_s is None and row.ceiling_throughput_sps > 0
    with pytest.raises(ConfigError, match="--target: got 'V100'; allowed: H100 PCIe, H100 SXM"):
        whatif([run], ["V100"])


def test_whatif_states_the_error_of_like_pairs_flags_suspect_sources_and_spreads_over_measurements() -> None:
    """Three runs of one CPU cell (one in three processes, one on a busy host that measured half the CPU's
    rates) and a GPU twin: the CPU-to-GPU error comes from the CPU/GPU pair only, each estimate shows the
    range its cell's five measurements give, and a source its noise audit flagged says so."""
    from helpers import repeated_result

    gpu_cell = _counted(0.004, device="cuda", threads=None)
    quiet = make_run("q", [_counted(0.16, threads=1), gpu_cell])
    machine = {"gpus": [{"name": "Tesla T4"}], "cpu": {"model": "X"}}
    quiet = quiet.model_copy(
        update={"environment": Environment.model_validate({"cpu_roofline": CPU_ROOFLINE, **machine})}
    )
    halved = {"1": {"fp32_flops_per_s": 5e10, "bandwidth_bytes_per_s": 5e9}}
    busy = make_run("b", [_counted(0.16, threads=1)])
    busy = busy.model_copy(update={"environment": Environment.model_validate({**machine, "cpu_roofline": halved})})
    counts = {k: v for k, v in _counted(0.1).model_dump().items() if k.endswith(("per_sample", "elements"))}
    groups = [SPREAD * 0.15, SPREAD * 0.16, SPREAD * 0.20]
    repeated = repeated_result(groups, threads=1).model_copy(update=counts)
    again = make_run("r", [repeated])
    again = again.model_copy(
        update={"environment": Environment.model_validate({"cpu_roofline": CPU_ROOFLINE, **machine})}
    )
    noise = NoiseAudit(window_s=1.0, suspect=["other processes used 0.98 cores (over 0.1)"])
    flagged = busy.model_copy(update={"results": [busy.results[0].model_copy(update={"noise": noise})]})
    answer = whatif([quiet, flagged, again], ["L4"])
    pairs = {p.kind for p in answer.check.pairs}
    assert pairs == {"cpu to gpu", "gpu to cpu"}
    cpu_rows = [row for row in answer.rows if row.result.cell.device == "cpu"]
    assert all(answer.check.for_row(row) is answer.check.by_kind["cpu to gpu"] for row in cpu_rows)
    (gpu_row,) = [row for row in answer.rows if row.result.cell.device == "cuda"]
    assert answer.check.for_row(gpu_row) is None  # no GPU-to-GPU pair is owned
    from_quiet, from_busy, from_repeated = cpu_rows  # in the order of the runs
    low, high, count = from_quiet.estimate_range_s  # type: ignore[misc]
    assert count == 5  # one process in each of two runs, three in the third
    # the busy run measured half the CPU's rates: its cell seemed at twice the share, the rosiest estimate
    assert high / low == pytest.approx(0.20 / (0.16 / 2))
    assert from_repeated.estimate_range_s == from_quiet.estimate_range_s  # the same cell, the same measurements
    assert from_busy.caveats == ["SUSPECT"] and from_quiet.caveats == []


def test_whatif_on_a_real_run(tmp_path: Path) -> None:
    run = api.run(fast_config(threads=[1, 2], batch_sizes=[1], cpu_roofline=True), db=tmp_path / "wattgap.db")
    rates = run.environment.cpu_roofline
    assert set(rates) == {"1", "2"} and all(value > 0 for value in rates["1"].values())
    for counted in run.results:
        assert counted.weight_traffic_elements and counted.activation_traffic_elements_per_sample
    db = str(tmp_path / "wattgap.db")
    table = wattgap("whatif", run.run_id, "--target", "L4", "--db", db, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "ESTIMATES by roofline" in table.stdout and "error on the 2 owned cpu to cpu pairs" in table.stdout
    assert "unvalidated: these runs own no cpu to gpu pair" in table.stdout
    data = json.loads(
        wattgap("whatif", run.run_id, "--target", "L4", "--format", "json", "--db", db, cwd=tmp_path).stdout
    )
    assert data["label"] == "estimate" and {row["label"] for row in data["rows"]} == {"estimate"}
    assert len(data["error_on_owned_pairs"]["pairs"]) == 2 and set(data["error_on_owned_pairs"]["by_kind"]) == {
        "cpu to cpu"
    }
    assert {(row["kind"], row["validated"]) for row in data["rows"]} == {("cpu to gpu", False)}
    bad = wattgap("whatif", run.run_id, "--target", "K80", "--db", db, cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.strip().startswith("wattgap: error: --target: got 'K80'; allowed: ")
