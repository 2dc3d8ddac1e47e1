"""How long `wattgap report` takes for a 200-cell run, and how large its HTML is.

The run is made of results with known samples (10 models x 4 backends x 5 batch sizes, 200 latency
samples each), stored in a real SQLite file; the report is built, rendered and written three times and
the median is printed, split into building the document (analyses and plots) and writing the files.

    python bench/report.py [--cells 200] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))

from helpers import make_run, result

from wattgap import api
from wattgap.render.document import build
from wattgap.render.files import write
from wattgap.store.sqlite import Store

MODELS = ["resnet18", "resnet50", "resnet101", "vgg16", "conv6"]
BACKENDS = ["torch-eager", "torch-compile", "onnxruntime", "openvino"]
BATCHES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]


def stored_run(db: Path, cells: int) -> str:
    rng = np.random.default_rng(0)
    results = []
    for model in MODELS:
        for backend in BACKENDS:
            for batch in BATCHES:
                if len(results) == cells:
                    break
                per_iteration = 0.002 * batch**0.8 * (1 + MODELS.index(model)) / (1 + BACKENDS.index(backend) / 4)
                counted = result(
                    rng.normal(per_iteration, per_iteration * 0.02, 200), model=model, backend=backend, batch_size=batch
                )
                results.append(counted.model_copy(update={"throughput_median_sps": batch / per_iteration}))
    run = make_run("bench-report", results)
    with Store.open(db) as store:
        store.create_run(run.run_id, run.config, {}, run.cells, {}, "bench")
        for stored in results:
            store.store_result(run.run_id, stored)
        store.set_run_status(run.run_id, "complete")
    return run.run_id


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cells", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = Path(folder) / "wattgap.db"
        run_id = stored_run(db, args.cells)
        run = api.load_run(db, run_id)
        builds, writes, size = [], [], 0
        for _ in range(args.repeats):
            started = time.perf_counter()
            document = build([run])
            built = time.perf_counter()
            written = write(document, Path(folder) / "report.html", Path(folder) / "report.md")
            writes.append(time.perf_counter() - built)
            builds.append(built - started)
            size = written.html_bytes or 0
        print(f"report of a {len(run.results)}-cell run, median of {args.repeats}:")
        print(f"  build (analyses, plots): {statistics.median(builds):.2f} s")
        print(f"  write (HTML, Markdown, {len(document.plots)} SVG plots): {statistics.median(writes):.2f} s")
        print(f"  HTML size: {size / 2**20:.2f} MiB ({len(document.plots)} plots inline)")


if __name__ == "__main__":
    main()
