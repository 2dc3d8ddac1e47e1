"""Every stack wattgap drives on this CPU, side by side, against hand-written loops.

ResNet18 and ResNet50 inference (224x224) at batch 1 and 32, in every backend and precision wattgap can
run here, in one wattgap run; printed as latency and throughput ratios against torch-eager fp32, with the
guardrail's top-1 agreement and each cell's FLOP utilisation against this machine's measured GEMM peak
(torch.mm, 2048x2048, fp32 and bf16, at the cells' thread count).

Then the check: for each model and batch, the three fastest of wattgap's configurations are driven again
by plain hand-written loops, each in a fresh process, with each library's defaults (PyTorch eager under
inference_mode, torch.compile, an ONNX Runtime session with default options, a Keras model in a
tf.function); wattgap's best median latency must be no slower than the fastest of them:
ratio = fastest hand-written / wattgap best >= 0.98. A shared VM drifts by tens of percent over minutes,
so the check runs in ``--rounds`` rounds, each one wattgap's best cell (a fresh wattgap run) next to the
three hand-written loops; the verdict is the median of the rounds' ratios.

    python bench/cross_stack.py [--models resnet18,resnet50] [--batches 1,32] [--image-size 224] [--rounds 3]
"""

from __future__ import annotations

import argparse
import atexit
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import wattgap

BACKENDS = ["torch-eager", "torch-compile", "tf-eager", "tf-xla", "onnxruntime"]
PRECISIONS = ["fp32", "bf16", "int8"]


def gemm_peak(threads: int, dtype: str) -> float:
    """Best FLOP/s of torch.mm on square matrices of 1024, 2048 and 4096, a few seconds each. A measured
    rate, not the datasheet's: a library with better kernels (ONNX Runtime's MLAS) can exceed it."""
    import torch

    torch.set_num_threads(threads)
    kind = getattr(torch, dtype)
    rates = []
    for n in (1024, 2048, 4096):
        a, b = torch.randn(n, n, dtype=kind), torch.randn(n, n, dtype=kind)
        best, deadline = float("inf"), time.perf_counter() + 2
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - start)
        rates.append(2 * n**3 / best)
    return max(rates)


def hand_loop(backend: str, precision: str, model: str, batch: int, size: int, threads: int) -> float:
    """Median latency (s) of a plain loop over one stack, written as a user would, in this process."""
    import numpy as np
    import torch

    from wattgap.models import MODELS

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = MODELS[model].build_torch(size).eval()
    x = torch.randn(batch, 3, size, size)
    if backend in ("torch-eager", "torch-compile"):
        runner = torch.compile(net) if backend == "torch-compile" else net
        dtype = torch.bfloat16 if precision == "bf16" else None

        def step() -> object:
            with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
                return runner(x)

    elif backend == "onnxruntime":
        import onnxruntime as ort

        folder = Path(tempfile.mkdtemp())
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        path = folder / "m.onnx"
        torch.onnx.export(net, (torch.randn(2, 3, size, size),), str(path), dynamo=True, input_names=["x"],
                          dynamic_shapes=({0: torch.export.Dim("b")},))  # fmt: skip
        if precision == "int8":
            from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

            class Reader(CalibrationDataReader):
                def __init__(self) -> None:
                    self.left = [{"x": np.random.randn(16, 3, size, size).astype(np.float32)} for _ in range(4)]

                def get_next(self) -> dict | None:  # type: ignore[type-arg]
                    return self.left.pop() if self.left else None

            quantize_static(str(path), str(folder / "q.onnx"), Reader(), quant_format=QuantFormat.QDQ, per_channel=True)
            path = folder / "q.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}

        def step() -> object:
            return session.run(None, feed)

    else:
        import os

        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import keras
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        if precision == "bf16":
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        twin = MODELS[model].build_keras(size)
        call = tf.function(lambda t: twin(t, training=False), jit_compile=backend == "tf-xla")
        inputs = tf.constant(x.permute(0, 2, 3, 1).numpy())

        def step() -> object:
            return call(inputs)

    for _ in range(5):
        step()
    latencies, deadline = [], time.perf_counter() + 3
    while len(latencies) < 10 or time.perf_counter() < deadline:
        start = time.perf_counter()
        step()
        latencies.append(time.perf_counter() - start)
    return statistics.median(latencies)


def hand(backend: str, precision: str, model: str, batch: int, size: int, threads: int) -> float | None:
    """``hand_loop`` in a fresh process; None (with the error printed) when it fails."""
    job = {"backend": backend, "precision": precision, "model": model, "batch": batch, "size": size,
           "threads": threads}  # fmt: skip
    out = subprocess.run([sys.executable, __file__, "--hand", json.dumps(job)], capture_output=True, text=True,
                         timeout=1800)  # fmt: skip
    try:
        return float(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        print(f"    hand-written {backend} {precision} failed: {out.stderr[-300:]}")
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,resnet50")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--hand", help=argparse.SUPPRESS)  # internal: run one hand-written loop
    args = parser.parse_args()
    if args.hand:
        job = json.loads(args.hand)
        print(json.dumps(hand_loop(**job)))
        return
    from wattgap.devices import physical_core_count

    threads = physical_core_count()
    models, batches = args.models.split(","), [int(b) for b in args.batches.split(",")]
    config = {
        "name": "cross-stack", "models": models, "backends": BACKENDS, "devices": ["cpu"],
        "precisions": PRECISIONS, "batch_sizes": batches, "threads": [threads], "image_size": args.image_size,
        "cell_timeout_s": 1800, "energy": {"idle_s": 0},
        "protocol": {"warmup_min_iters": 5, "min_iters": 10, "min_time_s": 2.0, "max_time_s": 10.0},
    }  # fmt: skip
    started = time.perf_counter()
    folder = tempfile.mkdtemp()
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    run = wattgap.run(config, db=Path(folder) / "bench.db")
    print(f"wattgap run: {len(run.results)} cells in {time.perf_counter() - started:.0f} s")
    peaks = {"fp32": gemm_peak(threads, "float32"), "bf16": gemm_peak(threads, "bfloat16")}
    print(f"measured GEMM peak ({threads} threads): fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, "
          f"bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s")  # fmt: skip
    ok = [r for r in run.results if r.status == "ok" and r.latency]
    for r in run.results:
        if r.status != "ok":
            print(f"  {r.cell.label}: {r.status} ({r.reason[:90]})")
    verdicts = []
    for model in models:
        for batch in batches:
            cells = sorted((r for r in ok if r.cell.model == model and r.cell.batch_size == batch),
                           key=lambda r: r.latency.median_s)  # type: ignore[union-attr]  # fmt: skip
            base = next((r for r in cells if (r.cell.backend, r.cell.precision) == ("torch-eager", "fp32")), None)
            print(f"\n{model} batch {batch} ({args.image_size}x{args.image_size}, {threads} threads)")
            print(f"  {'backend':14s} {'prec':5s} {'median':>10s} {'vs eager fp32':>14s} {'throughput':>12s} "
                  f"{'MFU':>6s} {'top-1 agree':>11s} {'compile/export s':>16s}")  # fmt: skip
            for r in cells:
                assert r.latency is not None
                ratio = base.latency.median_s / r.latency.median_s if base and base.latency else float("nan")
                peak = peaks.get(r.cell.precision, peaks["fp32"])
                mfu = (r.achieved_flops_per_s or 0) / peak
                agree = f"{r.agreement.top1:.0%}" if r.agreement and r.agreement.top1 is not None else "ref"
                prep = (r.phases.compile_s or 0) + (r.phases.export_s or 0) + (r.phases.calibration_s or 0)
                print(f"  {r.cell.backend:14s} {r.cell.precision:5s} {r.latency.median_s * 1e3:8.2f} ms "
                      f"{ratio:13.2f}x {r.throughput_sps or 0:9.1f} sps {mfu:6.1%} {agree:>11s} "
                      f"{prep:16.1f}")  # fmt: skip
            best = cells[0]
            print(f"  check, {args.rounds} rounds: wattgap's best ({best.cell.backend} {best.cell.precision}) "
                  "against hand-written loops of the three fastest configurations")  # fmt: skip
            ratios = []
            for round_index in range(args.rounds):
                single = {**config, "models": [model], "batch_sizes": [batch], "backends": [best.cell.backend],
                          "precisions": [best.cell.precision]}  # fmt: skip
                again = wattgap.run(single, db=Path(folder) / "bench.db").results[0]
                if again.status != "ok" or again.latency is None:
                    print(f"    round {round_index + 1}: wattgap cell {again.status} {again.reason[:80]}")
                    continue
                hands = [(hand(r.cell.backend, r.cell.precision, model, batch, args.image_size, threads),
                          r.cell.backend, r.cell.precision) for r in cells[:3]]  # fmt: skip
                timed = [h for h in hands if h[0] is not None]
                fastest = min(timed)  # type: ignore[type-var]
                ratio = fastest[0] / again.latency.median_s  # type: ignore[operator]
                ratios.append(ratio)
                listed = ", ".join(f"{b} {p} {t * 1e3:.2f} ms" for t, b, p in timed)  # type: ignore[operator]
                print(f"    round {round_index + 1}: wattgap {again.latency.median_s * 1e3:.2f} ms; "
                      f"hand-written {listed}; ratio {ratio:.3f}")  # fmt: skip
            if ratios:
                verdict = statistics.median(ratios)
                verdicts.append(verdict)
                print(f"  median ratio fastest hand-written / wattgap best: {verdict:.3f} [{min(ratios):.3f}, "
                      f"{max(ratios):.3f}] ({'ok' if verdict >= 0.98 else 'BELOW 0.98'})")  # fmt: skip
    if verdicts:
        print(f"\nmedian ratios fastest hand-written / wattgap best: {', '.join(f'{v:.3f}' for v in verdicts)}")


if __name__ == "__main__":
    main()
