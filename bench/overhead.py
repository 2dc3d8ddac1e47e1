"""Does wattgap measure what a careful hand-written loop measures, and what does isolation cost?

ResNet18 inference on CPU at batch 1 and 32 (224x224), timed three ways in one run, side by side:
wattgap's cell (subprocess, adaptive protocol), a tight perf_counter_ns loop, and
torch.utils.benchmark.Timer.blocked_autorange. Prints the ratios of medians (wattgap must be within 3%
of the tight loop), wattgap's per-cell overhead, and how long `wattgap --help` takes.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import wattgap
from wattgap.models import MODELS

BATCHES = (1, 32)
IMAGE = 224
TIGHT_SECONDS = 10.0


def tight_loop(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Median latency of a plain loop, after the same warmup as wattgap's protocol."""
    with torch.inference_mode():
        start = time.perf_counter()
        while time.perf_counter() - start < 1.0:
            model(x)
        samples = []
        start = time.perf_counter()
        while time.perf_counter() - start < TIGHT_SECONDS or len(samples) < 30:
            begin = time.perf_counter_ns()
            model(x)
            samples.append((time.perf_counter_ns() - begin) * 1e-9)
    return statistics.median(samples)


def blocked_autorange(model: torch.nn.Module, x: torch.Tensor, threads: int) -> float:
    from torch.utils.benchmark import Timer

    with torch.inference_mode():
        timer = Timer("model(x)", globals={"model": model, "x": x}, num_threads=threads)
        return float(timer.blocked_autorange(min_run_time=TIGHT_SECONDS).median)


def help_seconds() -> float:
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "wattgap", "--help"], capture_output=True, check=True)
        runs.append(time.perf_counter() - start)
    return min(runs)


def main() -> None:
    threads = torch.get_num_threads()
    torch.set_num_interop_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        run = wattgap.run(
            {
                "name": "bench-overhead",
                "models": ["resnet18"],
                "devices": ["cpu"],
                "threads": [threads],
                "batch_sizes": list(BATCHES),
                "image_size": IMAGE,
            },
            db=Path(folder) / "bench.db",
        )
    model = MODELS["resnet18"].build_torch(IMAGE).eval()
    print(f"ResNet18 inference, CPU, {IMAGE}x{IMAGE}, {threads} threads, torch {torch.__version__}")
    header = f"{'batch':>5} {'wattgap':>10} {'tight':>10} {'autorange':>10} {'wg/tight':>9} {'wg/auto':>8}"
    print(header + f" {'CI±':>6} {'n':>5} {'overhead':>9}")
    for result in run.results:
        assert result.latency is not None, result.reason
        x = torch.randn(result.cell.batch_size, 3, IMAGE, IMAGE)
        tight = tight_loop(model, x)
        auto = blocked_autorange(model, x, threads)
        ours = result.latency.median_s
        phases = result.phases
        overhead = (phases.total_s or 0) - (phases.warmup_s or 0) - (phases.measure_s or 0)
        print(
            f"{result.cell.batch_size:>5} {ours * 1e3:>8.2f}ms {tight * 1e3:>8.2f}ms {auto * 1e3:>8.2f}ms "
            f"{ours / tight:>9.3f} {ours / auto:>8.3f} {result.latency.median_ci_rel_halfwidth:>6.1%} "
            f"{result.latency.n:>5} {overhead:>8.2f}s"
        )
        print(
            f"      overhead breakdown: startup {phases.startup_s:.2f}s, load {phases.load_s:.2f}s, "
            f"prepare (incl. FLOP count) {phases.prepare_s:.2f}s; stop: {result.stop_reason}"
        )
    print(f"wattgap --help: {help_seconds():.3f}s (best of 5)")


if __name__ == "__main__":
    main()
