"""Time and energy to accuracy on this machine, and how much they vary with the seed.

Conv6 and ResNet18 (the watt-for-what suite: digits at 32x32, Adam 1e-3, batch 32, target 95% top-1,
at most 20 epochs) trained once per seed; the seed changes the train/validation split, the initial
weights and the shuffling. Printed: each run, then per model the mean, standard deviation and range of
time to accuracy and energy to accuracy over the seeds, and the label of the energy figures (on a
machine without RAPL or NVML they are the documented CPU estimate, not a measurement).

    python bench/train_to_accuracy.py [--seeds 0,1,2] [--models conv6,resnet18]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import wattgap
from wattgap.blocks import Training
from wattgap.config import load_suite_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--models", default="conv6,resnet18")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    models = args.models.split(",")
    rows: dict[str, list[tuple[float, float | None, int, float, str]]] = {m: [] for m in models}
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "bench.db"
        for seed in seeds:
            config = load_suite_data("watt-for-what") | {"models": models, "seed": seed, "devices": ["cpu"]}
            run = wattgap.run(config, db=db)
            for result in run.results:
                training, energy = result.block, result.energy
                if result.status != "ok" or not isinstance(training, Training) or energy is None:
                    print(f"seed {seed} {result.cell.label}: {result.status} {result.reason}")
                    continue
                time_s = training.time_to_accuracy_s or training.total_time_s
                energy_j = training.energy_to_accuracy_j if training.reached else training.total_energy_j
                mark = "" if training.reached else " (target not reached)"
                print(
                    f"seed {seed} {result.cell.model:9s} epochs {training.epochs:2d} time {time_s:7.1f} s "
                    f"energy {energy_j or float('nan'):8.1f} J ({energy.label}) top-1 {training.final_top1:.4f}{mark}"
                )
                rows[result.cell.model].append((time_s, energy_j, training.epochs, training.final_top1, energy.label))
            print(f"  idle power: {run.environment.idle_power}")
    print("\nmodel      n  time to accuracy s: mean  std  range     energy J: mean  std    top-1 mean")
    for model, runs in rows.items():
        if not runs:
            continue
        times = [r[0] for r in runs]
        energies = [r[1] for r in runs if r[1] is not None]
        std = statistics.stdev(times) if len(times) > 1 else 0.0
        estd = statistics.stdev(energies) if len(energies) > 1 else 0.0
        print(
            f"{model:9s} {len(runs):2d}  {statistics.mean(times):8.1f} {std:6.1f} "
            f"{min(times):6.1f}-{max(times):<6.1f} {statistics.mean(energies):9.1f} {estd:6.1f} "
            f"({runs[0][4]})  {statistics.mean(r[3] for r in runs):.4f}"
        )


if __name__ == "__main__":
    main()
