"""Settings that several backends share. A backend's settings model inherits each group it honours, so a
sweep gives them per backend (``backends: {onnxruntime: {calibration_samples: 128}}``), and a backend that
does not honour a setting refuses it by name."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from wattgap.config import ComponentSettings
from wattgap.errors import shown

if TYPE_CHECKING:
    from wattgap.config import SweepConfig


class CudnnSettings(ComponentSettings):
    """What a PyTorch backend sets on CUDA."""

    cudnn_benchmark: bool = True  # cuDNN times its algorithms for each new shape and keeps the fastest


class TorchSettings(CudnnSettings):
    """PyTorch's eager and compiled backends."""

    # bf16 and fp16 inference under autocast, or with model and inputs cast (training always autocasts)
    infer_low_precision: Literal["autocast", "cast"] = "autocast"


class CalibrationSettings(ComponentSettings):
    """A backend that calibrates static int8 quantization."""

    calibration_samples: int = Field(64, ge=1, le=100_000)  # N(0,1) inputs, or the dataset's when one is set


class QdqSettings(CalibrationSettings):
    """A backend that runs the QDQ graph onnx_export quantizes."""

    calibration_method: Literal["minmax", "entropy", "percentile"] = "entropy"
    # auto: what the runtime is fastest with on this machine (onnx_export.int8_scheme)
    int8_activation_type: Literal["auto", "uint8", "int8"] = "auto"

    def conflict(self, config: SweepConfig) -> str:
        if self.int8_activation_type != "auto" and "int8" not in config.precisions:
            chosen = shown(self.int8_activation_type)
            return f"int8_activation_type: got {chosen}; allowed: auto (it applies to int8, and no precision is int8)"
        return ""
