"""The PyTorch model as ONNX, shared by every ONNX-based backend (onnxruntime, tensorrt, openvino): the
export with a dynamic batch axis, int8 calibration data and static QDQ quantization in the int8 scheme
the runtime is fastest with, and the float16 conversion. ``prepare_graph`` runs them for a cell, timing
each as a phase, and returns the graph's path in the cell's scratch folder."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattgap.fs import scratch_folder
from wattgap.measure.flops import count_step
from wattgap.models.build import count_parameters, reference_model
from wattgap.models.inputs import synthesize
from wattgap.models.sources import kind_of, onnx_declared, onnx_parameters, path_of

if TYPE_CHECKING:
    import numpy as np

    from wattgap.backends.base import Phase
    from wattgap.backends.settings import QdqSettings
    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.measure.flops import StepCount
    from wattgap.models.inputs import InputSpec

OUTPUT = "output"  # of an exported graph; a user's file names its own
X86 = ("x86_64", "amd64", "i386", "i686")


FRAMEWORKS = frozenset({"torch", "onnx"})  # an ONNX file as it is; a PyTorch model through the exporter


def export_reason(model: str) -> str:
    """Why ``model`` cannot reach an ONNX runtime: torch.onnx's exporter (torch.export) takes no TorchScript."""
    if kind_of(model) == "torchscript":
        return "torch.onnx's exporter (torch.export) does not take TorchScript; export the model to ONNX yourself"
    return ""


@dataclass(frozen=True)
class Int8Scheme:
    """How the graph is quantized: activation type, symmetric activations (zero points of 0) and 7-bit
    weights (``reduce_range``), with the reason for the choice."""

    activation: str  # "uint8" or "int8"; weights are always int8, per channel
    symmetric: bool
    reduce_range: bool
    why: str


def int8_scheme(chosen: str, flags: tuple[str, ...] | list[str], machine: str) -> Int8Scheme:
    """ONNX Runtime's documented choice for its CPU provider: on x86 with AVX2 or AVX-512, uint8
    activations and int8 weights (U8S8, its VPMADDUBSW / VPDPBUSD kernels), with weights reduced to 7 bits
    where the CPU lacks VNNI (VPMADDUBSW can saturate, VNNI's VPDPBUSD cannot); elsewhere int8 activations
    (S8S8, its QDQ default). ``chosen`` (int8_activation_type) overrides the activation type."""
    x86 = machine.lower() in X86 and any(flag in flags for flag in ("avx2", "avx512f"))
    vnni = "avx512_vnni" in flags
    activation = chosen if chosen != "auto" else ("uint8" if x86 else "int8")
    reduce_range = activation == "uint8" and x86 and not vnni
    if chosen != "auto":
        why = "int8_activation_type"
    elif x86:
        why = f"auto: U8S8 is ONNX Runtime's fast path on x86 ({'VNNI' if vnni else 'AVX2/AVX-512 without VNNI'})"
    else:
        why = "auto: S8S8, ONNX Runtime's default outside x86"
    return Int8Scheme(activation, symmetric=False, reduce_range=reduce_range, why=why)


SYMMETRIC_INT8 = Int8Scheme("int8", symmetric=True, reduce_range=False, why="TensorRT takes symmetric int8 only")


def host_scheme(own: QdqSettings) -> Int8Scheme:
    """The scheme for a CPU runtime on this machine (reads /proc/cpuinfo), with the backend's settings."""
    from wattgap.devices import cpu_info

    return int8_scheme(own.int8_activation_type, cpu_info()["flags"], platform.machine())


def export_onnx(model: Any, inputs: list[InputSpec], path: Path, seed: int) -> Path:
    """The model as ONNX with a dynamic batch axis, its inputs named as ``inputs`` says. A model the
    exporter cannot handle raises its message: the cell fails with it and the sweep goes on."""
    import torch

    example = tuple(torch.from_numpy(a) for a in synthesize(inputs, 2, seed).values())  # 2: 1 specialises
    batch = torch.export.Dim("batch")
    torch.onnx.export(
        model,
        example,
        str(path),
        dynamo=True,
        input_names=[spec.name for spec in inputs],
        output_names=[OUTPUT],
        dynamic_shapes=tuple({0: batch} for _ in example),
        verbose=False,
        external_data=False,
    )
    return path


def opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def calibration_batches(config: SweepConfig, inputs: list[InputSpec], count: int) -> list[dict[str, np.ndarray]]:
    """``count`` samples of every input (a backend's ``calibration_samples``) in batches of up to 16:
    synthetic by default (as models/inputs.py makes them, seeded), else, for an image model, the dataset's
    training images as the model sees them."""
    image = len(inputs) == 1 and len(inputs[0].shape) == 3
    if config.dataset is not None and image:
        from wattgap.datasets import load, model_input, standardise

        shape = inputs[0].shape
        data = load(config, shape[-1])
        samples = {inputs[0].name: standardise(model_input(data.x_train, shape[0], shape[-1]))[0][:count]}
    else:
        samples = synthesize(inputs, count, config.seed + 2)
    total = len(next(iter(samples.values())))  # a dataset may hold fewer than calibration_samples
    return [{name: a[first : first + 16] for name, a in samples.items()} for first in range(0, total, 16)]


def quantize_int8(
    path: Path, folder: Path, batches: list[dict[str, np.ndarray]], method: str, scheme: Int8Scheme
) -> Path:
    """Static QDQ quantization, per-channel int8 weights, activations as ``scheme`` says."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items: Iterator[dict[str, np.ndarray]] = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    prepared = folder / "model.pre.onnx"
    quant_pre_process(str(path), str(prepared))
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[method]
    output = folder / "model.int8.onnx"
    quantize_static(
        str(prepared),
        str(output),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8 if scheme.activation == "uint8" else QuantType.QInt8,
        weight_type=QuantType.QInt8,
        reduce_range=scheme.reduce_range,
        calibrate_method=method,
        extra_options={"ActivationSymmetric": scheme.symmetric, "WeightSymmetric": True},
    )
    return output


def convert_fp16(path: Path, folder: Path) -> Path:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    output = folder / "model.fp16.onnx"
    onnx.save(converted, str(output))
    return output


@dataclass
class Graph:
    """A cell's model as an ONNX file, with what the runtimes need beside it."""

    path: Path
    model: Any  # the fp32 PyTorch reference it was exported from (FLOPs are counted on it); None for a file
    inputs: list[InputSpec]
    parameters: int
    settings: dict[str, Any] = field(default_factory=dict)
    phase_s: dict[str, float] = field(default_factory=dict)


def prepare_graph(cell: Cell, config: SweepConfig, own: QdqSettings, phase: Phase, scheme: Int8Scheme) -> Graph:
    """The cell's model as ONNX: a user's ONNX file as it is, else the seeded reference model built
    ("load") and exported ("prepare", export_s); then converted to the cell's precision (calibration_s
    for int8). fp16 is a float16 graph with float32 inputs and outputs; int8 is QDQ, calibrated on
    the backend's (``own``) ``calibration_samples`` inputs in ``scheme``."""
    import torch

    phase("load")
    if cell.threads is not None:
        torch.set_num_threads(cell.threads)
    options = config.model_options(cell.model)
    folder = scratch_folder("wattgap-onnx-")
    clock = time.perf_counter
    if kind_of(cell.model) == "onnx":
        path = path_of(cell.model)
        inputs = options.inputs_for(onnx_declared(path), cell.model)
        graph = Graph(path, None, inputs, onnx_parameters(path))
        graph.settings.update(onnx_source="the user's file, as it is", opset=opset(path))
        phase("prepare")
    else:
        model, inputs, _ = reference_model(cell.model, options, config.seed)
        phase("prepare")
        started = clock()
        path = export_onnx(model, inputs, folder / "model.onnx", config.seed)
        graph = Graph(path, model, inputs, count_parameters(model))
        graph.phase_s["export_s"] = clock() - started
        graph.settings.update(onnx_exporter="torch.onnx.export(dynamo=True)", opset=opset(path))
    if cell.precision == "int8":
        started = clock()
        batches = calibration_batches(config, graph.inputs, own.calibration_samples)
        graph.path = quantize_int8(path, folder, batches, own.calibration_method, scheme)
        graph.phase_s["calibration_s"] = clock() - started
        symmetric = ", symmetric" if scheme.symmetric else ""
        graph.settings["precision_applied"] = (
            f"int8 QDQ static, {scheme.activation} activations{symmetric}, per-channel int8 weights"
            f"{' (7-bit, reduce_range)' if scheme.reduce_range else ''}, {own.calibration_method} calibration "
            f"on {own.calibration_samples} {'dataset' if config.dataset else 'synthetic'} samples"
        )
        graph.settings["int8_activation_type"] = f"{scheme.activation} ({scheme.why})"
    elif cell.precision == "fp16":
        graph.path = convert_fp16(path, folder)
        graph.settings["precision_applied"] = "float16 graph, float32 inputs and outputs"
    else:
        graph.settings["precision_applied"] = "fp32"
    return graph


def count_graph(graph: Graph, example: dict[str, np.ndarray]) -> Callable[[], StepCount] | None:
    """FLOPs of one step, counted on the PyTorch model the graph was exported from (the same graph); None
    for a user's ONNX file, whose FLOPs wattgap does not count (stated as unknown, never guessed)."""
    if graph.model is None:
        return None
    import torch

    model = graph.model
    tensors = tuple(torch.from_numpy(a) for a in example.values())
    return lambda: count_step(lambda: model(*tensors), model)
