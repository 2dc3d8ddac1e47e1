"""Shared test helpers: a fast protocol, small sweeps, and the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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
