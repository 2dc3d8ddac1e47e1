"""PyTorch's own int8, through torchao (``pip install 'wattgap[torchao]'``), each device the way torchao
documents as its fast path:

- CPU: post-training static quantization in the PT2E flow. The model is captured by ``torch.export`` in
  strict mode (TorchDynamo; the non-strict trace merges the calls of a module used twice, a ResNet's
  ReLU, into one partition, which the quantizer refuses), annotated by the X86 Inductor quantizer (uint8
  activations, per-channel int8 weights), calibrated on the same ``calibration_samples`` inputs as every
  int8 path, converted, and compiled by Inductor with freezing, which lowers the quantize/dequantize pairs
  into oneDNN int8 kernels. Export, calibration and compilation are timed phases.
- CUDA: int8 dynamic-activation / int8-weight quantization (``Int8DynamicActivationInt8WeightConfig``)
  of a bfloat16 model, then torch.compile. torchao quantizes linear layers only: convolutions stay in
  bfloat16, and the cell's settings say how many layers are int8.

The guardrail compares the outputs with the fp32 reference as for every stack."""

from __future__ import annotations

import importlib.util
import time
from typing import TYPE_CHECKING, Any

from wattgap.backends import torch_runtime as rt
from wattgap.backends.base import Backend, Capabilities, Needs, Phase, Prepared
from wattgap.backends.onnx_export import calibration_batches
from wattgap.backends.settings import CalibrationSettings, CudnnSettings
from wattgap.measure.flops import count_step
from wattgap.models.build import build_model, count_parameters
from wattgap.models.inputs import synthesize

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.devices import Hardware
    from wattgap.models.inputs import InputSpec


class TorchAoSettings(CalibrationSettings, CudnnSettings):
    """torchao's settings (its CUDA route quantizes dynamically: calibration_samples is the CPU route's)."""


class TorchAo(Backend):
    name = "torchao"
    description = "PyTorch int8 through torchao: PT2E static quantization + Inductor on CPU, dynamic int8 on CUDA"
    capabilities = Capabilities(
        device_kinds=frozenset({"cpu", "cuda"}),
        precisions=frozenset({"int8"}),
        modes=frozenset({"infer"}),
    )
    settings_model: type[TorchAoSettings] = TorchAoSettings

    def unavailable_reason(self) -> str:
        if importlib.util.find_spec("torch") is None:
            return "PyTorch is not installed"
        return "" if importlib.util.find_spec("torchao") else "torchao not installed (pip install 'wattgap[torchao]')"

    def unsupported_reason(self, cell: Cell, hardware: Hardware, needs: Needs) -> str:
        return super().unsupported_reason(cell, hardware, needs) or rt.compiler_reason(cell)

    def prepare(self, cell: Cell, config: SweepConfig, phase: Phase, needs: Needs) -> Prepared:
        import torch

        phase("load")
        own = config.settings("backends", self.name, self.settings_model)
        device, settings = rt.setup_device(cell, config, own)
        model, inputs, _ = build_model(cell.model, config.model_options(cell.model))
        parameters = count_parameters(model)
        model.eval()
        phase("prepare")
        keep = rt.Layout(torch.contiguous_format, "contiguous")
        example = tuple(t.to(device) for t in rt.as_tensors(synthesize(inputs, cell.batch_size, config.seed), keep))
        phases: dict[str, float] = {}
        with torch.no_grad():
            counted = count_step(lambda: model.to(device)(*example), model)  # on the fp32 model: the same math
        if device.type == "cuda":
            runner, dtype = _dynamic_int8(model, settings), torch.bfloat16
        else:
            runner, dtype = _static_int8(model, inputs, config, own.calibration_samples, settings, phases), None

        def cast(tensors: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
            return tuple(t.to(dtype) if dtype is not None and t.is_floating_point() else t for t in tensors)

        feed = cast(example)
        started = time.perf_counter()
        with torch.no_grad():
            runner(*feed)  # compiles
        rt.synchronizer(device)()
        phases["compile_s"] = time.perf_counter() - started

        def predict(batch: dict[str, np.ndarray]) -> np.ndarray:
            with torch.no_grad():
                given = cast(tuple(t.to(device) for t in rt.as_tensors(batch, keep)))
                return runner(*given).float().cpu().numpy()

        return Prepared(
            step=lambda: runner(*feed),
            samples_per_step=cell.batch_size,
            context=torch.no_grad,
            sync=rt.synchronizer(device),
            count_step=lambda: counted,
            parameters=parameters,
            input_shape=tuple(inputs[0].shape),
            inputs=inputs,
            settings=settings,
            predict=predict,
            phase_s=phases,
        )


def _static_int8(
    model: nn.Module,
    inputs: list[InputSpec],
    config: SweepConfig,
    samples: int,
    settings: dict[str, Any],
    phases: dict[str, float],
) -> Any:
    import torch
    import torch._inductor.config as inductor
    import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as x86
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    clock = time.perf_counter
    started = clock()
    example = tuple(torch.from_numpy(a) for a in synthesize(inputs, 2, config.seed).values())  # 2: 1 specialises
    batch = torch.export.Dim("batch")
    dynamic = tuple({0: batch} for _ in example)
    with torch.no_grad():
        graph = torch.export.export(model, example, dynamic_shapes=dynamic, strict=True).module()
    phases["export_s"] = clock() - started
    started = clock()
    quantizer = x86.X86InductorQuantizer()
    quantizer.set_global(x86.get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(graph, quantizer)
    with torch.no_grad():
        for given in calibration_batches(config, inputs, samples):
            prepared(*(torch.from_numpy(a) for a in given.values()))
    converted = convert_pt2e(prepared)
    phases["calibration_s"] = clock() - started
    inductor.freezing = True  # this cell's process only
    settings.update(
        precision_applied=(
            "int8 PT2E static, X86InductorQuantizer (uint8 activations, per-channel int8 weights), "
            f"{samples} {'dataset' if config.dataset else 'N(0,1)'} calibration samples"
        ),
        capture="torch.export strict",
        inductor_freezing=True,
        compile_mode="default",
    )
    return torch.compile(converted)


def _dynamic_int8(model: nn.Module, settings: dict[str, Any]) -> Any:
    import torch
    from torch import nn
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    model.to(torch.bfloat16)
    linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    other = sum(isinstance(m, nn.Conv2d | nn.ConvTranspose2d) for m in model.modules())
    quantize_(model, Int8DynamicActivationInt8WeightConfig())
    settings.update(
        precision_applied=(
            f"int8 dynamic (torchao), int8 activations and weights in {linear} linear layer(s); "
            f"{other} convolution(s) and the rest in bfloat16"
        ),
        compile_mode="max-autotune",
    )
    return torch.compile(model, mode="max-autotune")  # torchao's documented pairing
