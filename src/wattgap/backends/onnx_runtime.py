"""ONNX Runtime: the zoo's PyTorch model (same seed, same weights) exported to ONNX by torch.onnx's
export (the torch.export-based exporter), optionally quantized to int8, run by an execution provider
that fits the device. Export, calibration and session building are timed phases of their own.

- fp32 on CPU (CPUExecutionProvider) and CUDA (CUDAExecutionProvider, with onnxruntime-gpu).
- fp16 on CUDA: the graph converted to float16 with float32 inputs and outputs.
- int8 on CPU: static post-training quantization in the QDQ format, per-channel int8 weights, calibrated
  on ``calibration_samples`` inputs (N(0,1), the DEEP-GAP protocol, or the dataset's when one is set) by
  ``calibration_method``; activations uint8 on x86 (ONNX Runtime's U8S8 kernels), int8 elsewhere, or as
  ``int8_activation_type`` says (onnx_export.int8_scheme).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wattgap.backends import onnx_export
from wattgap.backends.base import Backend, Capabilities, Lanes, Needs, Phase, Prepared, cores, missing_packages
from wattgap.backends.settings import QdqSettings
from wattgap.devices import synchronize
from wattgap.models.inputs import synthesize

if TYPE_CHECKING:
    import numpy as np

    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.devices import Hardware
    from wattgap.models.inputs import InputSpec

PACKAGES = ("onnxruntime", "onnx", "onnxscript")


class OnnxRuntime(Backend):
    name = "onnxruntime"
    description = "ONNX Runtime on the PyTorch model exported to ONNX"
    capabilities = Capabilities(
        device_kinds=frozenset({"cpu", "cuda"}),
        precisions=frozenset({"fp32", "fp16", "int8"}),
        modes=frozenset({"infer"}),
        frameworks=onnx_export.FRAMEWORKS,
    )
    settings_model: type[QdqSettings] = QdqSettings

    def unavailable_reason(self) -> str:
        return missing_packages(PACKAGES, "onnx")

    def unsupported_reason(self, cell: Cell, hardware: Hardware, needs: Needs) -> str:
        reason = super().unsupported_reason(cell, hardware, needs)
        if reason:
            return reason
        kind = cell.device.partition(":")[0]
        if onnx_export.export_reason(cell.model):
            return onnx_export.export_reason(cell.model)
        if cell.precision == "fp16" and kind != "cuda":
            return "onnxruntime's CPU provider has few float16 kernels: fp16 runs on CUDA"
        if cell.precision == "int8" and kind == "cuda":
            return "int8 on NVIDIA GPUs is the tensorrt backend's (CUDA's provider runs QDQ graphs unfused)"
        if kind == "cuda" and "CUDAExecutionProvider" not in _providers():
            return "this onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"
        return ""

    def providers(self, cell: Cell, config: SweepConfig, inputs: list[InputSpec]) -> list[Any]:
        kind, _, index = cell.device.partition(":")
        if kind == "cuda":
            return [("CUDAExecutionProvider", {"device_id": int(index or 0)})]
        return ["CPUExecutionProvider"]

    def int8_scheme(self, own: QdqSettings) -> onnx_export.Int8Scheme:
        return onnx_export.host_scheme(own)

    def prepare(self, cell: Cell, config: SweepConfig, phase: Phase, needs: Needs) -> Prepared:
        import numpy as np
        import onnxruntime as ort

        own = config.settings("backends", self.name, self.settings_model)
        graph = onnx_export.prepare_graph(cell, config, own, phase, self.int8_scheme(own))
        settings, phases, inputs = graph.settings, graph.phase_s, graph.inputs
        clock = time.perf_counter
        started = clock()
        options = ort.SessionOptions()
        options.intra_op_num_threads = cell.threads or 0
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(graph.path), options, providers=self.providers(cell, config, inputs))
        batch = synthesize(inputs, cell.batch_size, config.seed)
        session.run(None, batch)  # the first run builds kernels (and TensorRT engines)
        phases["build_s"] = clock() - started
        settings.update(providers=session.get_providers(), ort_threads=cell.threads)
        step = _step(session, cell, config, batch)

        def predict(given: dict[str, np.ndarray]) -> np.ndarray:
            return np.asarray(session.run(None, given)[0], dtype=np.float32)

        def lanes(count: int | None) -> Lanes:
            """Concurrent runs of the one session (its Run is thread-safe and releases the GIL); by default
            as many as fill the machine's cores at the cell's intra-op threads each."""
            usable = cores()
            chosen = count or max(1, usable // (cell.threads or usable))
            how = f"{chosen} concurrent runs of one ONNX Runtime session, {cell.threads or 'all'} intra-op threads each"
            return Lanes([predict] * chosen, {"lanes": how})

        return Prepared(
            step=step,
            samples_per_step=cell.batch_size,
            sync=lambda: synchronize(cell.device),
            count_step=onnx_export.count_graph(graph, batch),
            parameters=graph.parameters,
            input_shape=tuple(inputs[0].shape),
            inputs=inputs,
            settings=settings,
            predict=predict,
            lanes=lanes,
            host_timer=True,  # Run() returns once its provider's stream is synchronised
            phase_s=phases,
        )


def _providers() -> list[str]:
    """The execution providers this onnxruntime build has (imports onnxruntime: the planner, not --help)."""
    import onnxruntime as ort

    return list(ort.get_available_providers())


def _step(session: Any, cell: Cell, config: SweepConfig, batch: dict[str, np.ndarray]) -> Callable[[], Any]:
    """One inference. On CUDA the inputs are bound on the device once (or copied every time when the cell
    is end-to-end) and the outputs stay there."""
    kind, _, index = cell.device.partition(":")
    if kind != "cuda":
        return lambda: session.run(None, batch)
    import onnxruntime as ort

    binding = session.io_binding()
    if config.end_to_end:

        def bind() -> None:
            for name, array in batch.items():
                binding.bind_cpu_input(name, array)

    else:
        on_device = {name: ort.OrtValue.ortvalue_from_numpy(a, "cuda", int(index or 0)) for name, a in batch.items()}
        for name, value in on_device.items():
            binding.bind_ortvalue_input(name, value)

        def bind() -> None:
            return None

    for output in session.get_outputs():
        binding.bind_output(output.name, "cuda", int(index or 0))

    def step() -> None:
        bind()
        session.run_with_iobinding(binding)

    return step
