"""A/A: how often does wattgap cry regression when nothing changed, and how often does its 95% interval
hold what other runs of the same cells find?

For each setting (--repeats 1 as a user runs by default, 3 and 5), PAIRS pairs of runs of the same cells
(two models, batch 1 and 32, the CPU) are made one after another through the real CLI into one database
per setting, the repeated settings first (so that the single-process runs, made last, find this machine's
spread between processes in their database, as a user's would after `make run`). Printed per setting:

- false alarms: the share of pairs for which `wattgap compare A B --by device --fail-above 1` exits 1,
  and how many of its pairs the gate judged (single-process pairs are judged only against a measured
  spread between processes);
- coverage: the share of (run, cell) whose 95% interval of the median holds the median of the pooled
  other runs of the setting (the median of their medians), and the same share for the run's own
  interval (before the widening by this machine's drift between runs, measure/drift.py), with how many
  of the intervals were widened (a run widens once two earlier runs of its kind measured the drift);
- the interval's median width and the wall time per run.

The single-process setting is also run once more in a fresh database (no spread measured there): its
pairs are then not judged at all, which the table says.

    python bench/aa.py [--pairs 20] [--settings 1,3,5] [--max-time 0.5] [--models conv6,resnet18] [--no-fresh]
                       [--keep DIR] [--history DB]

It measures the machine as much as wattgap: run it on a quiet machine (nothing else running), or read its
table as that of a busy one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wattgap(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wattgap", *args], cwd=cwd, capture_output=True, text=True)


def make_runs(folder: Path, db: str, count: int, repeats: int, options: list[str]) -> tuple[list[str], float]:
    """``count`` runs of the same cells in ``db``: their ids, and the mean wall time of one."""
    ids, started = [], time.perf_counter()
    for index in range(count):
        given = ["--repeats", str(repeats)] if repeats > 1 else []
        done = wattgap("run", *options, *given, "--quiet", "--db", db, "--name", f"aa-{repeats}-{index}", cwd=folder)
        if done.returncode != 0:
            raise SystemExit(f"run {index} of setting {repeats}: exit {done.returncode}: {done.stderr.strip()}")
        ids.append(done.stdout.strip().splitlines()[-1].removeprefix("run id: "))
        print(f"  repeats {repeats}: run {index + 1}/{count} {ids[-1]}", file=sys.stderr, flush=True)
    return ids, (time.perf_counter() - started) / count


Interval = tuple[float, float, float, float, float, bool]  # median, low, high, own low, own high, widened


def cells(folder: Path, db: str, run_id: str) -> dict[str, Interval]:
    """The median, its interval, the run's own interval and whether it was widened by the drift between
    runs, of each ok cell of a run, by its label."""
    done = wattgap("export", run_id, "--format", "json", "--db", db, cwd=folder)
    found = {}
    for result in json.loads(done.stdout)["results"]:
        latency = result.get("latency")
        if result["status"] == "ok" and latency:
            cell = result["cell"]
            label = f"{cell['model']}/b{cell['batch_size']}"
            low, high, drift = latency["median_ci_low_s"], latency["median_ci_high_s"], latency.get("drift")
            own = (drift["own_ci_low_s"], drift["own_ci_high_s"]) if drift else (low, high)
            found[label] = (latency["median_s"], low, high, *own, drift is not None)
    return found


def judge(folder: Path, db: str, ids: list[str]) -> tuple[int, int, int, int]:
    """(pairs that cried regression, pairs, cell pairs judged by the gate, cell pairs)."""
    alarms = judged = total = 0
    for a, b in zip(ids[0::2], ids[1::2], strict=True):
        done = wattgap(
            "compare", a, b, "--by", "device", "--fail-above", "1", "--format", "json", "--db", db, cwd=folder
        )
        alarms += done.returncode == 1
        pairs = json.loads(done.stdout)["pairs"]
        judged += sum(pair["judged_by_gate"] for pair in pairs)
        total += len(pairs)
    return alarms, len(ids) // 2, judged, total


def coverage(folder: Path, db: str, ids: list[str]) -> tuple[float, float, float, int, int]:
    """The share of (run, cell) whose interval holds the median of the other runs' medians, the same share
    for the runs' own intervals, the median relative width of the intervals, and how many of how many
    intervals were widened by the drift between runs."""
    found = {run_id: cells(folder, db, run_id) for run_id in ids}
    held = held_own = count = widened = 0
    widths = []
    for run_id, by_cell in found.items():
        for label, (median, low, high, own_low, own_high, drifted) in by_cell.items():
            others = statistics.median(
                [found[other][label][0] for other in ids if other != run_id and label in found[other]]
            )
            held += low <= others <= high
            held_own += own_low <= others <= own_high
            widened += drifted
            count += 1
            widths.append((high - low) / median)
    return held / count, held_own / count, statistics.median(widths), widened, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--settings", default="1,3,5", help="processes per cell (--repeats) to try")
    parser.add_argument("--models", default="conv6,resnet18")
    parser.add_argument("--batch-sizes", default="1,32")
    parser.add_argument("--image-size", default="64")
    parser.add_argument("--max-time", help="cap each cell's window (s); default: the default protocol")
    parser.add_argument("--no-fresh", action="store_true", help="skip the single-process runs in a fresh database")
    parser.add_argument(
        "--history",
        type=Path,
        help="start from a copy of this database (earlier runs of this machine: the drift between runs is "
        "measured from them, as for a user who has run wattgap here before)",
    )
    parser.add_argument(
        "--keep", type=Path, help="copy the bench's databases into this folder (every process's samples)"
    )
    args = parser.parse_args()
    options = ["--model", args.models, "--batch-size", args.batch_sizes, "--image-size", args.image_size]
    options += ["--device", "cpu", *(["--max-time", args.max_time] if args.max_time else [])]
    settings = sorted((int(s) for s in args.settings.split(",")), reverse=True)  # repeated ones first
    rows = []
    with tempfile.TemporaryDirectory(prefix="wattgap-aa-") as name:
        folder = Path(name)
        if args.history is not None:
            shutil.copy2(args.history, folder / "aa.db")
        for repeats in settings:
            ids, per_run_s = make_runs(folder, "aa.db", 2 * args.pairs, repeats, options)
            alarms, pairs, judged, total = judge(folder, "aa.db", ids)
            rows.append(
                (f"repeats {repeats}", pairs, alarms, judged, total, *coverage(folder, "aa.db", ids), per_run_s)
            )
        if 1 in settings and not args.no_fresh:
            ids, per_run_s = make_runs(folder, "fresh.db", 2 * args.pairs, 1, options)
            alarms, pairs, judged, total = judge(folder, "fresh.db", ids)
            rows.append(
                ("repeats 1, fresh db", pairs, alarms, judged, total, *coverage(folder, "fresh.db", ids), per_run_s)
            )
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            for database in folder.glob("*.db*"):  # with its write-ahead log, which readers may have left
                shutil.copy2(database, args.keep / database.name)
    print(
        f"A/A: {args.models} x batch {args.batch_sizes} on the CPU, image {args.image_size}, "
        f"max-time {args.max_time or 'default'}; compare --by device --fail-above 1"
    )
    print(
        f"{'setting':<22}{'pairs':>6}{'false alarms':>14}{'judged':>10}{'coverage':>10}{'own':>6}{'widened':>10}"
        f"{'CI width':>10}{'s/run':>8}"
    )
    for setting, pairs, alarms, judged, total, held, held_own, width, widened, count, per_run_s in rows:
        print(
            f"{setting:<22}{pairs:>6}{alarms / pairs:>14.0%}{f'{judged}/{total}':>10}{held:>10.0%}{held_own:>6.0%}"
            f"{f'{widened}/{count}':>10}{width:>10.1%}{per_run_s:>8.1f}"
        )


if __name__ == "__main__":
    main()
