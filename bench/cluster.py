"""What running on Ray costs: the same sweep through the local executor and through the Ray executor on a
local Ray cluster, side by side in one run.

The cluster is one head node on this machine (loopback only) with one CPU, so that, as locally, one cell
runs at a time: the difference is Ray's (task submission, a Ray worker that starts the cell's process,
events streamed back). Printed: each side's wall time, its cells' own time (warmup and measured windows),
the seconds per cell outside them, and the ratio of the two walls; then the same sweep on a head with as
many CPUs as the machine, cells side by side (faster, and each cell then shares the machine: its noise
check says so).

    python bench/cluster.py [--cells 8] [--max-time 0.5]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers.cluster import local_cluster  # a real cluster, as the tests start it


def sweep(cells: int, max_time_s: float) -> dict[str, Any]:
    return {
        "name": "cluster-overhead",
        "models": ["conv6"],
        "devices": ["cpu"],
        "batch_sizes": list(range(1, cells + 1)),
        "threads": [1],
        "image_size": 32,
        "protocol": {"max_time_s": max_time_s, "min_time_s": 0.0, "min_iters": 30},
        "energy": {"idle_s": 0},
        "cpu_roofline": False,
    }


def timed(config: dict[str, Any], db: Path, executor: Any) -> tuple[float, float, int]:
    """Wall time of the run, the sum of its cells' warmup and measured windows, and its cell count."""
    import wattgap.api

    begin = time.perf_counter()
    run = wattgap.api.run(config, db=db, executor=executor)
    wall = time.perf_counter() - begin
    assert all(r.status == "ok" for r in run.results), [r.reason for r in run.results]
    windows = sum((r.phases.warmup_s or 0) + (r.phases.measure_s or 0) for r in run.results)
    return wall, windows, len(run.results)


def line(name: str, wall: float, windows: float, cells: int) -> str:
    return (
        f"{name:<28} wall {wall:7.2f} s  windows {windows:6.2f} s  outside them {(wall - windows) / cells:5.2f} s/cell"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=8)
    parser.add_argument("--max-time", type=float, default=0.5)
    args = parser.parse_args()
    from wattgap.runner.executors.cluster import RayExecutor

    config = sweep(args.cells, args.max_time)
    with tempfile.TemporaryDirectory(prefix="wg-bench-") as folder:
        work = Path(folder)
        local = timed(config, work / "local.db", None)
        print(line("local executor", *local))
        with local_cluster(work, head_cpus=1, second_cpus=0) as cluster:
            one = timed(config, work / "ray1.db", RayExecutor(cluster.address))
        print(line("ray, 1 CPU (one at a time)", *one))
        print(
            f"ratio ray/local wall: {one[0] / local[0]:.2f}x; per cell outside the windows: "
            f"{(one[0] - one[1]) / one[2] - (local[0] - local[1]) / local[2]:+.2f} s"
        )
        cpus = os.cpu_count() or 1
        with local_cluster(work, head_cpus=cpus, second_cpus=0) as cluster:
            wide = timed(config, work / "rayn.db", RayExecutor(cluster.address))
        print(line(f"ray, {cpus} CPUs (side by side)", *wide))
        print(f"ratio ray {cpus} CPUs/local wall: {wide[0] / local[0]:.2f}x")


if __name__ == "__main__":
    main()
