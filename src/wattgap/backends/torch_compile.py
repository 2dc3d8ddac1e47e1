"""torch.compile (TorchDynamo + Inductor) over the same models and steps as torch-eager. Compilation is
lazy in PyTorch, so the prepare phase runs one step to trigger it and times that as ``compile_s``: it
never reaches the warmup or the measured window. FLOPs are counted on the eager model (the same math)."""

from __future__ import annotations

import shutil
import time
from typing import TYPE_CHECKING, Any

from wattgap.backends.base import Capabilities, Phase, Prepared
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
        workloads=frozenset({"infer", "train"}),
    )

    def unsupported_reason(self, cell: Cell, hardware: Hardware) -> str:
        reason = super().unsupported_reason(cell, hardware)
        if not reason and cell.device == "cpu" and not (shutil.which("g++") or shutil.which("c++")):
            return "torch.compile's CPU code generation needs a C++ compiler (g++) on the PATH"
        return reason

    def wrap(self, model: nn.Module, cell: Cell, config: SweepConfig, settings: dict[str, Any]) -> nn.Module:
        import torch

        settings["compile_mode"] = config.compile_mode
        if all(hasattr(model, part) for part in CYCLEGAN_PARTS):  # compile the four networks in place
            for part in CYCLEGAN_PARTS:
                setattr(model, part, torch.compile(getattr(model, part), mode=config.compile_mode))
            return model
        return torch.compile(model, mode=config.compile_mode)  # type: ignore[return-value]

    def prepare(self, cell: Cell, config: SweepConfig, phase: Phase) -> Prepared:
        prepared = super().prepare(cell, config, phase)
        assert prepared.step is not None  # infer and train, the workloads declared above, have one
        started = time.perf_counter()
        with prepared.context():
            prepared.step()
        prepared.sync()
        prepared.phase_s["compile_s"] = time.perf_counter() - started
        return prepared
