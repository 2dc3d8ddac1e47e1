"""Does wattgap measure what a careful hand-written loop measures, and what does isolation cost?

ResNet18 inference on CPU at batch 1 and 32 (224x224), timed three ways, side by side in one run:
wattgap's cell (its own subprocess, the default adaptive protocol), a tight perf_counter_ns loop, and
torch.utils.benchmark.Timer.blocked_autorange. The two references also run in fresh subprocesses, with
the same threads, the same warmup and as many iterations (or as much time) as wattgap's window, so all
three see the same process start-up conditions. A shared 2-core VM drifts by tens of percent over
minutes, so the three are interleaved in rounds and each round's ratios are taken between neighbours in
time; the summary is the median ratio over rounds, with its range. Also printed: wattgap's per-cell
overhead (subprocess start, model build, FLOP count) and the time `wattgap --help` takes.

    python bench/overhead.py [--rounds 5] [--batches 1,32]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMAGE = 224


def reference(kind: str, batch: int, threads: int, iterations: int, seconds: float) -> float:
    """Median latency (s) of ResNet18 inference by a tight loop or blocked_autorange, in this process."""
    import torch

    from wattgap.models import MODELS

    torch.set_num_interop_threads(1)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = MODELS["resnet18"].build_torch(IMAGE).eval()
    x = torch.randn(batch, 3, IMAGE, IMAGE)
    with torch.inference_mode():
        start, warm = time.perf_counter(), 0
        while warm < 10 or time.perf_counter() - start < 1.0:  # wattgap's default warmup
            model(x)
            warm += 1
        if kind == "autorange":
            from torch.utils.benchmark import Timer

            timer = Timer("model(x)", globals={"model": model, "x": x}, num_threads=threads)
            return float(timer.blocked_autorange(min_run_time=seconds).median)
        samples = []
        for _ in range(iterations):
            begin = time.perf_counter_ns()
            model(x)
            samples.append((time.perf_counter_ns() - begin) * 1e-9)
    return statistics.median(samples)


def reference_in_subprocess(kind: str, batch: int, threads: int, iterations: int, seconds: float) -> float:
    args = [kind, str(batch), str(threads), str(iterations), str(seconds)]
    out = subprocess.run(
        [sys.executable, __file__, "--reference", *args], capture_output=True, text=True, check=True
    ).stdout
    return float(out.strip().splitlines()[-1])


def wattgap_cell(batch: int, threads: int, folder: Path):  # type: ignore[no-untyped-def]
    import wattgap

    config = {
        "name": "bench-overhead",
        "models": ["resnet18"],
        "devices": ["cpu"],
        "threads": [threads],
        "batch_sizes": [batch],
        "image_size": IMAGE,
    }
    run = wattgap.run(config, db=folder / "bench.db")
    result = run.results[0]
    assert result.latency is not None, result.reason
    return result


def suite_overhead(folder: Path, suite: str = "quick", **overrides: object) -> tuple[float, float, int]:
    """The suite run as `wattgap run --suite quick` would: its wall time (run() called to run() returned)
    over the sum of its cells' warmup and measure windows, and the mean seconds per cell outside them."""
    import wattgap
    from wattgap.api import sweep_from_options

    sweep = sweep_from_options(suite=suite, overrides=overrides)
    start = time.perf_counter()
    run = wattgap.run(sweep, db=folder / f"suite-{time.time_ns()}.db")
    wall = time.perf_counter() - start
    ran = [r for r in run.results if r.status == "ok"]
    windows = sum((r.phases.warmup_s or 0) + (r.phases.measure_s or 0) for r in ran)
    return wall / windows, (wall - windows) / len(ran), len(ran)


def help_seconds() -> float:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "wattgap", "--help"], capture_output=True, check=True)
        runs.append(time.perf_counter() - start)
    return min(runs)


def main(rounds: int, batches: list[int]) -> None:
    import psutil
    import torch

    threads = psutil.cpu_count(logical=False) or 1
    print(f"ResNet18 inference, CPU, {IMAGE}x{IMAGE}, {threads} threads, torch {torch.__version__}, {rounds} rounds")
    print(f"{'batch':>5} {'round':>5} {'wattgap':>10} {'tight':>10} {'autorange':>10} {'wg/tight':>9} {'wg/auto':>8}")
    summary = []
    with tempfile.TemporaryDirectory() as folder:
        for batch in batches:
            ratios_tight, ratios_auto, overheads = [], [], []
            for index in range(rounds):
                result = wattgap_cell(batch, threads, Path(folder))
                ours = result.latency.median_s
                n, window = result.iterations, result.phases.measure_s
                tight = reference_in_subprocess("tight", batch, threads, n, window)
                auto = reference_in_subprocess("autorange", batch, threads, n, window)
                ratios_tight.append(ours / tight)
                ratios_auto.append(ours / auto)
                phases = result.phases
                overheads.append(phases.total_s - phases.warmup_s - phases.measure_s)
                print(
                    f"{batch:>5} {index + 1:>5} {ours * 1e3:>8.2f}ms {tight * 1e3:>8.2f}ms {auto * 1e3:>8.2f}ms "
                    f"{ours / tight:>9.3f} {ours / auto:>8.3f}   n={n} CI±{result.latency.median_ci_rel_halfwidth:.1%} "
                    f"stop={result.stop_reason} startup {phases.startup_s:.2f}s load {phases.load_s:.2f}s "
                    f"prepare {phases.prepare_s:.2f}s"
                )
            summary.append((batch, ratios_tight, ratios_auto, overheads))
    print("\nsummary: median ratio over rounds [min, max]; overhead = cell wall time outside warmup and measure")
    for batch, tight, auto, overheads in summary:
        print(
            f"  batch {batch:>2}: wattgap/tight {statistics.median(tight):.3f} [{min(tight):.3f}, {max(tight):.3f}]"
            f"   wattgap/autorange {statistics.median(auto):.3f} [{min(auto):.3f}, {max(auto):.3f}]"
            f"   overhead {statistics.median(overheads):.2f}s"
        )
    print(f"  wattgap --help: {help_seconds():.3f}s (best of 5)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    parser.add_argument("--reference", nargs=5, metavar=("KIND", "BATCH", "THREADS", "ITERATIONS", "SECONDS"))
    options = parser.parse_args()
    if options.reference:
        kind, batch, threads, iterations, seconds = options.reference
        print(reference(kind, int(batch), int(threads), int(iterations), float(seconds)))
    else:
        main(options.rounds, [int(b) for b in options.batches.split(",")])
