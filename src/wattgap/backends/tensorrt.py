"""TensorRT through ONNX Runtime's TensorRT execution provider (onnxruntime-gpu with the TensorRT
libraries, e.g. ``pip install 'wattgap[tensorrt]'``). Chosen over the TensorRT Python API because the
model, its export and its int8 QDQ calibration are the onnxruntime backend's, so both stacks run the very
same graph; TensorRT builds its engine from that graph (fp16 by flag, int8 from the QDQ scales, which
carry the entropy calibration TensorRT's own calibrator would compute), with one optimisation profile
spanning the sweep's batch sizes. The engine is built on the first run: timed as ``build_s``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wattgap.backends.base import Capabilities, Needs
from wattgap.backends.onnx_export import FRAMEWORKS, SYMMETRIC_INT8, Int8Scheme, export_reason
from wattgap.backends.onnx_runtime import OnnxRuntime, _providers
from wattgap.backends.settings import QdqSettings

if TYPE_CHECKING:
    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.devices import Hardware
    from wattgap.models.inputs import InputSpec


class TensorRT(OnnxRuntime):
    name = "tensorrt"
    description = "TensorRT engines built by ONNX Runtime's TensorRT provider from the exported graph"
    capabilities = Capabilities(
        device_kinds=frozenset({"cuda"}),
        precisions=frozenset({"fp32", "fp16", "int8"}),
        modes=frozenset({"infer"}),
        frameworks=FRAMEWORKS,
    )

    def int8_scheme(self, own: QdqSettings) -> Int8Scheme:
        return SYMMETRIC_INT8

    def settings_reason(self, cell: Cell, config: SweepConfig) -> str:
        own = config.settings("backends", self.name, self.settings_model)
        if cell.precision == "int8" and own.int8_activation_type == "uint8":
            return "int8_activation_type uint8: tensorrt's int8 takes int8"
        return super().settings_reason(cell, config)

    def unavailable_reason(self) -> str:
        missing = super().unavailable_reason()
        if missing:
            return missing
        if "TensorrtExecutionProvider" not in _providers():
            return "this onnxruntime has no TensorrtExecutionProvider (pip install 'wattgap[tensorrt]')"
        return ""

    def unsupported_reason(self, cell: Cell, hardware: Hardware, needs: Needs) -> str:
        if cell.device.partition(":")[0] != "cuda":
            return "TensorRT runs on NVIDIA GPUs only"
        reason = self.unavailable_reason()
        if reason:
            return reason
        caps = self.capabilities
        if cell.precision not in caps.precisions or needs.mode not in caps.modes:
            return f"tensorrt runs {'/'.join(sorted(caps.precisions))} inference only"
        return export_reason(cell.model)

    def providers(self, cell: Cell, config: SweepConfig, inputs: list[InputSpec]) -> list[Any]:
        device_id = int(cell.device.partition(":")[2] or 0)
        batches = [*config.batch_sizes_for(cell.workload), cell.batch_size]  # a batch search's probes too

        def profile(batch: int) -> str:
            return ",".join(f"{spec.name}:{batch}x{'x'.join(map(str, spec.shape))}" for spec in inputs)

        options = {
            "device_id": device_id,
            "trt_fp16_enable": cell.precision in ("fp16", "int8"),  # int8 engines fall back to fp16, not fp32
            "trt_int8_enable": cell.precision == "int8",
            "trt_engine_cache_enable": False,
            "trt_profile_min_shapes": profile(min(batches)),
            "trt_profile_opt_shapes": profile(cell.batch_size),
            "trt_profile_max_shapes": profile(max(batches)),
        }
        return [("TensorrtExecutionProvider", options), ("CUDAExecutionProvider", {"device_id": device_id})]
