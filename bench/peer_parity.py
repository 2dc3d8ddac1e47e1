"""Is every stack wattgap drives here as fast as the same stack configured by hand from its documentation?

For each model and batch (default ResNet18 and ResNet50 at batch 1 and 32, 224x224, on this CPU), every
backend x precision wattgap can run here is measured twice per round: as a wattgap cell (its own run and
subprocess, wattgap's defaults) and as a hand-written loop of the same stack in a fresh process, written
here from that stack's documentation without calling wattgap's backend code (only the zoo's model
definitions). The pairs run interleaved in rounds, each round in a new seeded random order, so drift on a
shared VM falls on both sides alike. Printed per pair: wattgap's and the hand loop's throughput (batch over
median latency, the median over rounds), wattgap/hand with its range over rounds, the best round of each
side against each other (interference on a shared machine only ever slows a side down, so the best round
is the closest either side came to what the stack can do), the wall ratio (samples over the timed loop's
wall time on both sides, wattgap's headline throughput_sps: a skewed latency distribution lowers it below
batch over median), wattgap's throughput against torch-eager fp32
(the cross-stack table), its top-1 agreement with fp32 and the GOP/s it reaches;
then the best configuration of each side.

The hand-written twins, each as its documentation describes the fast path on an x86 CPU:
- torch-eager: channels_last model and input, torch.inference_mode, autocast for bf16.
- torch-compile: the same, torch.compile with Inductor's freezing, under no_grad.
- tf-eager / tf-xla: a Keras model in a tf.function (jit_compile for XLA), mixed_bfloat16 for bf16.
- onnxruntime: a session with intra-op threads; int8 by quantize_static, QDQ, per-channel int8 weights and
  uint8 activations (U8S8, reduce_range without VNNI), as ONNX Runtime recommends on x86.
- openvino: ov.convert_model on the PyTorch model, static shape, latency hint, f32 or bf16 inference
  precision; int8 by NNCF's post-training quantization (nncf.quantize) when NNCF is installed
  (in the openvino and test extras), else ONNX Runtime's QDQ graph as above.
- torchao: PT2E with the X86 Inductor quantizer (torch.export strict), then torch.compile with freezing.

    python bench/peer_parity.py [--models resnet18,resnet50] [--batches 1,32] [--rounds 3] [--pairs a:p,...]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PAIRS = [
    ("torch-eager", "fp32"),
    ("torch-eager", "bf16"),
    ("torch-compile", "fp32"),
    ("torch-compile", "bf16"),
    ("tf-eager", "fp32"),
    ("tf-eager", "bf16"),
    ("tf-xla", "fp32"),
    ("tf-xla", "bf16"),
    ("onnxruntime", "fp32"),
    ("onnxruntime", "int8"),
    ("openvino", "fp32"),
    ("openvino", "bf16"),
    ("openvino", "int8"),
    ("torchao", "int8"),
]
# Both sides: a few warmup iterations, then at least MIN_ITERS iterations and MIN_TIME_S seconds.
WARMUP_ITERS, WARMUP_S, MIN_ITERS, MIN_TIME_S, MAX_TIME_S = 3, 1.0, 5, 3.0, 10.0
CALIBRATION = 32  # int8 calibration inputs, N(0,1), both sides


def window(step: Callable[[], object]) -> tuple[float, float]:
    """Median latency (s) of ``step`` after warmup, over at least MIN_ITERS iterations and MIN_TIME_S, and
    the iterations per second of wall time over the same loop."""
    began = time.perf_counter()
    for _ in range(WARMUP_ITERS):
        step()
    while time.perf_counter() - began < WARMUP_S:
        step()
    latencies: list[float] = []
    began = time.perf_counter()
    while len(latencies) < MIN_ITERS or (time.perf_counter() - began < MIN_TIME_S):
        start = time.perf_counter()
        step()
        latencies.append(time.perf_counter() - start)
        if time.perf_counter() - began > MAX_TIME_S and len(latencies) >= MIN_ITERS:
            break
    return statistics.median(latencies), len(latencies) / (time.perf_counter() - began)


def calibration(batch: int, size: int) -> list[Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    return [rng.standard_normal((min(16, CALIBRATION), 3, size, size), dtype=np.float32) for _ in range(2)]


def export_onnx(net: Any, size: int, folder: Path) -> Path:
    import torch

    path = folder / "model.onnx"
    torch.onnx.export(net, (torch.randn(2, 3, size, size),), str(path), dynamo=True, input_names=["x"],
                      dynamic_shapes=({0: torch.export.Dim("b")},), external_data=False)  # fmt: skip
    return path


def quantize_u8s8(path: Path, folder: Path, size: int) -> Path:
    """ONNX Runtime's x86 recommendation: QDQ, uint8 activations, per-channel int8 weights."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.left = [{"x": b} for b in calibration(16, size)]

        def get_next(self) -> dict | None:  # type: ignore[type-arg]
            return self.left.pop() if self.left else None

    output = folder / "model.u8s8.onnx"
    quantize_static(str(path), str(output), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    reduce_range="avx512_vnni" not in cpu)  # fmt: skip
    return output


def hand_step(backend: str, precision: str, model: str, batch: int, size: int, threads: int) -> Callable[[], object]:
    """The hand-written twin's timed step, prepared in this process."""
    import numpy as np
    import torch

    from wattgap.models import MODELS

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    net = MODELS[model].build_torch(size).eval()
    x = torch.randn(batch, 3, size, size)
    folder = Path(tempfile.mkdtemp())
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    if backend in ("torch-eager", "torch-compile"):
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
        if backend == "torch-compile":
            import torch._inductor.config as inductor

            inductor.freezing = True
            runner = torch.compile(net)
            with torch.no_grad(), autocast:
                runner(x)

            def compiled() -> object:
                with torch.no_grad(), autocast:
                    return runner(x)

            return compiled

        def eager() -> object:
            with torch.inference_mode(), autocast:
                return net(x)

        return eager
    if backend in ("tf-eager", "tf-xla"):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
        import keras
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        if precision == "bf16":
            keras.mixed_precision.set_global_policy("mixed_bfloat16")
        twin = MODELS[model].build_keras(size)
        call = tf.function(lambda t: twin(t, training=False), jit_compile=backend == "tf-xla")
        inputs = tf.constant(x.permute(0, 2, 3, 1).numpy())
        return lambda: call(inputs)
    if backend == "onnxruntime":
        import onnxruntime as ort

        path = export_onnx(net, size, folder)
        if precision == "int8":
            path = quantize_u8s8(path, folder, size)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}
        return lambda: session.run(None, feed)
    if backend == "openvino":
        import openvino as ov

        converted = ov.convert_model(net, example_input=x, input=[batch, 3, size, size])
        if precision == "int8":
            try:
                import nncf

                samples = np.concatenate(calibration(16, size))  # CALIBRATION inputs, in batches of the static shape
                items = [samples[i : i + batch] for i in range(0, len(samples) - batch + 1, batch)] or [x.numpy()]
                data = nncf.Dataset(items)
                converted = nncf.quantize(converted, data, subset_size=len(items))
            except ImportError:
                print("nncf not installed: int8 from ONNX Runtime's QDQ graph", file=sys.stderr)
                converted = ov.Core().read_model(str(quantize_u8s8(export_onnx(net, size, folder), folder, size)))
                converted.reshape([batch, 3, size, size])
        compiled = ov.Core().compile_model(converted, "CPU", {
            "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads,
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
        })  # fmt: skip
        request = compiled.create_infer_request()
        request.set_input_tensor(ov.Tensor(x.numpy()))
        return request.infer
    if backend == "torchao":
        import torch._inductor.config as inductor
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        with torch.no_grad():
            exported = torch.export.export(net, (torch.randn(2, 3, size, size),), strict=True,
                                           dynamic_shapes=({0: torch.export.Dim("b")},)).module()  # fmt: skip
            quantizer = x86.X86InductorQuantizer()
            quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
            prepared = prepare_pt2e(exported, quantizer)
            for samples in calibration(16, size):
                prepared(torch.from_numpy(samples))
            inductor.freezing = True
            runner = torch.compile(convert_pt2e(prepared))
            runner(x)

        def quantized() -> object:
            with torch.no_grad():
                return runner(x)

        return quantized
    raise ValueError(f"no hand-written twin for {backend}")


def hand(pair: tuple[str, str], model: str, batch: int, size: int, threads: int) -> tuple[float, float] | None:
    """Throughput (samples/s) of the hand-written twin in a fresh process, batch over median latency and
    samples over wall time; None when it fails."""
    job = {"backend": pair[0], "precision": pair[1], "model": model, "batch": batch, "size": size, "threads": threads}
    out = subprocess.run([sys.executable, __file__, "--hand", json.dumps(job)], capture_output=True, text=True,
                         timeout=1800)  # fmt: skip
    try:
        median_s, per_wall_s = json.loads(out.stdout.strip().splitlines()[-1])
        return batch / median_s, batch * per_wall_s
    except (ValueError, IndexError, TypeError):
        print(f"    hand-written {pair} failed: {out.stderr[-400:]}")
        return None


def ours(pair: tuple[str, str], model: str, batch: int, size: int, threads: int, db: Path) -> Any:
    """wattgap's cell for the pair, a run of its own; its CellResult."""
    import wattgap

    config = {
        "name": "peer-parity", "models": [model], "precisions": [pair[1]], "devices": ["cpu"],
        "backends": {pair[0]: {"calibration_samples": CALIBRATION} if pair[1] == "int8" else None},
        "batch_sizes": [batch], "threads": [threads], "image_size": size, "cell_timeout_s": 1800,
        "energy": {"idle_s": 0},
        "protocol": {"warmup_min_iters": WARMUP_ITERS, "warmup_min_time_s": WARMUP_S, "min_iters": MIN_ITERS,
                     "min_time_s": MIN_TIME_S, "max_time_s": MAX_TIME_S},
    }  # fmt: skip
    return wattgap.run(config, db=db).results[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,resnet50")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pairs", help="backend:precision,... (default: every pair wattgap runs here)")
    parser.add_argument("--hand", help=argparse.SUPPRESS)  # internal: time one hand-written twin
    args = parser.parse_args()
    if args.hand:
        job = json.loads(args.hand)
        print(json.dumps(window(hand_step(**job))))
        return
    from wattgap.devices import physical_core_count

    threads = physical_core_count()
    pairs = [tuple(p.split(":")) for p in args.pairs.split(",")] if args.pairs else PAIRS
    groups = [(m, int(b)) for m in args.models.split(",") for b in args.batches.split(",")]
    folder = Path(tempfile.mkdtemp())
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    ours_sps: dict[tuple[Any, ...], list[float]] = {}
    hand_sps: dict[tuple[Any, ...], list[float]] = {}
    ratios: dict[tuple[Any, ...], list[float]] = {}
    wall_ratios: dict[tuple[Any, ...], list[float]] = {}
    last: dict[tuple[Any, ...], Any] = {}
    started = time.perf_counter()
    for round_index in range(args.rounds):
        jobs = [(group, pair) for group in groups for pair in pairs]
        random.Random(round_index).shuffle(jobs)
        for (model, batch), pair in jobs:
            key = (model, batch, *pair)
            if random.Random(f"{round_index}{key}").random() < 0.5:  # which side goes first, at random too
                result = ours(pair, model, batch, args.image_size, threads, folder / "bench.db")
                theirs = hand(pair, model, batch, args.image_size, threads)
            else:
                theirs = hand(pair, model, batch, args.image_size, threads)
                result = ours(pair, model, batch, args.image_size, threads, folder / "bench.db")
            print(f"  {' '.join(str(k) for k in key)}: wattgap {result.throughput_median_sps or 0:.1f} sps, "
                  f"hand {theirs[0] if theirs else 0:.1f} sps", flush=True)  # fmt: skip
            if result.status != "ok" or result.throughput_median_sps is None:
                print(f"  round {round_index + 1} {key}: wattgap {result.status} {result.reason[:120]}")
                continue
            last[key] = result
            ours_sps.setdefault(key, []).append(result.throughput_median_sps)
            if theirs is not None:
                hand_sps.setdefault(key, []).append(theirs[0])
                ratios.setdefault(key, []).append(result.throughput_median_sps / theirs[0])
                wall_ratios.setdefault(key, []).append(result.throughput_sps / theirs[1])
        print(f"round {round_index + 1} done, {time.perf_counter() - started:.0f} s", flush=True)
        report(groups, pairs, ours_sps, hand_sps, ratios, wall_ratios, last, args, threads, round_index + 1)


def report(
    groups: list[tuple[str, int]],
    pairs: list[tuple[str, ...]],
    ours_sps: dict[tuple[Any, ...], list[float]],
    hand_sps: dict[tuple[Any, ...], list[float]],
    ratios: dict[tuple[Any, ...], list[float]],
    wall_ratios: dict[tuple[Any, ...], list[float]],
    last: dict[tuple[Any, ...], Any],
    args: argparse.Namespace,
    threads: int,
    rounds: int,
) -> None:
    """The table so far (printed after every round, so that a long run interrupted still says something)."""
    below, below_best = [], []
    for model, batch in groups:
        base = statistics.median(ours_sps.get((model, batch, "torch-eager", "fp32"), [float("nan")]))
        print(f"\n{model}, batch {batch}, {args.image_size}x{args.image_size}, {threads} threads, {rounds} round(s)")
        print(f"  {'backend':14s} {'prec':5s} {'wattgap sps':>11s} {'hand sps':>9s} {'wattgap/hand':>12s} "
              f"{'range':>13s} {'best/best':>9s} {'wall ratio':>10s} {'vs eager fp32':>13s} {'top-1 agree':>11s} "
              f"{'GOP/s':>7s}")  # fmt: skip
        for pair in pairs:
            key = (model, batch, *pair)
            if key not in ours_sps:
                print(f"  {pair[0]:14s} {pair[1]:5s} {'(no result)':>11s}")
                continue
            mine = statistics.median(ours_sps[key])
            theirs = statistics.median(hand_sps[key]) if key in hand_sps else float("nan")
            ratio = statistics.median(ratios[key]) if key in ratios else float("nan")
            spread = f"[{min(ratios[key]):.2f}, {max(ratios[key]):.2f}]" if key in ratios else ""
            best = max(ours_sps[key]) / max(hand_sps[key]) if key in hand_sps else float("nan")
            wall = statistics.median(wall_ratios[key]) if key in wall_ratios else float("nan")
            result = last[key]
            versus = f"{mine / base:.2f}x" if base == base else "-"  # nan: torch-eager fp32 not among --pairs
            agreement = result.agreement
            agree = f"{agreement.top1:.0%}" if agreement and agreement.top1 is not None else "ref"
            gops = (result.flops_per_sample or 0) * mine / 1e9
            print(f"  {pair[0]:14s} {pair[1]:5s} {mine:11.1f} {theirs:9.1f} {ratio:12.3f} {spread:>13s} "
                  f"{best:9.3f} {wall:10.3f} {versus:>13s} {agree:>11s} {gops:7.0f}")  # fmt: skip
            if not ratio >= 0.95:
                below.append((key, ratio))
            if not best >= 0.95:
                below_best.append((key, best))
        mine_best = max((p for p in pairs if (model, batch, *p) in ours_sps),
                        key=lambda p: statistics.median(ours_sps[(model, batch, *p)]), default=None)  # fmt: skip
        hand_best = max((p for p in pairs if (model, batch, *p) in hand_sps),
                        key=lambda p: statistics.median(hand_sps[(model, batch, *p)]), default=None)  # fmt: skip
        if mine_best and hand_best:
            best_mine = statistics.median(ours_sps[(model, batch, *mine_best)])
            best_hand = statistics.median(hand_sps[(model, batch, *hand_best)])
            print(f"  best wattgap: {' '.join(mine_best)} {best_mine:.1f} sps; "
                  f"best hand-written: {' '.join(hand_best)} {best_hand:.1f} sps")  # fmt: skip
        int8, fp32 = (model, batch, "onnxruntime", "int8"), (model, batch, "onnxruntime", "fp32")
        if int8 in ours_sps and fp32 in ours_sps:
            print(f"  onnxruntime int8 / fp32 (wattgap): "
                  f"{statistics.median(ours_sps[int8]) / statistics.median(ours_sps[fp32]):.2f}x")  # fmt: skip
    for label, pairs_below in (("median over rounds", below), ("best round against best round", below_best)):
        print(f"\npairs below 0.95 of their hand-written twin, {label}: {len(pairs_below)}")
        for key, ratio in pairs_below:
            print(f"  {' '.join(str(k) for k in key)}: {ratio:.3f}")
    print(flush=True)


if __name__ == "__main__":
    main()
