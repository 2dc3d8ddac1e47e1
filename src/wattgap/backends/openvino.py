"""OpenVINO's CPU plugin on the graph the onnxruntime backend runs: the zoo's PyTorch model exported to
ONNX (same seed, same weights), read by OpenVINO, reshaped to the cell's static batch and compiled.

- fp32: inference precision hint f32, set explicitly (the plugin's default is bf16 on CPUs with AMX,
  which would make "fp32" cells silently bf16).
- bf16: inference precision hint bf16, on CPUs with AVX-512 BF16 or AMX only (elsewhere the plugin
  would quietly run f32).
- int8 (its setting ``int8``): by default NNCF's post-training quantization of the fp32 graph, OpenVINO's
  documented route, on the same ``calibration_samples`` inputs as every int8 path (NNCF's own range
  estimators and bias correction); or ``qdq``, the graph wattgap calibrates for ONNX Runtime (same
  calibration, same activation scheme), whose quantize/dequantize pairs OpenVINO turns into int8 kernels,
  so that an int8 difference between the two runtimes is a runtime difference. At batch 1 NNCF's graph
  was 10-25% faster here (README: Benchmarks), hence the default.

The performance hint (its setting ``hint``, latency by default: one stream, what a loop of synchronous
requests is fastest with), the stream count and the threads (the cell's) are recorded. Reading and
compiling the model are phases of their own (read_s, compile_s). A sweep sets them as
``backends: {openvino: {hint: throughput, int8: qdq}}``."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from wattgap.backends import onnx_export
from wattgap.backends.base import Backend, Capabilities, Lanes, Needs, Phase, Predict, Prepared, cores, missing_packages
from wattgap.backends.settings import QdqSettings
from wattgap.models.inputs import synthesize

if TYPE_CHECKING:
    import numpy as np

    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.devices import Hardware
    from wattgap.models.inputs import InputSpec

PACKAGES = ("openvino", "onnxruntime", "onnx", "onnxscript")  # onnxruntime: the QDQ int8 calibration
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


class OpenVinoSettings(QdqSettings):
    """openvino's settings (calibration_method and int8_activation_type apply to its int8: qdq)."""

    hint: Literal["latency", "throughput"] = "latency"  # OpenVINO's performance hint
    int8: Literal["nncf", "qdq"] = "nncf"  # NNCF's quantization, or the QDQ graph onnxruntime runs


class OpenVino(Backend):
    name = "openvino"
    description = "OpenVINO's CPU plugin on the PyTorch model exported to ONNX"
    capabilities = Capabilities(
        device_kinds=frozenset({"cpu"}),
        precisions=frozenset({"fp32", "bf16", "int8"}),
        modes=frozenset({"infer"}),
        frameworks=onnx_export.FRAMEWORKS,
    )
    settings_model: type[OpenVinoSettings] = OpenVinoSettings

    def unavailable_reason(self) -> str:
        return missing_packages(PACKAGES, "openvino")

    def unsupported_reason(self, cell: Cell, hardware: Hardware, needs: Needs) -> str:
        reason = super().unsupported_reason(cell, hardware, needs)
        if not reason and cell.precision == "bf16" and not any(f in hardware.cpu_flags for f in BF16_FLAGS):
            return "OpenVINO's bf16 needs a CPU with AVX-512 BF16 or AMX; this one has neither"
        return reason or onnx_export.export_reason(cell.model)

    def settings_reason(self, cell: Cell, config: SweepConfig) -> str:
        own = config.settings("backends", self.name, self.settings_model)
        if cell.precision == "int8" and own.int8 == "nncf":
            if own.int8_activation_type != "auto":
                return "int8_activation_type applies to openvino's int8: qdq; NNCF chooses its own activation types"
            missing = missing_packages(("nncf",), "openvino")
            if missing:
                return f"{missing}, or set backends: {{openvino: {{int8: qdq}}}}"
        return super().settings_reason(cell, config)

    def prepare(self, cell: Cell, config: SweepConfig, phase: Phase, needs: Needs) -> Prepared:
        import numpy as np
        import openvino as ov

        own = config.settings("backends", self.name, self.settings_model)
        nncf = cell.precision == "int8" and own.int8 == "nncf"
        exported = cell.model_copy(update={"precision": "fp32"}) if nncf else cell  # NNCF quantizes fp32
        graph = onnx_export.prepare_graph(exported, config, own, phase, onnx_export.host_scheme(own))
        clock = time.perf_counter
        started = clock()
        core = ov.Core()
        model = core.read_model(str(graph.path))
        graph.phase_s["read_s"] = clock() - started
        if nncf:
            started = clock()
            model = _nncf_int8(model, config, graph.inputs, own.calibration_samples)
            graph.phase_s["calibration_s"] = clock() - started
            graph.settings["precision_applied"] = (
                f"int8 NNCF post-training quantization (performance preset), on {own.calibration_samples} "
                f"{'dataset' if config.dataset else 'synthetic'} samples"
            )
        graph.settings["openvino_int8"] = own.int8 if cell.precision == "int8" else None
        model.reshape({spec.name: [cell.batch_size, *spec.shape] for spec in graph.inputs})  # static: fastest
        started = clock()
        properties: dict[str, Any] = {
            "PERFORMANCE_HINT": own.hint.upper(),
            "INFERENCE_PRECISION_HINT": "bf16" if cell.precision == "bf16" else "f32",
        }
        if cell.threads is not None:
            properties["INFERENCE_NUM_THREADS"] = cell.threads
        compiled = core.compile_model(model, "CPU", properties)
        request = compiled.create_infer_request()
        batch = synthesize(graph.inputs, cell.batch_size, config.seed)
        for name, array in batch.items():  # shared, not copied: ``step`` below keeps the arrays alive
            request.set_tensor(name, ov.Tensor(array, shared_memory=True))
        request.infer()  # the first inference allocates its buffers
        graph.phase_s["compile_s"] = clock() - started
        if cell.precision == "bf16":
            graph.settings["precision_applied"] = "bf16 inference precision hint, fp32 graph"
        graph.settings.update(
            openvino_version=ov.get_version(),
            performance_hint=str(compiled.get_property("PERFORMANCE_HINT")),
            inference_precision=compiled.get_property("INFERENCE_PRECISION_HINT").to_string(),
            num_streams=int(compiled.get_property("NUM_STREAMS")),
            inference_threads=int(compiled.get_property("INFERENCE_NUM_THREADS")),
            static_batch=cell.batch_size,
        )

        def predict(given: dict[str, np.ndarray]) -> np.ndarray:
            return np.array(request.infer(_contiguous(given))[0], dtype=np.float32)

        def step(held: dict[str, np.ndarray] = batch) -> Any:  # the request reads ``batch``'s memory: keep it
            return request.infer()

        def lanes(count: int | None) -> Lanes:
            """Infer requests of the model compiled again under the THROUGHPUT hint (OpenVINO's way to serve
            many requests: several streams), as many as it says are optimal unless ``count`` says. As
            onnxruntime's lanes fill the cores at the cell's threads each, so may OpenVINO's streams: its
            thread count is the cell's times as many as fit the cores (OpenVINO's count is the total)."""
            started = clock()
            serving_properties = properties | {"PERFORMANCE_HINT": "THROUGHPUT"}
            if cell.threads is not None:
                serving_properties["INFERENCE_NUM_THREADS"] = cell.threads * max(1, cores() // cell.threads)
            serving = core.compile_model(model, "CPU", serving_properties)
            optimal = int(serving.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            requests = [serving.create_infer_request() for _ in range(count or optimal)]

            def lane(one: Any) -> Predict:
                return lambda given: np.array(one.infer(_contiguous(given))[0], dtype=np.float32)

            return Lanes(
                [lane(one) for one in requests],
                {
                    "lanes": f"{len(requests)} OpenVINO infer requests, THROUGHPUT hint",
                    "performance_hint": str(serving.get_property("PERFORMANCE_HINT")),
                    "num_streams": int(serving.get_property("NUM_STREAMS")),
                    "lanes_inference_threads": int(serving.get_property("INFERENCE_NUM_THREADS")),
                    "optimal_infer_requests": optimal,
                    "lanes_compile_s": clock() - started,
                },
            )

        return Prepared(
            step=step,
            samples_per_step=cell.batch_size,
            count_step=onnx_export.count_graph(graph, batch),
            parameters=graph.parameters,
            input_shape=tuple(graph.inputs[0].shape),
            inputs=graph.inputs,
            settings=graph.settings,
            predict=predict,
            lanes=lanes,
            host_timer=True,
            phase_s=graph.phase_s,
        )


def _contiguous(given: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import numpy as np

    return {name: np.ascontiguousarray(array) for name, array in given.items()}


def _nncf_int8(model: Any, config: SweepConfig, inputs: list[InputSpec], samples: int) -> Any:
    """NNCF's post-training quantization of the OpenVINO model, on the calibration batches every int8
    path uses (the model's batch axis is still dynamic here)."""
    import nncf

    batches = onnx_export.calibration_batches(config, inputs, samples)
    return nncf.quantize(model, nncf.Dataset(batches), subset_size=len(batches))
