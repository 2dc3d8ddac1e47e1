"""The noise audit: was the machine quiet while a cell was measured? Before and after the measured window
it reads the machine's CPU times (steal: time a VM's host gave to others; busy time not spent by this
cell's processes: other processes), the load average before the start and the CPU frequency where it can
be read; on an NVIDIA GPU a sampler reads, through NVML, the SM clock against its maximum, the clock
throttle reasons, the temperature and the power limit every 0.1 s. A cell whose audit trips a threshold
(NoiseSettings) is flagged suspect, with its reasons. On the CPU nothing runs inside the window: two
readings of counters the kernel keeps anyway."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from wattgap.measure.cpu_times import machine_cpu_s, tree_cpu_s

# NVML's clock-throttle reasons that mean the GPU slowed itself (nvmlClocksEventReason*): not idle, not the
# application's clock setting, not "none".
THROTTLES = {
    0x4: "software power cap",
    0x8: "hardware slowdown",
    0x20: "software thermal slowdown",
    0x40: "hardware thermal slowdown",
    0x80: "hardware power brake",
}
SAMPLE_S = 0.1


class NoiseSettings(BaseModel):
    """Thresholds above which a cell is flagged suspect (the config's ``noise`` section)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    enabled: bool = True
    max_steal_share: float = Field(0.05, ge=0, le=1)  # of the machine's CPU time in the window
    max_other_cpu_cores: float = Field(0.10, ge=0)  # other processes' CPU, in cores, over the window
    min_sm_clock_share: float = Field(0.75, gt=0, le=1)  # GPU SM clock against its maximum (as nvbench)
    flag_throttling: bool = True  # any thermal or power throttle reason seen in the window


class GpuSample(BaseModel):
    sm_clock_mhz: float
    max_sm_clock_mhz: float
    throttle_reasons: int
    temperature_c: float | None = None
    power_limit_w: float | None = None


class GpuAudit(BaseModel):
    samples: int
    min_sm_clock_share: float
    throttles: list[str]
    max_temperature_c: float | None = None
    power_limit_w: float | None = None


class NoiseAudit(BaseModel):
    window_s: float
    load_before: float | None = None  # 1-minute load average at the start
    steal_share: float | None = None  # of the machine's CPU time in the window
    other_cpu_cores: float | None = None  # CPU time of other processes over the window, in cores
    cpu_mhz: float | None = None  # mean current frequency at the end, where readable
    gpu: GpuAudit | None = None
    suspect: list[str] = Field(default_factory=list)  # the thresholds tripped; empty: quiet
    notes: list[str] = Field(default_factory=list)  # what the audit could not read


class GpuProbe:
    """The GPU's clocks and throttle reasons through NVML (nvidia-ml-py), by torch's device index."""

    def __init__(self, device: str) -> None:
        import pynvml
        import torch

        pynvml.nvmlInit()
        self.nvml = pynvml
        uuid = str(torch.cuda.get_device_properties(device).uuid)
        self.handle = pynvml.nvmlDeviceGetHandleByUUID(uuid if uuid.startswith("GPU-") else f"GPU-{uuid}")

    def sample(self) -> GpuSample:
        nvml, handle = self.nvml, self.handle
        reasons = getattr(nvml, "nvmlDeviceGetCurrentClocksEventReasons", None) or (
            nvml.nvmlDeviceGetCurrentClocksThrottleReasons
        )
        temperature = power = None
        with contextlib.suppress(nvml.NVMLError):
            temperature = float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU))
        with contextlib.suppress(nvml.NVMLError):
            power = nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0
        return GpuSample(
            sm_clock_mhz=float(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)),
            max_sm_clock_mhz=float(nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_SM)),
            throttle_reasons=int(reasons(handle)),
            temperature_c=temperature,
            power_limit_w=power,
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.nvml.nvmlShutdown()


def _cpu_mhz() -> float | None:
    readings = []
    for path in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/scaling_cur_freq"):
        with contextlib.suppress(OSError, ValueError):
            readings.append(int(path.read_text()) / 1000)
    return sum(readings) / len(readings) if readings else None


class NoiseWindow:
    """Audits the window it wraps; ``audit`` is set when it closes (None when disabled)."""

    def __init__(self, settings: NoiseSettings, device: str, probe: Any = None) -> None:
        self.settings = settings
        self.device = device
        self.probe = probe
        self.audit: NoiseAudit | None = None
        self._samples: list[GpuSample] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._errors: list[str] = []

    def __enter__(self) -> NoiseWindow:
        if not self.settings.enabled:
            return self
        if self.probe is None and self.device.startswith("cuda"):
            try:
                self.probe = GpuProbe(self.device)
            except Exception as error:  # no NVML: the GPU part of the audit is left out, and says why
                self._errors.append(f"GPU audit unavailable: {type(error).__name__}: {error}")
        self._load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        self._machine = machine_cpu_s()
        self._own = tree_cpu_s()
        if self.probe is not None:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        self._started = time.perf_counter()
        return self

    def _sample(self) -> None:
        while True:
            try:
                self._samples.append(self.probe.sample())
            except Exception as error:  # a failing sampler ends sampling; the audit says so
                self._errors.append(f"GPU sampling stopped: {type(error).__name__}: {error}")
                return
            if self._stop.wait(SAMPLE_S):
                return

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if not self.settings.enabled:
            return
        window_s = time.perf_counter() - self._started
        busy, total, steal = machine_cpu_s()
        own = tree_cpu_s() - self._own
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
        if self.probe is not None and hasattr(self.probe, "close"):
            self.probe.close()
        elapsed = total - self._machine[1]
        steal_share = (steal - self._machine[2]) / elapsed if elapsed > 0 else None
        other = max(0.0, (busy - self._machine[0]) - own) / window_s if window_s > 0 else None
        self.audit = self._judge(
            NoiseAudit(
                window_s=window_s,
                load_before=self._load,
                steal_share=steal_share,
                other_cpu_cores=other,
                cpu_mhz=_cpu_mhz(),
                gpu=self._gpu(),
            )
        )

    def _gpu(self) -> GpuAudit | None:
        if not self._samples:
            return None
        seen = 0
        for sample in self._samples:
            seen |= sample.throttle_reasons
        temperatures = [s.temperature_c for s in self._samples if s.temperature_c is not None]
        return GpuAudit(
            samples=len(self._samples),
            min_sm_clock_share=min(s.sm_clock_mhz / s.max_sm_clock_mhz for s in self._samples if s.max_sm_clock_mhz),
            throttles=[name for bit, name in THROTTLES.items() if seen & bit],
            max_temperature_c=max(temperatures) if temperatures else None,
            power_limit_w=self._samples[-1].power_limit_w,
        )

    def _judge(self, audit: NoiseAudit) -> NoiseAudit:
        settings, reasons = self.settings, list(self._errors)
        flagged: list[str] = []
        if audit.steal_share is not None and audit.steal_share > settings.max_steal_share:
            flagged.append(f"steal {audit.steal_share:.0%} of the CPU time (over {settings.max_steal_share:.0%})")
        if audit.other_cpu_cores is not None and audit.other_cpu_cores > settings.max_other_cpu_cores:
            flagged.append(
                f"other processes used {audit.other_cpu_cores:.2f} cores (over {settings.max_other_cpu_cores:g})"
            )
        gpu = audit.gpu
        if gpu is not None:
            if gpu.min_sm_clock_share < settings.min_sm_clock_share:
                flagged.append(
                    f"SM clock down to {gpu.min_sm_clock_share:.0%} of its maximum (under "
                    f"{settings.min_sm_clock_share:.0%})"
                )
            if settings.flag_throttling and gpu.throttles:
                flagged.append("GPU throttled: " + ", ".join(gpu.throttles))
        return audit.model_copy(update={"suspect": flagged, "notes": reasons})
