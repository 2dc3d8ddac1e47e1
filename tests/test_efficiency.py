"""Efficiency metrics: the reconstructed GQI and its guard, CO2, cost and the ranking, on results built
by hand with known numbers."""

from __future__ import annotations

import math

import pytest

from wattgap.analysis.efficiency import LOWER_IS_BETTER, RANKINGS, EfficiencyParams, cell_efficiency, efficiency, gqi
from wattgap.blocks import EpochPoint, Training
from wattgap.cells import Cell
from wattgap.config import parse_config
from wattgap.errors import ConfigError
from wattgap.measure.energy import CellEnergy, EnergyReading
from wattgap.results import CellResult, Run


def _energy(energy_j: float, samples: int, net_j: float | None = None) -> CellEnergy:
    reading = EnergyReading(domain="cpu", meter="m", label="estimated", energy_j=energy_j, window_s=10.0)
    energy = CellEnergy.from_readings([reading], samples)
    energy.net_energy_j = net_j
    return energy


def _infer(model: str, energy_j: float, samples: int, throughput: float, accuracy: float | None = None) -> CellResult:
    cell = Cell(model=model, workload="infer", backend="torch-eager", device="cpu", precision="fp32", batch_size=8)
    return CellResult(
        cell=cell, status="ok", throughput_sps=throughput, energy=_energy(energy_j, samples), accuracy_top1=accuracy
    )


def _trained(model: str, energy_j: float, time_s: float, top1: float) -> CellResult:
    cell = Cell(
        model=model, workload="train-to-accuracy", backend="torch-eager", device="cpu", precision="fp32", batch_size=32
    )
    curve = [EpochPoint(epoch=1, time_s=time_s, energy_j=energy_j, net_energy_j=energy_j / 2, top1=top1)]
    training = Training(
        target_accuracy=0.9, max_epochs=5, reached=True, epochs=1, time_to_accuracy_s=time_s,
        energy_to_accuracy_j=energy_j, total_time_s=time_s, total_energy_j=energy_j, final_top1=top1,
        best_top1=top1, curve=curve,
    )  # fmt: skip
    return CellResult(cell=cell, status="ok", energy=_energy(energy_j, 1000), accuracy_top1=top1, block=training)


def test_gqi_strict_refuses_electricity_at_or_below_one_unit() -> None:
    params = EfficiencyParams()
    value, why = gqi(0.9, 7200.0, params)  # 2 Wh
    assert value == pytest.approx(0.9 / math.log10(2)) and why == ""
    value, why = gqi(0.9, 3600.0, params)  # exactly 1 Wh: log10 = 0
    assert value is None and "<= 1" in why and "log1p" in why
    loose = EfficiencyParams(gqi_variant="log1p", alpha=2, beta=10)
    value, _ = gqi(0.9, 3600.0, loose)
    assert value == pytest.approx(10 * 0.81 / math.log10(2))
    joules = EfficiencyParams(electricity_unit="J")
    assert gqi(0.9, 3600.0, joules)[0] == pytest.approx(0.9 / math.log10(3600))


def test_per_thousand_samples_co2_and_cost() -> None:
    params = EfficiencyParams(carbon_intensity=400, price_per_kwh=0.2, price_per_device_hour=3.6)
    row = cell_efficiency(_infer("conv6", energy_j=50.0, samples=500, throughput=100.0), params)
    assert row.basis == "1000 samples" and row.energy_j == pytest.approx(100.0)
    assert row.samples_per_j == pytest.approx(10.0) and row.time_s == pytest.approx(10.0)
    kwh = 100.0 / 3.6e6
    assert row.co2_g == pytest.approx(kwh * 400)
    assert row.cost == pytest.approx(kwh * 0.2 + 10.0 / 3600 * 3.6)
    assert row.gqi is None and row.accuracy is None


def test_training_run_basis_and_net_energy() -> None:
    result = _trained("resnet18", energy_j=36_000.0, time_s=120.0, top1=0.95)  # 10 Wh
    row = cell_efficiency(result, EfficiencyParams())
    assert row.basis == "training run" and row.energy_j == 36_000.0 and row.time_s == 120.0
    assert row.accuracy_per_kwh == pytest.approx(0.95 / 0.01)
    assert row.gqi == pytest.approx(0.95 / math.log10(10))
    net = cell_efficiency(result, EfficiencyParams(energy="net"))
    assert net.energy_j == 18_000.0


def test_ranking_puts_missing_values_last_and_cost_ascending() -> None:
    config = parse_config({"models": ["conv6"]})
    results = [
        _infer("a", energy_j=50.0, samples=500, throughput=100.0),
        _infer("b", energy_j=10.0, samples=500, throughput=100.0),
        _trained("c", energy_j=36_000.0, time_s=60.0, top1=0.9),
    ]
    cells = [r.cell for r in results]
    run = Run(
        run_id="r", name="n", created_at="t", status="complete", config=config, environment={}, cells=cells,
        results=results,
    )  # fmt: skip
    metric, rows = efficiency(run, EfficiencyParams())
    assert metric == "gqi" and rows[0].model == "c"  # the only cell with an accuracy comes first
    metric, rows = efficiency(run, EfficiencyParams(), rank="samples_per_j")
    assert [r.model for r in rows] == ["b", "a", "c"]
    _, rows = efficiency(run, EfficiencyParams(), rank="cost")
    assert [r.model for r in rows][:2] == ["b", "a"]


def _three_cell_run() -> Run:
    results = [
        _infer("a", energy_j=50.0, samples=500, throughput=100.0, accuracy=0.5),
        _infer("b", energy_j=10.0, samples=500, throughput=100.0, accuracy=0.4),
        _trained("c", energy_j=36_000.0, time_s=60.0, top1=0.9),
    ]
    return Run(
        run_id="r", name="n", created_at="t", status="complete", config=parse_config({"models": ["conv6"]}),
        environment={}, cells=[r.cell for r in results], results=results,
    )  # fmt: skip


@pytest.mark.parametrize("rank", RANKINGS)
def test_every_rank_ranks_by_its_own_figure(rank: str) -> None:
    params = EfficiencyParams(price_per_device_hour=1.0, gqi_variant="log1p")
    metric, rows = efficiency(_three_cell_run(), params, rank=rank)
    values = [row.metric(rank) for row in rows]
    assert metric == rank and None not in values
    assert values == sorted(values, reverse=rank not in LOWER_IS_BETTER)  # type: ignore[type-var]


def test_co2_ranks_by_grams_lowest_first() -> None:
    _, rows = efficiency(_three_cell_run(), EfficiencyParams(), rank="co2")
    assert [row.model for row in rows] == ["b", "a", "c"]
    assert rows[0].co2_g is not None and rows[0].co2_g < rows[1].co2_g  # type: ignore[operator]


def test_an_unknown_rank_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError, match=r"--rank: got 'watts'; allowed: gqi, accuracy_per_kwh"):
        efficiency(_three_cell_run(), EfficiencyParams(), rank="watts")


def test_the_cli_offers_exactly_the_rankings() -> None:
    from wattgap.cli import Rank

    assert tuple(rank.value for rank in Rank) == RANKINGS
