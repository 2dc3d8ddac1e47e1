"""Does wattgap measure what a careful hand-written loop measures, and what does isolation cost?

1. Agreement. ResNet18 inference on the CPU at batch 1 and 32 (224x224), wattgap with `--repeats N`
   (default 5, interleaved): after each of wattgap's processes, a hand-written perf_counter_ns loop runs in
   a fresh subprocess of its own with the same threads, warmup and as many iterations, so the two
   alternate in time and see the same drifts of a shared machine. Printed per batch: wattgap's median with
   its hierarchical interval, the hand loop's median over its processes with their range, the ratio, and
   wattgap's interval width over processes against one window's own (the median of its processes').
2. Overhead. The `quick` suite run whole, once with every cell's process forked from the fork server and
   once started as a fresh interpreter (`process_start: exec`), side by side: its wall time over the sum of
   its cells' warmup and measure windows, and the seconds per cell outside them.
3. The time `wattgap --help` takes.

    python bench/overhead.py [--repeats 5] [--batches 1,32] [--skip-agreement] [--skip-suite]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

IMAGE = 224


def reference(batch: int, threads: int, iterations: int) -> float:
    """Median latency (s) of ResNet18 inference by a tight loop, in this process."""
    import torch

    from wattgap.models import MODELS

    torch.set_num_interop_threads(1)
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = MODELS["resnet18"].build_torch(IMAGE).eval().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, IMAGE, IMAGE).to(memory_format=torch.channels_last)  # wattgap's default layout
    with torch.inference_mode():
        start, warm = time.perf_counter(), 0
        while warm < 10 or time.perf_counter() - start < 1.0:  # wattgap's default warmup
            model(x)
            warm += 1
        samples = []
        for _ in range(iterations):
            begin = time.perf_counter_ns()
            model(x)
            samples.append((time.perf_counter_ns() - begin) * 1e-9)
    return statistics.median(samples)


def reference_in_subprocess(batch: int, threads: int, iterations: int) -> float:
    args = [str(batch), str(threads), str(iterations)]
    out = subprocess.run(
        [sys.executable, __file__, "--reference", *args], capture_output=True, text=True, check=True
    ).stdout
    return float(out.strip().splitlines()[-1])


def agreement(repeats: int, batches: list[int], folder: Path) -> None:
    import psutil

    import wattgap.api
    from wattgap.runner.executors import CellJob, LocalExecutor
    from wattgap.runner.executors.base import OnEvent

    hand: dict[int, list[float]] = {batch: [] for batch in batches}

    class Alternating(LocalExecutor):
        """wattgap's processes, each followed by a hand-written loop in a fresh process of its own."""

        def submit(self, jobs: Iterable[CellJob], on_event: OnEvent) -> Iterator:  # type: ignore[type-arg]
            for result in super().submit(jobs, on_event):
                if result.status == "ok":
                    batch, threads = result.cell.batch_size, result.cell.threads or 1
                    hand[batch].append(reference_in_subprocess(batch, threads, len(result.latencies_s)))
                yield result

    threads = psutil.cpu_count(logical=False) or 1
    config = {
        "name": "bench-agreement",
        "models": ["resnet18"],
        "devices": ["cpu"],
        "threads": [threads],
        "batch_sizes": batches,
        "image_size": IMAGE,
        "protocol": {"repeats": repeats},
    }
    run = wattgap.api.run(config, db=folder / "agreement.db", executor=Alternating())
    print(f"\n1. ResNet18 inference, CPU, {IMAGE}x{IMAGE}, {threads} threads, {repeats} processes each, interleaved")
    print(f"{'batch':>5} {'wattgap median [CI]':>28} {'hand loop [range]':>26} {'ratio':>6} {'±CI':>6} {'±window':>8}")
    for result in run.results:
        stats, batch = result.latency, result.cell.batch_size
        assert stats is not None, result.reason
        loops = hand[batch]
        theirs = statistics.median(loops)
        print(
            f"{batch:>5} {stats.median_s * 1e3:>9.2f} ms [{stats.median_ci_low_s * 1e3:.2f}, "
            f"{stats.median_ci_high_s * 1e3:.2f}] {theirs * 1e3:>9.2f} ms [{min(loops) * 1e3:.2f}, "
            f"{max(loops) * 1e3:.2f}] {stats.median_s / theirs:>6.3f} {stats.median_ci_rel_halfwidth:>6.1%} "
            f"{stats.within_ci_rel_halfwidth or 0:>8.1%}"
        )
        medians = ", ".join(f"{m * 1e3:.2f}" for m in stats.repeat_medians_s)
        print(f"      wattgap's processes: {medians} ms (cv {stats.between_repeat_cv or 0:.1%})")


def suite_overhead(db: Path, suite: str = "quick", **overrides: object) -> tuple[float, float, int]:
    """The suite run as `wattgap run --suite quick` would (a fork server of its own when it forks): its
    wall time (run() called to run() returned) over the sum of its cells' warmup and measure windows, and
    the mean seconds per cell outside them."""
    import wattgap
    from wattgap.api import sweep_from_options

    sweep = sweep_from_options(suite=suite, overrides=overrides)
    start = time.perf_counter()
    run = wattgap.run(sweep, db=db)
    wall = time.perf_counter() - start
    ran = [r for r in run.results if r.status == "ok"]
    windows = sum((r.phases.warmup_s or 0) + (r.phases.measure_s or 0) for r in ran)
    return wall / windows, (wall - windows) / len(ran), len(ran)


def overhead(folder: Path) -> None:
    """Each way run in a process of its own, as a command would: twice into one database, the second
    reusing the first's idle-power reading."""
    print("\n2. the quick suite, every cell's process started both ways, each in a new sweep process")
    print(f"{'process start':>14} {'run':>32} {'wall / windows':>15} {'s per cell outside them':>24}")
    for start in ("exec", "forkserver"):
        db = folder / f"suite-{start}.db"
        for which in ("first (measures idle power)", "second (reuses it)"):
            out = subprocess.run(
                [sys.executable, __file__, "--suite-run", str(db), start], capture_output=True, text=True, check=True
            ).stdout
            ratio, per_cell, cells = out.split()[-3:]
            print(f"{start:>14} {which:>32} {float(ratio):>15.3f} {float(per_cell):>24.2f}   ({cells} cells)")


def help_seconds() -> float:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "wattgap", "--help"], capture_output=True, check=True)
        runs.append(time.perf_counter() - start)
    return min(runs)


def main(options: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        if not options.skip_agreement:
            agreement(options.repeats, [int(b) for b in options.batches.split(",")], Path(folder))
        if not options.skip_suite:
            overhead(Path(folder))
    print(f"\n3. wattgap --help: {help_seconds():.3f}s (best of 5)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batches", default="1,32", help="comma-separated batch sizes")
    parser.add_argument("--skip-agreement", action="store_true")
    parser.add_argument("--skip-suite", action="store_true")
    parser.add_argument("--reference", nargs=3, metavar=("BATCH", "THREADS", "ITERATIONS"))
    parser.add_argument("--suite-run", nargs=2, metavar=("DB", "PROCESS_START"))
    options = parser.parse_args()
    if options.suite_run:
        print(*suite_overhead(Path(options.suite_run[0]), process_start=options.suite_run[1]))
    elif options.reference:
        batch, threads, iterations = options.reference
        print(reference(int(batch), int(threads), int(iterations)))
    else:
        main(options)
