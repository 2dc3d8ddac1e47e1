"""Right answers at first read: comparisons across batch sizes, the regression gate, suspect results and
idle readings, net energy, the efficiency default, number formatting, and the library versions of the
fingerprint. Results are built from known samples; the CLI side is in test_cli_output.py."""

from __future__ import annotations

import subprocess
import sys
import time
from importlib import metadata

import numpy as np
import pytest
from test_speedup import make_run, result

from wattgap.analysis.efficiency import EfficiencyParams, efficiency
from wattgap.analysis.plausibility import suspects
from wattgap.analysis.speedup import Spread, compare, regressions
from wattgap.config import EnergySettings
from wattgap.measure.energy import CellEnergy, EnergyReading, measure_idle
from wattgap.render.format import number, quantity, seconds
from wattgap.results import CellResult

RNG = np.random.default_rng(11)
ONE_MS = RNG.normal(0.001, 0.00002, 300)


def test_across_batch_sizes_the_speedup_is_throughput_per_sample() -> None:
    """batch 1 at 1 ms and batch 8 at 4 ms: batch 8 processes 2000 samples/s against 1000, a speedup of 2
    (a latency ratio would say 0.25 and call the faster configuration slower)."""
    run = make_run("r", [result(ONE_MS, batch_size=1), result(ONE_MS * 4, batch_size=8)])
    (pair,) = compare(run, run, by="batch_size").pairs
    assert pair.speedup == pytest.approx(2.0, rel=0.02)
    assert pair.ci_low < pair.speedup < pair.ci_high and pair.ci_low > 1.5
    change, low, high = pair.latency_change  # per iteration, batch 8 does take 4x as long
    assert change == pytest.approx(3.0, rel=0.03) and low < change < high


def test_two_runs_pair_each_cell_with_itself_not_with_every_batch() -> None:
    a = make_run("a", [result(ONE_MS, batch_size=1), result(ONE_MS * 4, batch_size=8)])
    b = make_run("b", [result(ONE_MS * 1.1, batch_size=1), result(ONE_MS * 4.4, batch_size=8)])
    comparison = compare(a, b, by="batch_size")
    assert sorted((p.a.cell.batch_size, p.b.cell.batch_size) for p in comparison.pairs) == [(1, 1), (8, 8)]
    assert comparison.geomean == pytest.approx(1 / 1.1, rel=0.02)


def test_the_regression_gate_needs_the_whole_interval_past_the_threshold() -> None:
    a = make_run("a", [result(ONE_MS), result(ONE_MS, model="vgg16")])
    b = make_run("b", [result(ONE_MS * 1.3), result(ONE_MS * 1.02, model="vgg16")])
    comparison = compare(a, b, by="device", spread=Spread(sd_log=0.005, cells=4, runs=["m"], age_s=60.0))
    assert [r.pair.a.cell.model for r in regressions(comparison, 10)] == ["resnet18"]  # -23% throughput
    assert regressions(comparison, 30) == []  # -23% is not beyond 30%


def test_the_gate_does_not_call_a_regression_on_a_side_measured_on_a_busy_machine() -> None:
    """B is 30% slower, but its noise audit found other processes on the CPU: not a regression of the code."""
    from wattgap.measure.noise import NoiseAudit

    busy = NoiseAudit(window_s=1.0, suspect=["other processes used 0.98 cores (over 0.1)"])
    a = make_run("a", [result(ONE_MS), result(ONE_MS, model="vgg16")])
    slow = result(ONE_MS * 1.3).model_copy(update={"noise": busy})
    b = make_run("b", [slow, result(ONE_MS * 1.3, model="vgg16")])
    comparison = compare(a, b, by="device", spread=Spread(sd_log=0.005, cells=4, runs=["m"], age_s=60.0))
    busy_pair = next(p for p in comparison.pairs if p.a.cell.model == "resnet18")
    assert busy_pair.busy and not busy_pair.judged
    assert [r.pair.a.cell.model for r in regressions(comparison, 10)] == ["vgg16"]  # the quiet one is judged


def test_a_cell_slower_than_a_larger_batch_of_itself_is_suspect() -> None:
    """conv6 batch 1 at 175 ms while batch 16 ran in 97 ms: the machine was busy during batch 1."""
    busy = make_run("r", [result(ONE_MS * 175, batch_size=1), result(ONE_MS * 97, batch_size=16)])
    assert list(suspects(busy)) == [busy.results[0].cell_id]
    assert "slower per iteration than batch 16" in suspects(busy)[busy.results[0].cell_id]
    steady = make_run("r", [result(ONE_MS * 2.6, batch_size=1), result(ONE_MS * 97, batch_size=16)])
    assert suspects(steady) == {}


def _reading(energy_j: float, window_s: float = 10.0) -> EnergyReading:
    return EnergyReading(domain="cpu", meter="m", label="estimated", energy_j=energy_j, window_s=window_s)


def test_net_energy_is_never_negative_nor_taken_from_a_busy_idle_reading() -> None:
    quiet_idle = {"cpu": {"power_w": 4.0}}
    assert CellEnergy.from_readings([_reading(100.0)], 10, quiet_idle).net_energy_j == pytest.approx(60.0)
    busy_idle = {"cpu": {"power_w": 12.0}}  # 120 J of "idle" in a 100 J window
    energy = CellEnergy.from_readings([_reading(100.0)], 10, busy_idle)
    assert energy.net_energy_j is None and energy.energy_j == 100.0
    assert any("no net energy: it would be -20.0 J, below zero" in w for w in energy.warnings)
    flagged = {"cpu": {"power_w": 4.0, "warning": "not idle: other work took 60% of the machine's CPU time"}}
    energy = CellEnergy.from_readings([_reading(100.0)], 10, flagged)
    assert energy.net_energy_j is None and any("idle reading is not idle" in w for w in energy.warnings)


def test_an_idle_reading_taken_on_a_busy_machine_is_flagged() -> None:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        idle = measure_idle(["cpu"], EnergySettings(idle_s=1.0))
    finally:
        spinner.kill()
        spinner.wait()
    (cpu,) = idle.values()
    assert cpu.busy_fraction is not None and cpu.busy_fraction > 0.10
    assert cpu.warning.startswith("not idle: other work took")


def test_efficiency_ranks_by_something_defined_by_default() -> None:
    """Digits-sized runs use well under 1 Wh: strict GQI is undefined for every cell, so ranking by it
    gave an arbitrary order. The default falls back to accuracy per kWh."""
    from test_efficiency import _infer

    results = [
        _infer("a", energy_j=50.0, samples=500, throughput=100.0, accuracy=0.5),
        _infer("b", energy_j=10.0, samples=500, throughput=100.0, accuracy=0.4),
    ]
    run = make_run("r", results)
    metric, rows = efficiency(run, EfficiencyParams())
    assert all(row.gqi is None for row in rows)
    assert metric == "accuracy_per_kwh" and [row.model for row in rows] == ["b", "a"]


@pytest.mark.parametrize(
    ("value", "text"),
    [(999.7, "1000"), (1000.0, "1000"), (0.000123, "0.000123"), (9.996, "10.0"), (123456.0, "123456")],
)
def test_numbers_never_print_in_exponent_form(value: float, text: str) -> None:
    assert number(value) == text


def test_quantities_roll_over_to_the_next_prefix() -> None:
    assert quantity(1023.6 * 1024, "B", 1024.0) == "1.00 MiB"
    assert quantity(999.96, "sps") == "1.00 ksps"
    assert quantity(1000.0 * 1024, "B", 1024.0) == "1000 KiB"
    assert seconds(0.00099996) == "1.00 ms" and seconds(0.0999999) == "100 ms"
    assert all("e+" not in quantity(10.0**k, "B", 1024.0) for k in range(20))


def test_library_versions_are_found_through_the_distribution_that_provides_them() -> None:
    """tensorflow-cpu provides tensorflow: a lookup by the distribution name 'tensorflow' missed it."""
    from wattgap.runner.fingerprint import _versions

    versions, distributions = _versions()
    providers = metadata.packages_distributions()
    for name, module in (("tensorflow", "tensorflow"), ("onnxruntime", "onnxruntime"), ("torch", "torch")):
        if module in providers:
            assert versions[name] == metadata.version(providers[module][0])
    if "tensorflow" in providers and providers["tensorflow"][0].lower() != "tensorflow":
        assert distributions["tensorflow"].lower().replace("_", "-") == "tensorflow-cpu"


def test_a_rank_no_cell_has_is_refused_not_a_silent_sweep_order() -> None:
    """`efficiency --rank gqi` on a run without accuracy said 'ranked by gqi', showed no GQI and listed
    the cells in sweep order."""
    from wattgap.errors import ConfigError

    run = make_run("r", [result(ONE_MS), result(ONE_MS * 2, model="vgg16")])
    with pytest.raises(ConfigError, match=r"--rank gqi: no cell of run r has a gqi to rank by .*accuracy"):
        efficiency(run, EfficiencyParams(), rank="gqi")
    assert efficiency(run, EfficiencyParams())[0] == "samples_per_j"  # the default still falls back, and says so


def test_net_energy_names_the_idle_reading_it_rejected() -> None:
    """It said 'no idle power measured' when idle was measured but rejected as not idle."""
    reading = EnergyReading(domain="cpu", meter="m", label="estimated", energy_j=50.0, window_s=10.0)
    idle = {"cpu": {"power_w": 2.0, "warning": "not idle: other work took 40% of the machine's CPU time"}}
    cell = result(ONE_MS).model_copy(update={"energy": CellEnergy.from_readings([reading], 1000, idle)})
    _, (row,) = efficiency(make_run("r", [cell]), EfficiencyParams(energy="net"))
    assert row.energy_j is None and "the idle reading is not idle: other work took 40%" in row.note


def test_intervals_show_their_two_sides() -> None:
    """[16.5, 73.9] around 27.6 ms printed as ±104% (a negative lower bound)."""
    from wattgap.measure.stats import summarize
    from wattgap.render.format import interval

    stats = summarize([0.0276] * 3).model_copy(update={"median_ci_low_s": 0.0165, "median_ci_high_s": 0.0739})
    assert interval(stats) == "-40/+168%"
    symmetric = stats.model_copy(update={"median_ci_low_s": 0.0276 * 0.995, "median_ci_high_s": 0.0276 * 1.005})
    assert interval(symmetric) == "±0.50%"


def test_no_answer_prints_an_exponent() -> None:
    """recommend printed '1.27e+03 ms'; every number of an analysis goes through the fixed-point formatter."""
    import pathlib
    import re

    source = pathlib.Path(__file__).parents[1] / "src" / "wattgap"
    exponent_formats = [
        f"{path.relative_to(source)}:{number}: {line.strip()}"
        for path in source.rglob("*.py")
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\{[^{}]*:\.\d+[eg]\}", line)
    ]
    assert exponent_formats == []


def test_the_projections_accelerators_are_one_gpu_each_in_decimal_gigabytes() -> None:
    """The K80 was one 24 GB accelerator (two 12 GB GPUs on one board), stored as GiB."""
    from wattgap.analysis.projection import load_entries

    entries, _ = load_entries(None)
    memory = {entry.name: entry.memory_bytes for entry in entries if entry.kind == "accelerator"}
    assert memory["NVIDIA Tesla K80"] == 12e9 and memory["NVIDIA H100 SXM"] == 80e9
    assert memory["AMD Instinct MI250X"] == 64e9 and memory["NVIDIA H200"] == 141e9
    assert all(value % 10**9 == 0 for value in memory.values() if value)


def _busy(cell: CellResult) -> CellResult:
    from wattgap.measure.noise import NoiseAudit

    audit = NoiseAudit(window_s=1.0, other_cpu_cores=0.9, suspect=["other processes used 0.9 cores"])
    return cell.model_copy(update={"noise": audit})


def test_answers_prefer_quiet_cells_and_say_when_they_rest_on_a_suspect_one() -> None:
    """On a busy machine `recommend` and the run's 'highest throughput' line picked from SUSPECT cells
    without a word, and the JSON's best had no noise field. A SUSPECT cell is passed over for any other;
    a noisy one keeps its place, with its caveat."""
    from wattgap.analysis.plausibility import highest
    from wattgap.analysis.recommend import recommend
    from wattgap.render.data import recommendation_data

    def rated(cell: CellResult) -> CellResult:
        assert cell.latency is not None
        rate = cell.cell.batch_size / cell.latency.median_s
        return cell.model_copy(update={"throughput_median_sps": rate, "throughput_sps": rate})

    quiet, fast_but_busy = rated(result(ONE_MS * 2)), _busy(rated(result(ONE_MS, model="vgg16")))
    mixed = make_run("r", [quiet, fast_but_busy])
    answer = recommend([mixed], "throughput")
    assert answer.best is not None and answer.best.result.cell.model == "resnet18" and answer.best.caveats == []
    (best,) = highest(mixed)
    assert best.result.cell.model == "resnet18" and best.caveats == []
    only_busy = make_run("s", [_busy(rated(result(ONE_MS * 2))), fast_but_busy])
    answer = recommend([only_busy], "throughput")
    assert answer.best is not None and answer.best.result.cell.model == "vgg16"
    assert recommendation_data(answer)["best"]["caveats"] == ["SUSPECT"]
    (best,) = highest(only_busy)
    assert best.result.cell.model == "vgg16" and best.caveats == ["SUSPECT"]
    fast = rated(result(ONE_MS, model="vgg16"))
    assert fast.latency is not None
    noisy = fast.model_copy(update={"latency": fast.latency.model_copy(update={"noisy": True})})
    answer = recommend([make_run("n", [quiet, noisy])], "throughput")  # a noisy median stands, said so
    assert answer.best is not None and answer.best.result.cell.model == "vgg16" and answer.best.caveats == ["noisy"]
    (best,) = highest(make_run("n", [quiet, noisy]))
    assert best.result.cell.model == "vgg16" and best.caveats == ["noisy"]


def test_the_energy_objective_says_estimated_and_the_cost_its_currency() -> None:
    """`recommend --objective energy` never said `estimated`, showed a zero-width interval, and the cost
    objective printed no currency."""
    from wattgap.analysis.recommend import recommend
    from wattgap.render.terminal import recommendation_view

    reading = EnergyReading(domain="cpu", meter="m", label="estimated", energy_j=45.6, window_s=10.0)
    energy = CellEnergy.from_readings([reading], 1000)
    cell = result(ONE_MS).model_copy(update={"energy": energy, "throughput_sps": 8000.0})
    from rich.console import Console

    console = Console(width=200, record=True)
    for objective in ("energy", "cost"):
        console.print(recommendation_view(recommend([make_run("r", [cell])], objective)))
    text = console.export_text()
    assert "0.0456 J/sample (estimated energy)" in text and "[0.0456" not in text
    assert "USD per 1000 samples" in text
