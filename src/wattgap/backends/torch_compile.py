"""torch.compile (TorchDynamo + Inductor) over the same models and steps as torch-eager. Compilation is
lazy in PyTorch, so the prepare phase runs one step to trigger it and times that as ``compile_s``: it
never reaches the warmup or the measured window. FLOPs are counted on the eager model (the same math).

Inference compiles with Inductor's freezing (``compile_freezing``, on by default): the weights become
constants, so batch norm folds into the convolutions and oneDNN gets its prepacked weights, which is
what PyTorch documents for inference on CPU."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from wattgap.backends import torch_runtime as rt
from wattgap.backends.base import Capabilities, Needs, Phase, Prepared
from wattgap.backends.torch_eager import TorchEager

if TYPE_CHECKING:
    from torch import nn

    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.devices import Hardware

CYCLEGAN_PARTS = ("g_ab", "g_ba", "d_a", "d_b")


class TorchCompile(TorchEager):
    name = "torch-compile"
    description = "PyTorch with torch.compile (Inductor); compile_mode from the config"
    capabilities = Capabilities(
        device_kinds=frozenset({"cpu", "cuda"}),
        precisions=frozenset({"fp32", "tf32", "bf16", "fp16"}),
        modes=frozenset({"infer", "train"}),
        memory_formats=True,
    )

    def unsupported_reason(self, cell: Cell, hardware: Hardware, needs: Needs) -> str:
        return super().unsupported_reason(cell, hardware, needs) or rt.compiler_reason(cell)

    def wrap(
        self, model: nn.Module, cell: Cell, config: SweepConfig, settings: dict[str, Any], needs: Needs
    ) -> nn.Module:
        import torch

        settings["compile_mode"] = config.compile_mode
        if needs.mode == "infer":
            import torch._inductor.config as inductor  # this cell's process only: each cell has its own

            inductor.freezing = config.compile_freezing
            settings["inductor_freezing"] = config.compile_freezing
        if all(hasattr(model, part) for part in CYCLEGAN_PARTS):  # compile the four networks in place
            for part in CYCLEGAN_PARTS:
                setattr(model, part, torch.compile(getattr(model, part), mode=config.compile_mode))
            return model
        return torch.compile(model, mode=config.compile_mode)  # type: ignore[return-value]

    def prepare(self, cell: Cell, config: SweepConfig, phase: Phase, needs: Needs) -> Prepared:
        prepared = super().prepare(cell, config, phase, needs)
        assert prepared.step is not None  # infer and train, the modes declared above, have one
        started = time.perf_counter()
        with prepared.context():
            prepared.step()
        prepared.sync()
        prepared.phase_s["compile_s"] = time.perf_counter() - started
        return prepared
