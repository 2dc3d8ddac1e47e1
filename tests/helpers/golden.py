"""A run of N cells made the same way by any version of wattgap since issue 31 was filed (87e1086): seeded
latencies per cell summarised by the version's own statistics, a fixed machine, stored through the store's
own writes; then what the reading commands answer about it, as JSON through the real CLI, each reduced to
SHA-256s. tests/data/golden-1000.json holds the point estimates' digests 87e1086 gave (before the work on
speed at 10,000 cells) and the whole answers' of the version that wrote the file:
`PYTHONPATH=VERSION/src:tests python -m helpers.golden 1000` prints them."""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

MODELS = ["conv6", "resnet18", "resnet50", "resnet101", "vgg16", "cyclegan"]
BACKENDS = ["torch-eager", "torch-compile", "onnxruntime", "openvino", "torchao", "tf-eager", "tf-xla", "tensorrt"]
PRECISIONS = ["fp32", "bf16", "fp16", "int8"]
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128]
THREADS = [1, 2]
RUN_ID = "golden"
MACHINE: dict[str, Any] = {
    "hostname": "golden",
    "os": "Linux",
    "python": "3.11.7",
    "cpu": {"model": "a golden CPU", "physical_cores": 2, "logical_cores": 2},
    "memory_bytes": 24 * 2**30,
    "torch": {"version": "2.13.0+cpu"},
}


def commands(db: str) -> dict[str, list[str]]:
    return {
        "tradeoff": ["tradeoff", RUN_ID, "--db", db, "--format", "json"],
        "compare": ["compare", RUN_ID, RUN_ID, "--by", "batch_size", "--db", db, "--format", "json"],
        "compare-backend": [
            "compare", RUN_ID, RUN_ID, "--by", "backend", "--baseline", "torch-eager", "--db", db, "--format", "json"
        ],
        "recommend-throughput": ["recommend", RUN_ID, "--db", db, "--format", "json"],
        "recommend-latency": ["recommend", RUN_ID, "--objective", "latency", "--db", db, "--format", "json"],
    }  # fmt: skip


def build(db: Path, count: int) -> None:
    """The run of ``count`` cells: each cell's latencies a seeded log-normal around a latency that grows
    with the model and the batch and falls with the threads, its spread varying from cell to cell."""
    from wattgap.cells import Cell
    from wattgap.config import parse_config
    from wattgap.measure.stats import summarize
    from wattgap.results import CellResult
    from wattgap.store.sqlite import Store

    grid = itertools.islice(itertools.product(MODELS, BACKENDS, PRECISIONS, BATCHES, THREADS), count)
    cells = [
        Cell(model=m, workload="infer", backend=b, device="cpu", precision=p, batch_size=n, threads=t)
        for m, b, p, n, t in grid
    ]
    config = parse_config({"name": RUN_ID, "models": MODELS, "backends": BACKENDS, "precisions": PRECISIONS})
    protocol = config.protocol
    rng = np.random.default_rng(31)
    with Store.open(db) as store:
        store.create_run(RUN_ID, config, _environment(), cells, {}, "golden")
        for cell in cells:
            centre = 1e-3 * (1 + MODELS.index(cell.model)) * cell.batch_size**0.8 / (cell.threads or 1) ** 0.6
            centre *= 1 + 0.2 * BACKENDS.index(cell.backend) - 0.1 * PRECISIONS.index(cell.precision)
            spread = float(rng.uniform(0.01, 0.15))
            latencies = [float(v) for v in centre * rng.lognormal(0.0, spread, size=int(rng.integers(40, 300)))]
            stats = summarize(
                latencies, protocol.confidence, protocol.bootstrap_resamples, protocol.noise_iqr_ratio, config.seed
            )
            result = CellResult(
                cell=cell,
                status="ok",
                latency=stats,
                latencies_s=latencies,
                samples_per_iteration=cell.batch_size,
                throughput_sps=cell.batch_size * len(latencies) / sum(latencies),
                throughput_median_sps=cell.batch_size / stats.median_s,
                iterations=len(latencies),
            )
            store.store_result(RUN_ID, result)
        store.set_run_status(RUN_ID, "complete")


def _environment() -> Any:
    """The fixed machine, as this version's store takes it (a dict before the Environment model)."""
    try:
        from wattgap.machines import Environment
    except ImportError:
        return dict(MACHINE)
    return Environment.model_validate(MACHINE)


# What a point estimate's projection leaves out: the intervals (two earlier changes to how bootstrap draws are
# made moved them within Monte Carlo error: 5d3beae, b96a5f2) and what later versions added (cell fields,
# the scaling section).
INTERVALS = {"high", "low", "ci_low", "ci_high", "geomean_ci", "latency_change_ci"}
LATER = {"scenario", "world_size", "scaling"}


def _rounded(value: Any, leave_out: set[str]) -> Any:
    """``value`` without the keys ``leave_out``, its floats to 8 significant digits (a last-bit difference
    between CPUs' vector maths must not change a digest)."""
    if isinstance(value, dict):
        return {key: _rounded(item, leave_out) for key, item in value.items() if key not in leave_out}
    if isinstance(value, list):
        return [_rounded(item, leave_out) for item in value]
    if isinstance(value, float):
        return float(f"{value:.8g}")
    return value


def digests(db: Path) -> dict[str, dict[str, str]]:
    """Each reading command's JSON answer about the run, reduced to SHA-256s: ``points``, its point
    estimates alone (medians, throughputs, speedups, knees, recommendations); ``whole``, everything."""
    found: dict[str, dict[str, str]] = {"points": {}, "whole": {}}
    for name, args in commands(str(db)).items():
        done = subprocess.run([sys.executable, "-m", "wattgap", *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{name}: exit {done.returncode}: {done.stderr.strip()}")
        answer = json.loads(done.stdout)
        for kind, leave_out in (("points", INTERVALS | LATER), ("whole", set())):
            canonical = json.dumps(_rounded(answer, leave_out), sort_keys=True, separators=(",", ":"))
            found[kind][name] = hashlib.sha256(canonical.encode()).hexdigest()
    return found


def main() -> None:
    count = int(sys.argv[1])
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "golden.db"
        build(db, count)
        print(json.dumps({"cells": count, **digests(db)}, indent=2))


if __name__ == "__main__":
    main()
