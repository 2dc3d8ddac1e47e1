"""What devices this machine offers and why not where not. torch is imported lazily, on first use."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile", "amx_int8")


@dataclass(frozen=True)
class GpuInfo:
    index: int
    name: str
    memory_bytes: int
    capability: str
    multiprocessors: int


@dataclass(frozen=True)
class Hardware:
    """A snapshot of the devices torch can use here, with the reason for each that it cannot."""

    physical_cores: int
    logical_cores: int
    gpus: tuple[GpuInfo, ...] = ()
    cuda_reason: str = ""  # why CUDA is unusable; empty when usable
    mps_reason: str = ""
    torch_reason: str = ""  # why torch itself is unusable; empty when usable
    cpu_flags: tuple[str, ...] = ()  # those of CPU_FLAGS the CPU has

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hardware:
        """The snapshot as ``dataclasses.asdict`` wrote it (in the process that took it)."""
        gpus = tuple(GpuInfo(**gpu) for gpu in data["gpus"])
        return cls(**{**data, "gpus": gpus, "cpu_flags": tuple(data["cpu_flags"])})

    @property
    def cuda_usable(self) -> bool:
        return not self.cuda_reason and bool(self.gpus)

    @property
    def mps_usable(self) -> bool:
        return not self.mps_reason

    def best_device(self) -> str:
        if self.cuda_usable:
            return "cuda"
        if self.mps_usable:
            return "mps"
        return "cpu"

    def unusable_reason(self, device: str) -> str:
        """Why ``device`` cannot run here; empty when it can."""
        if self.torch_reason:
            return self.torch_reason
        kind, _, index = device.partition(":")
        if kind == "cuda":
            if self.cuda_reason:
                return self.cuda_reason
            if index and int(index) >= len(self.gpus):
                return f"{device} does not exist: this machine has {len(self.gpus)} CUDA device(s)"
            return ""
        if kind == "mps":
            return self.mps_reason
        return ""


def physical_core_count() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


@cache
def cpu_info() -> dict[str, Any]:
    """The CPU's model name and the instruction-set flags that matter to deep-learning kernels."""
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    path = Path("/proc/cpuinfo")
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    return {"model": model, "flags": [f for f in CPU_FLAGS if f in flags]}


@cache
def detect() -> Hardware:
    """Probe torch for CUDA and MPS (imports torch)."""
    logical = os.cpu_count() or 1
    physical = physical_core_count()
    try:
        import torch
    except ImportError as error:  # pragma: no cover - torch is a dependency
        reason = f"PyTorch is not importable: {error}"
        return Hardware(physical, logical, cuda_reason=reason, mps_reason=reason, torch_reason=reason)
    gpus: list[GpuInfo] = []
    if torch.version.cuda is None:
        cuda_reason = f"this PyTorch build ({torch.__version__}) has no CUDA support"
    elif not torch.cuda.is_available():
        cuda_reason = "PyTorch has CUDA support but finds no usable NVIDIA GPU or driver"
    else:
        cuda_reason = ""
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            gpus.append(
                GpuInfo(
                    index=index,
                    name=props.name,
                    memory_bytes=int(props.total_memory),
                    capability=f"{props.major}.{props.minor}",
                    multiprocessors=int(props.multi_processor_count),
                )
            )
    if platform.system() != "Darwin":
        mps_reason = "MPS exists only on Apple silicon under macOS"
    elif not torch.backends.mps.is_available():
        mps_reason = "this macOS machine or PyTorch build offers no MPS device"
    else:
        mps_reason = ""
    flags = tuple(cpu_info()["flags"])
    return Hardware(physical, logical, tuple(gpus), cuda_reason=cuda_reason, mps_reason=mps_reason, cpu_flags=flags)


def synchronize(device: str) -> None:
    """Wait for all queued work on ``device``."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize(device)
    elif device == "mps":
        torch.mps.synchronize()
