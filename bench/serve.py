"""What does serving through MLPerf's LoadGen measure, against wattgap's own timed loop and a hand-written one?

1. Offline against infer. ResNet18 (224x224) on ONNX Runtime at one batch, the machine's cores as threads:
   LoadGen's offline samples per second (one request in flight, then the backend's lanes) beside the
   `infer` cell's throughput (samples over its measured window), in one run, alternating; they should
   agree within 5% at one request in flight.
2. The highest valid server QPS for ResNet18 at batch 1 (find_max_qps, under MLPerf's 15 ms bound and
   a looser 100 ms: --bounds), with its 99th percentile and every probe.
3. LoadGen's Python binding: the seconds it adds per query, single-stream over a system under test that
   completes each query in its issue callback (LoadGen's QPS without its overhead against with it), and
   what wattgap's system under test (a queue and a lane thread) adds on top with a predict that does
   nothing.
4. OpenVINO int8 ResNet50 offline under the THROUGHPUT hint with its optimal number of infer requests,
   through wattgap (LoadGen), beside a hand-written AsyncInferQueue loop of the same compiled model
   settings over the same number of samples.

    python bench/serve.py [--batch 8] [--duration 10] [--skip-openvino] [--bounds 0.015,0.1]
"""

from __future__ import annotations

import argparse
import array
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import wattgap.api
from wattgap.backends.base import cores
from wattgap.blocks import Serving


def sweep(model: str, backend: str, precision: str, batch: int, workloads: Any, image: int = 224) -> dict[str, Any]:
    return {
        "name": "bench-serve",
        "models": [model],
        "backends": [backend],
        "devices": ["cpu"],
        "precisions": [precision],
        "batch_sizes": [batch],
        "threads": [cores()],
        "image_size": image,
        "workloads": workloads,
        "energy": {"idle_s": 0},
    }


def offline_against_infer(db: Path, batch: int, duration: float, rounds: int) -> None:
    print(f"\n1. ResNet18 onnxruntime fp32 batch {batch}, {cores()} threads: LoadGen offline vs infer")
    short = {"min_duration_s": duration, "min_query_count": 1, "samples": 256}  # MLPerf's 24,576 samples: minutes
    rows: dict[str, list[float]] = {"infer": [], "offline, 1 in flight": [], "offline, backend's lanes": []}
    lanes = ""
    for _ in range(rounds):
        for label, workloads in (
            ("infer", ["infer"]),
            ("offline, 1 in flight", {"serve": short | {"scenarios": ["offline"], "in_flight": 1}}),
            ("offline, backend's lanes", {"serve": short | {"scenarios": ["offline"]}}),
        ):
            config = sweep("resnet18", "onnxruntime", "fp32", batch, workloads)
            if label == "infer":
                config["protocol"] = {"min_time_s": duration, "max_time_s": duration}
            (result,) = wattgap.api.run(config, db=db).results
            assert result.status == "ok", result.reason
            rows[label].append(result.throughput_sps or float("nan"))
            if isinstance(result.block, Serving) and label.endswith("lanes"):
                lanes = result.block.lanes
    base = statistics.median(rows["infer"])
    for label, values in rows.items():
        middle = statistics.median(values)
        spread = f"[{min(values):.1f}, {max(values):.1f}]"
        print(f"   {label:28s} {middle:8.1f} samples/s {spread:18s} x{middle / base:.3f} of infer")
    print(f"   lanes: {lanes}")


def highest_server_qps(db: Path, bound: float, duration: float) -> None:
    print(f"\n2. ResNet18 onnxruntime fp32 batch 1: the highest server QPS LoadGen reports VALID (p99 <= {bound:g} s)")
    serve = {"scenarios": ["server"], "find_max_qps": True, "min_duration_s": duration, "latency_bound_s": bound}
    serve |= {"min_query_count": 500}  # early stopping's p99 asks some 460 queries with none over the bound
    (result,) = wattgap.api.run(sweep("resnet18", "onnxruntime", "fp32", 1, {"serve": serve}), db=db).results
    block = result.block
    assert isinstance(block, Serving), result.reason
    for probe in block.probes:
        p99 = probe["p99_latency_s"]
        print(f"   target {probe['target_qps']:8.2f} QPS: {probe['validity']:7s} p99 {p99 * 1e3:7.2f} ms")
    print(
        f"   -> {block.target_qps:.2f} QPS ({block.validity}, {block.lanes}), p99 "
        f"{block.percentiles_s.get('99.00', float('nan')) * 1e3:.2f} ms, {block.energy_per_query_j or 0:.4f} J/query"
    )


def binding_overhead(queries: int) -> None:
    import mlperf_loadgen as lg
    import numpy as np

    from wattgap.workloads import loadgen

    print(f"\n3. LoadGen's Python binding, single-stream, {queries} queries of a system that does nothing")
    folder = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    request = loadgen.Request(
        scenario="single-stream",
        mlperf_model="resnet50",
        min_duration_s=0.1,
        min_query_count=queries,
        target_qps=1.0,
        latency_bound_s=None,
        samples_per_query=None,
        samples=64,
        seeds={},
        batch=1,
        batch_s=1e-5,
    )
    settings, _ = loadgen.mlperf_settings(lg, request, folder)
    settings.max_query_count = queries
    response = array.array("i", [0])
    address, _ = response.buffer_info()

    def complete(query: list[Any]) -> None:
        lg.QuerySamplesComplete([lg.QuerySampleResponse(sample.id, address, 4) for sample in query])

    handle = lg.ConstructSUT(complete, lambda: None)
    library = lg.ConstructQSL(64, 64, lambda _: None, lambda _: None)
    log = lg.LogSettings()
    log.log_output.outdir = str(folder)
    log.log_output.copy_summary_to_stdout = False
    log.enable_trace = False
    lg.StartTestWithLogSettings(handle, library, settings, log)
    lg.DestroyQSL(library)
    lg.DestroySUT(handle)
    entries = {key: value for key, value, _ in loadgen.read_detail((folder / "mlperf_log_detail.txt").read_text())}
    bare, bare_without = entries["result_qps_with_loadgen_overhead"], entries["result_qps_without_loadgen_overhead"]
    print(f"   completed in the issue callback: {bare:.0f} QPS ({1e6 / bare:.1f} µs a query; {bare_without:.0f} QPS")
    print("   without LoadGen's own overhead, as it reports it)")
    samples = {"x": np.zeros((64, 4), np.float32)}
    out = folder / "system"
    out.mkdir()
    test = loadgen.run_test(lg, settings, [lambda feed: feed["x"]], samples, 1, 0.0, out)
    ours = test.log["result_qps_with_loadgen_overhead"]
    print(f"   through wattgap's system under test (queue, lane thread, top-1 response): {ours:.0f} QPS")
    print(f"   ({1e6 / ours:.1f} µs a query: {1e6 / ours - 1e6 / bare:.1f} µs more than the bare callback)")
    print(
        f"   median query latency there, issue to completion: {statistics.median(test.query_latencies_s) * 1e6:.1f} µs"
    )


def openvino_against_async_queue(db: Path, batch: int, duration: float) -> None:
    import numpy as np
    import openvino as ov

    print(f"\n4. ResNet50 OpenVINO int8 (NNCF), batch {batch}, THROUGHPUT hint: LoadGen offline vs AsyncInferQueue")
    serve = {"scenarios": ["offline"], "min_duration_s": duration, "min_query_count": 1, "samples": 256}
    config = sweep("resnet50", "openvino", "int8", batch, {"serve": serve})
    (result,) = wattgap.api.run(config, db=db).results
    block = result.block
    assert isinstance(block, Serving), result.reason
    print(f"   wattgap serve offline: {block.samples_per_s:.1f} samples/s ({block.lanes}, {block.validity})")
    # the hand loop: the same model compiled as OpenVINO documents for throughput, its optimal requests busy
    from wattgap.backends import onnx_export
    from wattgap.backends.openvino import OpenVinoSettings, _nncf_int8
    from wattgap.cells import Cell
    from wattgap.config import parse_config

    cell = Cell(
        model="resnet50",
        workload="infer",
        backend="openvino",
        device="cpu",
        precision="fp32",
        batch_size=batch,
        threads=cores(),
    )
    parsed = parse_config(sweep("resnet50", "openvino", "fp32", batch, ["infer"]), "bench")
    own = OpenVinoSettings()
    graph = onnx_export.prepare_graph(cell, parsed, own, lambda _: None, onnx_export.host_scheme(own))
    core = ov.Core()
    model = _nncf_int8(core.read_model(str(graph.path)), parsed, graph.inputs, 300)
    model.reshape({spec.name: [batch, *spec.shape] for spec in graph.inputs})
    compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_NUM_THREADS": cores()})
    jobs = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    queue = ov.AsyncInferQueue(compiled, jobs)
    feed = {graph.inputs[0].name: np.random.default_rng(0).standard_normal((batch, *graph.inputs[0].shape), np.float32)}
    for _ in range(jobs * 2):
        queue.start_async(feed)
    queue.wait_all()
    batches = max(1, round(block.samples / batch))
    started = time.perf_counter()
    for _ in range(batches):
        queue.start_async(feed)
    queue.wait_all()
    hand = batches * batch / (time.perf_counter() - started)
    ratio = (block.samples_per_s or 0) / hand
    print(f"   hand-written AsyncInferQueue ({jobs} requests): {hand:.1f} samples/s; wattgap / hand {ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10.0, help="LoadGen's minimum duration per test, s")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--bounds", default="0.015,0.1", help="the server's p99 bounds to search under, s")
    parser.add_argument("--queries", type=int, default=20_000)
    parser.add_argument("--skip-openvino", action="store_true")
    args = parser.parse_args()
    db = Path(tempfile.mkdtemp(prefix="bench-serve-")) / "serve.db"
    binding_overhead(args.queries)
    offline_against_infer(db, args.batch, args.duration, args.rounds)
    for bound in (float(value) for value in args.bounds.split(",")):
        highest_server_qps(db, bound, args.duration)
    if not args.skip_openvino:
        openvino_against_async_queue(db, args.batch, args.duration)


if __name__ == "__main__":
    main()
