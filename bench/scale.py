"""How the commands that read a database grow with the number of cells in one run.

One real run of the quick protocol (conv6 at batch 1 and 8 on the CPU, a few hundred samples each) is
cloned into a run of N cells (models x backends x precisions x batch sizes x threads, each a copy of one
of the real results with its cell changed), stored through the store's own writes in a fresh SQLite
file; then each command runs through the real CLI in its own process and the bench prints its wall time
and the process's peak RSS (from wait4), for each N side by side.

    python bench/scale.py [--cells 100,1000,10000] [--commands show,compare,tradeoff,...] [--window-s 1]

Read the growth, not the seconds: on the 2-core VM other work beside it moves the figures.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wattgap import api
from wattgap.cells import Cell
from wattgap.config import parse_config
from wattgap.results import Run
from wattgap.store.sqlite import Store

MODELS = ["conv6", "resnet18", "resnet50", "resnet101", "vgg16", "cyclegan"]
BACKENDS = ["torch-eager", "torch-compile", "onnxruntime", "openvino", "torchao", "tf-eager", "tf-xla", "tensorrt"]
PRECISIONS = ["fp32", "bf16", "fp16", "int8", "tf32"]
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
THREADS = [1, 2, 4, 8]


def commands(run_id: str, db: str, out: Path) -> dict[str, list[str]]:
    return {
        "show": ["show", run_id, "--db", db],
        "compare": ["compare", run_id, run_id, "--by", "batch_size", "--db", db],
        "tradeoff": ["tradeoff", run_id, "--db", db],
        "recommend": ["recommend", run_id, "--db", db],
        "efficiency": ["efficiency", run_id, "--db", db],
        "resume": ["run", "--resume", run_id, "--db", db, "--quiet"],
        "export": ["export", run_id, "--format", "json", "--db", db, "--output", str(out / f"{run_id}.json")],
        "list": ["list", "runs", "--db", db],
        "report": ["report", run_id, "--html", str(out / "r.html"), "--md", str(out / "r.md"), "--db", db],
    }


def real_run(folder: Path, window_s: float) -> Run:
    """One short real run on this machine: its results are what every clone copies, its environment
    the cloned run's (so that `run --resume` finds it was made here)."""
    config = {
        "models": ["conv6"],
        "batch_sizes": [1, 8],
        "threads": [1],
        "image_size": 32,
        "num_classes": 10,
        "cpu_roofline": False,
        "energy": {"idle_s": 0.5},
        "protocol": {"min_time_s": window_s, "max_time_s": window_s * 1.5},
    }
    return api.run(config, db=folder / "source.db")


def cloned_run(db: Path, source: Run, count: int) -> str:
    """A complete run of ``count`` cells, each a copy of a real result with its cell changed."""
    sources = [r for r in source.results if r.status == "ok"]
    grid = itertools.product(MODELS, BACKENDS, PRECISIONS, BATCHES, THREADS)
    cells = [
        Cell(model=m, workload="infer", backend=b, device="cpu", precision=p, batch_size=n, threads=t)
        for m, b, p, n, t in itertools.islice(grid, count)
    ]
    if len(cells) < count:
        raise SystemExit(f"--cells: at most {len(cells)} distinct cells in this grid")
    config = parse_config({"name": f"scale-{count}", "models": MODELS, "backends": BACKENDS})
    run_id = f"scale-{count}"
    with Store.open(db) as store:
        store.create_run(run_id, config, source.environment, cells, {}, "bench")
        for index, cell in enumerate(cells):
            store.store_result(run_id, sources[index % len(sources)].model_copy(update={"cell": cell}))
        store.set_run_status(run_id, "complete")
    return run_id


def timed(args: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MiB and exit status of one CLI command in its own process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "wattgap", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - started, usage.ru_maxrss / 1024, process.returncode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="100,1000,10000")
    parser.add_argument(
        "--window-s", type=float, default=1.0, help="each real cell's measured window: 1 s gives a few hundred samples"
    )
    parser.add_argument("--commands", default="show,compare,tradeoff,recommend,efficiency,resume,export,list,report")
    given = parser.parse_args()
    sizes = [int(n) for n in given.cells.split(",")]
    wanted = given.commands.split(",")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        source = real_run(folder, given.window_s)
        counts = [len(r.latencies_s) for r in source.results if r.status == "ok"]
        print(f"the real run's cells hold {', '.join(map(str, counts))} samples")
        figures: dict[str, dict[int, tuple[float, float, int]]] = {command: {} for command in wanted}
        for size in sizes:
            db = folder / f"scale-{size}.db"
            started = time.perf_counter()
            run_id = cloned_run(db, source, size)
            print(f"{size} cells stored in {time.perf_counter() - started:.1f} s ({db.stat().st_size / 2**20:.0f} MiB)")
            for command in wanted:
                figures[command][size] = timed(commands(run_id, str(db), folder)[command])
                seconds, rss, code = figures[command][size]
                print(f"  {command:10s} {seconds:7.2f} s {rss:7.0f} MiB exit {code}", flush=True)
    print("\n| command | " + " | ".join(f"{n} cells" for n in sizes) + " | growth |")
    print("|---|" + "---|" * (len(sizes) + 1))
    for command in wanted:
        cells = " | ".join(f"{figures[command][n][0]:.2f} s, {figures[command][n][1]:.0f} MiB" for n in sizes)
        print(f"| `{command}` | {cells} | {growth(sizes, [figures[command][n][0] for n in sizes])} |")


def growth(sizes: list[int], seconds: list[float]) -> str:
    """The order of growth between the two largest sizes: time ~ N^k, k from their ratio (the start-up
    of a process, some 0.5 s, makes k read low where the command itself is small)."""
    if len(sizes) < 2 or min(seconds[-2:]) <= 0:
        return "-"
    return f"N^{math.log(seconds[-1] / seconds[-2]) / math.log(sizes[-1] / sizes[-2]):.2f}"


if __name__ == "__main__":
    main()
