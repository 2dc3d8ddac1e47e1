"""Data-parallel scaling on this machine: train-ddp for Conv6 and ResNet18 at world sizes 1 and 2 (gloo,
one thread per rank, each rank pinned to a core of its own), as a user would run it, then the scaling
table wattgap shows: the group's throughput and the scaling efficiency throughput(2) / (2 x throughput(1))
with their 95% intervals, and the share of rank 0's measured time its gradient all-reduce took.

    python bench/scaling.py [--batch 16] [--image-size 32] [--max-time 5]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--max-time", type=float, default=5.0)
    args = parser.parse_args()
    import wattgap.api
    from wattgap.analysis.scaling import scaling

    config = {
        "name": "scaling",
        "models": ["conv6", "resnet18"],
        "workloads": {"train-ddp": {"world_sizes": [1, 2]}},
        "devices": ["cpu"],
        "threads": [1],
        "batch_sizes": [args.batch],
        "image_size": args.image_size,
        "protocol": {"max_time_s": args.max_time},
        "energy": {"idle_s": 0},
        "cpu_roofline": False,
    }
    with tempfile.TemporaryDirectory(prefix="wg-scaling-") as folder:
        run = wattgap.api.run(config, db=Path(folder) / "scaling.db")
    for result in run.results:
        if result.status != "ok":
            print(f"{result.cell.label}: {result.status}: {result.reason}")
    for label, points in scaling(run.results).items():
        for point in points:
            low, high = point.throughput_ci_sps
            line = f"{label:<44} w{point.world_size}  {point.throughput_sps:8.1f} sps [{low:.1f}, {high:.1f}]"
            eff = point.efficiency
            if eff is not None:
                line += f"  efficiency {eff.speedup:.2f} [{eff.ci_low:.2f}, {eff.ci_high:.2f}]"
            print(f"{line}  all-reduce {point.allreduce_share:.0%} of rank 0's time")


if __name__ == "__main__":
    main()
