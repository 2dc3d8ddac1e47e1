"""torch.compile (TorchDynamo + Inductor) over the same models and steps as torch-eager. Compilation is
lazy in PyTorch, so the prepare phase runs one step to trigger it and times that as ``compile_s``: it
never reaches the warmup or the measured window. FLOPs are counted on the eager model (the same math).

Its settings (``backends: {torch-compile: {mode: ..., freezing: ...}}``): torch.compile's ``mode``, and for
inference Inductor's ``freezing`` (on by default): the weights become
constants, so batch norm folds into the convolutions and oneDNN gets its prepacked weights, which is
what PyTorch documents for inference on CPU."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from wattgap.backends import torch_runtime as rt
from wattgap.backends.base import Capabilities, Needs, Phase, Prepared
from wattgap.backends.settings import TorchSettings
from wattgap.backends.torch_eager import TorchEager

if TYPE_CHECKING:
    from torch import nn

    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.devices import Hardware

CYCLEGAN_PARTS = ("g_ab", "g_ba", "d_a", "d_b")


class CompileSettings(TorchSettings):
    """torch-compile's settings: torch-eager's and the compiler's."""

    # torch.compile's mode (max-autotune: Inductor benchmarks kernel choices while compiling)
    mode: Literal["default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"] = "default"
    freezing: bool = True  # inference: Inductor folds the weights in as constants


class TorchCompile(TorchEager):
    name = "torch-compile"
    description = "PyTorch with torch.compile (Inductor); its mode from the sweep (backends: {torch-compile: {mode}})"
    capabilities = Capabilities(
        device_kinds=frozenset({"cpu", "cuda"}),
        precisions=frozenset({"fp32", "tf32", "bf16", "fp16"}),
        modes=frozenset({"infer", "train"}),
        memory_formats=True,
    )
    settings_model: type[CompileSettings] = CompileSettings

    def unsupported_reason(self, cell: Cell, hardware: Hardware, needs: Needs) -> str:
        return super().unsupported_reason(cell, hardware, needs) or rt.compiler_reason(cell)

    def wrap(
        self, model: nn.Module, cell: Cell, config: SweepConfig, settings: dict[str, Any], needs: Needs
    ) -> nn.Module:
        import torch

        own = config.settings("backends", self.name, self.settings_model)
        settings["compile_mode"] = own.mode
        if needs.mode == "infer":
            import torch._inductor.config as inductor  # this cell's process only: each cell has its own

            inductor.freezing = own.freezing
            settings["inductor_freezing"] = own.freezing
        if all(hasattr(model, part) for part in CYCLEGAN_PARTS):  # compile the four networks in place
            for part in CYCLEGAN_PARTS:
                setattr(model, part, torch.compile(getattr(model, part), mode=own.mode))
            return model
        return torch.compile(model, mode=own.mode)  # type: ignore[return-value]

    def prepare(self, cell: Cell, config: SweepConfig, phase: Phase, needs: Needs) -> Prepared:
        prepared = super().prepare(cell, config, phase, needs)
        assert prepared.step is not None  # infer and train, the modes declared above, have one
        started = time.perf_counter()
        with prepared.context():
            prepared.step()
        prepared.sync()
        prepared.phase_s["compile_s"] = time.perf_counter() - started
        return prepared
