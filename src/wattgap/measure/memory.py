"""Device memory: the framework allocator's peaks, and device-wide use from NVML where available."""

from __future__ import annotations

import resource
import sys
from typing import Any


class DeviceMemory:
    """Peak allocated and reserved bytes on a CUDA device since ``reset_peak``; nothing on CPU (host
    peak RSS is read separately for the whole subprocess)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.cuda = device.startswith("cuda")

    def reset_peak(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def read(self) -> dict[str, Any]:
        if not self.cuda:
            return {}
        import torch

        return {
            "device_peak_allocated_bytes": int(torch.cuda.max_memory_allocated(self.device)),
            "device_peak_reserved_bytes": int(torch.cuda.max_memory_reserved(self.device)),
            "device_used_bytes": nvml_used_bytes(self.device),
        }


def nvml_used_bytes(device: str) -> int | None:
    """Memory in use on the whole GPU (all processes) by NVML, matched to torch's device by UUID so that
    CUDA_VISIBLE_DEVICES is respected. None when NVML is not installed or fails."""
    try:
        import pynvml
        import torch

        pynvml.nvmlInit()
        try:
            uuid = str(torch.cuda.get_device_properties(device).uuid)
            handle = pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")
            return int(pynvml.nvmlDeviceGetMemoryInfo(handle).used)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # NVML is optional: its absence or failure leaves the figure unset
        return None


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far. On Linux, the high-water mark of its own memory map
    (VmHWM): getrusage's ru_maxrss is not reset by exec, so a cell started from a large process (a
    notebook, a test runner holding gigabytes) would report its parent's size at the fork."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)
