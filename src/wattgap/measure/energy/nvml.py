"""NVIDIA GPU energy through NVML (the nvidia-ml-py bindings, imported lazily). Chosen over Zeus's
monitor because wattgap already uses NVML for memory, the two calls needed are NVML's own, and Zeus would
bring its own dependency tree for the same two readings.

- ``counter`` (Volta and newer): ``nvmlDeviceGetTotalEnergyConsumption``, millijoules since the driver
  loaded, read at the window's edges (the caller synchronises the device before closing).
- ``polled``: ``nvmlDeviceGetPowerUsage`` (milliwatts) sampled by a thread every ``poll_interval_s``
  and integrated by the trapezoidal rule; used where the counter is missing, and selectable so that the
  two can be compared on the same window.

The GPU is found by the UUID torch reports for the cell's device, so CUDA_VISIBLE_DEVICES is respected."""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, Literal

from wattgap.measure.energy.base import EnergyMeter, Label, MeterUnavailable

Mode = Literal["auto", "counter", "polled"]


def integrate_trapezoid(samples: list[tuple[float, float]]) -> float:
    """Joules from (time s, power W) samples."""
    return sum((t1 - t0) * (p0 + p1) / 2 for (t0, p0), (t1, p1) in itertools.pairwise(samples) if t1 > t0)


class NvmlMeter(EnergyMeter):
    label: Label = "measured"

    def __init__(self, uuid: str, mode: Mode = "auto", poll_interval_s: float = 0.05) -> None:
        self.uuid = uuid if uuid.startswith("GPU-") else f"GPU-{uuid}"
        self.domain = f"gpu:{self.uuid}"
        self.poll_interval_s = poll_interval_s
        self._open()
        if mode == "auto":
            mode = "counter" if self._counter_works() else "polled"
        self.mode = mode
        self.meter = f"nvml-{mode}"
        self.min_window_s = 0.1 if mode == "counter" else 10 * poll_interval_s
        self._begin_mj = 0
        self._samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure = ""

    # The three methods that touch NVML; a test double overrides them (there is no GPU on CI).
    def _open(self) -> None:
        try:
            import pynvml
        except ImportError:
            raise MeterUnavailable("nvidia-ml-py is not installed") from None
        try:
            pynvml.nvmlInit()
            self._handle: Any = pynvml.nvmlDeviceGetHandleByUUID(self.uuid)
        except pynvml.NVMLError as error:
            raise MeterUnavailable(f"NVML: {error}") from None
        self._nvml = pynvml

    def _read_counter_mj(self) -> int:
        return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))

    def _read_power_w(self) -> float:
        return float(self._nvml.nvmlDeviceGetPowerUsage(self._handle)) / 1000

    def _counter_works(self) -> bool:
        try:
            self._read_counter_mj()
        except Exception:  # NVMLError_NotSupported before Volta, or any driver refusal
            return False
        return True

    def start(self) -> None:
        if self.mode == "counter":
            self._begin_mj = self._read_counter_mj()
            return
        self._samples = [(time.perf_counter(), self._read_power_w())]
        self._stop.clear()
        self._failure = ""
        self._thread = threading.Thread(target=self._poll, name="wattgap-nvml-poll", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        try:
            while not self._stop.wait(self.poll_interval_s):
                self._samples.append((time.perf_counter(), self._read_power_w()))
        except Exception as error:  # NVML failing mid-window: reported by stop()
            self._failure = f"{type(error).__name__}: {error}"

    def stop(self) -> tuple[float, str]:
        if self.mode == "counter":
            return (self._read_counter_mj() - self._begin_mj) / 1000, "NVML total-energy counter"
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._failure:
            raise MeterUnavailable(f"NVML power polling failed during the window: {self._failure}")
        self._samples.append((time.perf_counter(), self._read_power_w()))
        return (
            integrate_trapezoid(self._samples),
            f"NVML power polled every {self.poll_interval_s} s, {len(self._samples)} samples, trapezoidal rule",
        )
