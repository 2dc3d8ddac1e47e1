"""The energy-meter interface. A meter measures one domain (a GPU, the CPU package, DRAM, the CPU by a
model) over a window opened by ``start`` and closed by ``stop``. Every reading says how it was obtained:
``measured`` (a hardware counter or polled hardware power), ``estimated`` (a documented model) or
``unavailable`` (with the reason). A meter that fails degrades its reading to ``unavailable``; it never
fails the cell's speed measurement."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from types import TracebackType
from typing import Literal

from pydantic import BaseModel

Label = Literal["measured", "estimated", "unavailable"]


class MeterUnavailable(RuntimeError):
    """A meter cannot measure here; the message says why and, where it can, what to do."""


class EnergyReading(BaseModel):
    """One domain's energy over one window. ``net_energy_j`` subtracts the run's idle power of the same
    domain over the same window (None when no idle power was measured)."""

    domain: str  # "gpu:GPU-<uuid>", "cpu-package-0", "dram-0", "cpu"
    meter: str  # "nvml-counter", "nvml-polled", "rapl", "cpu-tdp-utilisation-v1"
    label: Label
    energy_j: float | None = None
    window_s: float = 0.0
    detail: str = ""  # the reason when unavailable, the model's inputs when estimated
    idle_power_w: float | None = None
    net_energy_j: float | None = None
    warning: str = ""  # e.g. a window shorter than the meter resolves

    @property
    def power_w(self) -> float | None:
        return self.energy_j / self.window_s if self.energy_j is not None and self.window_s > 0 else None


class EnergyMeter(ABC):
    """Subclasses measure one domain. ``start`` may be called again after ``stop`` for a new window."""

    domain: str
    meter: str
    label: Label
    min_window_s: float  # windows shorter than this are flagged: the meter cannot resolve them

    @abstractmethod
    def start(self) -> None:
        """Open a window."""

    @abstractmethod
    def stop(self) -> tuple[float, str]:
        """Close the window: joules since ``start`` and a detail line (the model's inputs, say)."""


class UnavailableMeter(EnergyMeter):
    """The null meter: a domain that cannot be measured here, and why. Keeps the window code free of
    branches for absent hardware."""

    label: Label = "unavailable"
    min_window_s = 0.0

    def __init__(self, domain: str, reason: str) -> None:
        self.domain, self.meter, self.reason = domain, "none", reason

    def start(self) -> None:
        pass

    def stop(self) -> tuple[float, str]:
        raise MeterUnavailable(self.reason)


class EnergyWindow:
    """A context manager that opens a window on several meters; ``readings`` holds one reading per meter
    after it closes. A meter that raises, at start or stop, gives an ``unavailable`` reading with its
    error; the others are unaffected. Device synchronisation is the caller's job, before closing."""

    def __init__(self, meters: list[EnergyMeter]) -> None:
        self.meters = meters
        self.readings: list[EnergyReading] = []
        self._errors: dict[int, str] = {}
        self._started = 0.0

    def __enter__(self) -> EnergyWindow:
        self._errors.clear()
        for index, meter in enumerate(self.meters):
            try:
                meter.start()
            except Exception as error:  # a meter's failure degrades its reading, nothing else
                self._errors[index] = _describe(error)
        self._started = time.perf_counter()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        window_s = time.perf_counter() - self._started
        self.readings = [self._close(index, meter, window_s) for index, meter in enumerate(self.meters)]

    def _close(self, index: int, meter: EnergyMeter, window_s: float) -> EnergyReading:
        reading = EnergyReading(domain=meter.domain, meter=meter.meter, label=meter.label, window_s=window_s)
        failure = self._errors.get(index)
        if failure is None:
            try:
                reading.energy_j, reading.detail = meter.stop()
            except Exception as error:  # same: degrade this reading only
                failure = _describe(error)
        if failure is not None:
            reading.label, reading.energy_j, reading.detail = "unavailable", None, failure
        elif window_s < meter.min_window_s:
            reading.warning = (
                f"window {window_s:.3f} s is shorter than {meter.meter} resolves ({meter.min_window_s} s): "
                "lengthen protocol.min_time_s"
            )
        return reading


def _describe(error: BaseException) -> str:
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, MeterUnavailable):
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
