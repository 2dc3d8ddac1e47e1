"""train-to-accuracy on the bundled digits, end to end (real model, real subprocess, real SQLite), its
energy, and the efficiency ranking through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import fast_config, wattgap

import wattgap as api
from wattgap.blocks import Training

# Real training, and its net energy needs a quiet idle measurement: run alone, never beside another test.
pytestmark = [pytest.mark.slow, pytest.mark.serial]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, api.Run]:
    folder = tmp_path_factory.mktemp("fit")
    config = fast_config(
        workloads=["train-to-accuracy", "infer"],
        image_size=16,
        batch_sizes=[32],
        dataset="digits",
        target_accuracy=0.5,
        max_epochs=4,
        energy={"idle_s": 0.5},
    )
    return folder, api.run(config, db=folder / "wattgap.db")


def test_trains_to_the_target_and_records_the_curve(trained: tuple[Path, api.Run]) -> None:
    _, run = trained
    fit = next(r for r in run.results if r.cell.workload == "train-to-accuracy")
    assert fit.status == "ok", fit.reason
    training = fit.block
    assert isinstance(training, Training) and training.reached and fit.stop_reason == "target_reached"
    assert training.curve[-1].top1 >= 0.5 > max([p.top1 for p in training.curve[:-1]], default=0.0)
    times = [p.time_s for p in training.curve]
    energies = [p.energy_j or 0.0 for p in training.curve]
    assert times == sorted(times) and energies == sorted(energies) and energies[0] > 0
    assert training.time_to_accuracy_s == times[-1] and training.energy_to_accuracy_j == energies[-1]
    assert fit.accuracy_top1 == training.final_top1
    assert fit.iterations == len(fit.latencies_s) == training.epochs * 45  # ceil(1437 / 32) steps per epoch
    assert fit.settings["dataset"] == "digits" and fit.settings["train_samples"] == 1437
    assert fit.settings["optimizer"] == "adam lr=0.001 momentum=0.9"  # train-to-accuracy's default
    energy = fit.energy
    assert energy is not None and energy.label == "estimated"  # no RAPL in CI: the model, labelled
    assert energy.energy_j == pytest.approx(energies[-1])
    assert energy.net_energy_j is not None and 0 < energy.net_energy_j < energy.energy_j
    assert energy.prepare_energy_j and energy.prepare_energy_j > 0
    assert energy.samples == 1437 * training.epochs


def test_infer_with_a_dataset_reports_top1_and_energy(trained: tuple[Path, api.Run]) -> None:
    _, run = trained
    infer = next(r for r in run.results if r.cell.workload == "infer")
    assert infer.status == "ok" and infer.accuracy_top1 is not None and 0.0 <= infer.accuracy_top1 <= 1.0
    assert infer.energy is not None and infer.energy.energy_j and infer.energy.j_per_sample
    idle = run.environment.idle_power["cpu"]
    assert idle["label"] == "estimated" and idle["power_w"] > 0 and idle["window_s"] >= 0.5


def test_show_and_efficiency_label_energy(trained: tuple[Path, api.Run]) -> None:
    folder, run = trained
    shown = wattgap("show", run.run_id, cwd=folder)
    assert shown.returncode == 0 and "estimated" in shown.stdout and "idle power: cpu" in shown.stdout
    ranked = wattgap("efficiency", run.run_id, "--electricity-unit", "J", "--format", "json", cwd=folder)
    assert ranked.returncode == 0, ranked.stderr
    report = json.loads(ranked.stdout)
    assert report["rank"] == "gqi" and "reconstructed" in report["gqi"]
    first = report["cells"][0]
    assert first["workload"] == "train-to-accuracy" and first["gqi"] > 0 and first["basis"] == "training run"
    strict = wattgap("efficiency", run.run_id, cwd=folder)  # Wh: a few hundred joules is < 1 Wh
    assert strict.returncode == 0 and "log10 <= 0" in " ".join(strict.stdout.split())  # a footnote: prose wraps
