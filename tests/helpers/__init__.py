"""Shared test helpers: a fast protocol, small sweeps, the CLI in a subprocess, results of known samples."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from wattgap.cells import Cell
from wattgap.config import parse_config
from wattgap.measure.stats import summarize
from wattgap.results import CellResult, Run

# A short protocol: correctness tests, not performance measurements.
FAST_PROTOCOL: dict[str, Any] = {
    "warmup_min_iters": 2,
    "warmup_min_time_s": 0.0,
    "min_iters": 5,
    "min_time_s": 0.0,
    "max_time_s": 0.5,
    "bootstrap_resamples": 200,
}


def fast_config(**fields: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "models": ["conv6"],
        "devices": ["cpu"],
        "batch_sizes": [2],
        "threads": [1],
        "image_size": 32,
        "num_classes": 10,
        "cell_timeout_s": 120,
        "protocol": dict(FAST_PROTOCOL),
        "energy": {"idle_s": 0.2},
        "cpu_roofline": False,
    }
    config.update(fields)
    return config


def wattgap(*args: str, cwd: Path, timeout: float = 300, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """The real CLI in a real subprocess, its output piped: 120 columns unless ``env`` sets COLUMNS (the
    caller's own COLUMNS is not passed on, so that tests do not depend on the terminal they run in)."""
    if "env" not in kwargs:
        kwargs["env"] = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    return subprocess.run(
        [sys.executable, "-m", "wattgap", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        **kwargs,
    )


def start_slow_sweep(folder: Path, *options: str) -> tuple[subprocess.Popen[bytes], str]:
    """A sweep of six slow cells started in the background (its output piped; ``options`` added to its
    command line), returned once two results are stored: the sweep's process and its run id."""
    import sqlite3
    import time

    import yaml

    config = fast_config(models=["helpers.usermodels:slow"], batch_sizes=[1, 2, 3, 4, 5, 6])
    config["protocol"] = {**FAST_PROTOCOL, "min_iters": 5, "max_time_s": 0.4}
    (folder / "sweep.yaml").write_text(yaml.safe_dump(config))
    process = subprocess.Popen(
        [sys.executable, "-m", "wattgap", "run", "--config", "sweep.yaml", "--quiet", *options],
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    db, deadline, stored = folder / "wattgap.db", time.monotonic() + 120, 0
    while stored < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        if db.exists():
            try:
                stored = sqlite3.connect(db).execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.OperationalError:
                stored = 0
    assert stored >= 2, "the sweep stored nothing in time"
    (run_id,) = sqlite3.connect(db).execute("SELECT run_id FROM runs").fetchone()
    return process, run_id


def result(samples: np.ndarray, resamples: int = 1000, **fields: object) -> CellResult:
    """A finished cell with the given latency samples (ResNet18 inference on 2 CPU threads, batch 8,
    unless ``fields`` say otherwise), for analyses of known results; ``resamples``: its summary's
    bootstrap (the analyses draw their own)."""
    base: dict[str, object] = {
        "model": "resnet18",
        "workload": "infer",
        "backend": "torch-eager",
        "device": "cpu",
        "precision": "fp32",
        "batch_size": 8,
        "threads": 2,
    }
    cell = Cell(**(base | fields))  # type: ignore[arg-type]
    latency = summarize(samples.tolist(), resamples=resamples)
    return CellResult(cell=cell, status="ok", latency=latency, latencies_s=samples.tolist())


def repeated_result(groups: list[np.ndarray], resamples: int = 200, **fields: object) -> CellResult:
    """A finished cell measured in one process per group of latency samples (``protocol.repeats``)."""
    from wattgap.measure.stats import summarize_repeats
    from wattgap.results import Repeat

    single = result(np.concatenate(groups), resamples, **fields)
    repeats = [
        Repeat(repeat=index, status="ok", samples=len(group), median_s=float(np.median(group)))
        for index, group in enumerate(groups)
    ]
    latency = summarize_repeats([group.tolist() for group in groups], resamples=resamples)
    return single.model_copy(update={"repeats": repeats, "latency": latency})


def make_run(run_id: str, results: list[CellResult], **config: object) -> Run:
    return Run(
        run_id=run_id,
        name="t",
        created_at="2026-11-22T00:00:00+00:00",
        status="complete",
        config=parse_config({"models": ["resnet18"], **config}),
        environment={},
        cells=[r.cell for r in results],
        results=results,
    )
