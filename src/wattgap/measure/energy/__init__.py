"""Energy meters (one module per meter, one interface in base.py), the choice of meters for a device,
the run's idle power, and the per-cell summary of readings."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from wattgap.measure.energy.base import EnergyMeter, EnergyReading, EnergyWindow, MeterUnavailable, UnavailableMeter
from wattgap.text import number

if TYPE_CHECKING:
    from wattgap.measure.energy.settings import EnergySettings

__all__ = [
    "CellEnergy",
    "EnergyMeter",
    "EnergyReading",
    "EnergyWindow",
    "cpu_meter",
    "measure_idle",
    "merge_readings",
    "meters_for",
]

CellLabel = Literal["measured", "estimated", "partial", "unavailable"]


def cpu_meter(settings: EnergySettings) -> EnergyMeter:
    """RAPL where readable, else the documented model (which records why RAPL was not used)."""
    from wattgap.measure.energy.cpu_model import CpuModelMeter
    from wattgap.measure.energy.rapl import RaplMeter

    try:
        return RaplMeter(settings.powercap_root)
    except MeterUnavailable as why:
        meter = CpuModelMeter(settings.cpu_tdp_w, settings.cpu_idle_fraction)
        meter.source += f"; RAPL unused: {why}"
        return meter


def gpu_meter(device: str, settings: EnergySettings) -> EnergyMeter:
    import torch

    from wattgap.measure.energy.nvml import NvmlMeter

    try:
        uuid = str(torch.cuda.get_device_properties(device).uuid)
    except Exception as error:  # no CUDA here: the reading says so instead of failing the cell
        return UnavailableMeter(f"gpu:{device}", f"cannot identify {device}: {error}")
    try:
        return NvmlMeter(uuid, settings.gpu_mode, settings.poll_interval_s)
    except MeterUnavailable as why:
        return UnavailableMeter(f"gpu:{device}", str(why))


def meters_for(device: str, settings: EnergySettings) -> list[EnergyMeter]:
    """The meters of a cell on ``device``: its accelerator (if any), then the host CPU."""
    if not settings.enabled:
        return []
    kind = device.partition(":")[0]
    accelerator: list[EnergyMeter] = []
    if kind == "cuda":
        accelerator = [gpu_meter(device, settings)]
    elif kind == "mps":
        accelerator = [UnavailableMeter("mps", "Apple GPU power is readable only by root (powermetrics)")]
    return [*accelerator, cpu_meter(settings)]


class IdlePower(BaseModel):
    power_w: float | None
    label: str
    meter: str
    window_s: float
    detail: str = ""
    busy_fraction: float | None = None  # share of all CPUs' time spent on other work during the window
    warning: str = ""  # set when the machine was not idle: no net energy is computed from this reading


def _cpu_busy_seconds() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from the kernel's counters."""
    import psutil

    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    total = sum(times)
    return total - idle, total


def measure_idle(devices: list[str], settings: EnergySettings) -> dict[str, IdlePower]:
    """Mean power of every domain the run's devices use, over ``settings.idle_s`` of sleep: measured
    once per run so that each cell can report its energy above idle."""
    if not settings.enabled or settings.idle_s <= 0:
        return {}
    meters: dict[str, EnergyMeter] = {}
    for device in devices:
        for meter in meters_for(device, settings):
            meters.setdefault(meter.domain, meter)
    window = EnergyWindow(list(meters.values()))
    busy_before, total_before = _cpu_busy_seconds()
    with window:
        time.sleep(settings.idle_s)
    busy_after, total_after = _cpu_busy_seconds()
    elapsed = total_after - total_before
    busy = (busy_after - busy_before) / elapsed if elapsed > 0 else None
    warning = ""
    if busy is not None and busy > settings.idle_busy_max:
        warning = (
            f"not idle: other work took {busy:.0%} of the machine's CPU time during the idle measurement "
            f"(over energy.idle_busy_max {settings.idle_busy_max:.0%})"
        )
    return {
        reading.domain: IdlePower(
            power_w=reading.power_w,
            label=reading.label,
            meter=reading.meter,
            window_s=reading.window_s,
            detail=reading.detail,
            busy_fraction=busy,
            warning=warning,
        )
        for reading in window.readings
    }


class CellEnergy(BaseModel):
    """A cell's energy: the measured window (gross, and net of the run's idle power) and the prepare
    phase (compile, export, calibration). ``label``: ``measured`` when every domain was measured,
    ``estimated`` when any was estimated, ``partial`` when a domain was unavailable (its reason is in
    ``readings``), ``unavailable`` when none could be read."""

    label: CellLabel = "unavailable"
    energy_j: float | None = None
    net_energy_j: float | None = None
    power_w: float | None = None
    window_s: float | None = None
    samples: int | None = None  # processed in the measured window(s)
    j_per_sample: float | None = None
    samples_per_j: float | None = None
    prepare_energy_j: float | None = None
    readings: list[EnergyReading] = Field(default_factory=list)
    prepare_readings: list[EnergyReading] = Field(default_factory=list)

    @classmethod
    def from_readings(
        cls,
        readings: list[EnergyReading],
        samples: int,
        idle: dict[str, Any] | None = None,
        prepare: list[EnergyReading] | None = None,
    ) -> CellEnergy:
        for reading in readings:
            _subtract_idle(reading, (idle or {}).get(reading.domain))
        energy = _total(readings)
        nets = [r.net_energy_j for r in readings if r.energy_j is not None]
        net = sum(n for n in nets if n is not None) if nets and None not in nets else None
        window = max((r.window_s for r in readings), default=None)
        return cls(
            label=_label(readings),
            energy_j=energy,
            net_energy_j=net,
            power_w=energy / window if energy is not None and window else None,
            window_s=window,
            samples=samples,
            j_per_sample=energy / samples if energy is not None and samples else None,
            samples_per_j=samples / energy if energy and samples else None,
            prepare_energy_j=_total(prepare or []),
            readings=readings,
            prepare_readings=prepare or [],
        )

    @property
    def warnings(self) -> list[str]:
        notes = [f"energy {r.domain}: {r.warning}" for r in self.readings if r.warning]
        notes += [f"energy {r.domain} unavailable: {r.detail}" for r in self.readings if r.label == "unavailable"]
        return notes


def _subtract_idle(reading: EnergyReading, idle: Any) -> None:
    """Set the reading's net energy from its domain's idle power, unless the idle reading was flagged as
    not idle or the result would be negative (idle then drew more than the work): those leave net energy
    unset, with a warning saying why, rather than print a figure that is wrong."""
    power = idle.get("power_w") if isinstance(idle, dict) else None
    if power is None or reading.energy_j is None:
        return
    reading.idle_power_w = power
    net = reading.energy_j - power * reading.window_s
    if idle.get("warning"):
        problem = f"no net energy: the idle reading is {idle['warning']}"
    elif net < 0:
        problem = (
            f"no net energy: it would be {number(net)} J, below zero (idle {number(power)} W exceeds this window's "
            f"{number(reading.power_w or 0)} W; the machine was busier when idle was measured)"
        )
    else:
        reading.net_energy_j = net
        return
    reading.warning = f"{reading.warning}; {problem}" if reading.warning else problem


def merge_readings(windows: list[list[EnergyReading]]) -> list[EnergyReading]:
    """One reading per domain summed over several windows (epochs, a cell's repeats); a domain unavailable
    in any window is unavailable in the sum."""
    merged: dict[str, EnergyReading] = {}
    for readings in windows:
        for reading in readings:
            total = merged.get(reading.domain)
            if total is None:  # net energy is the sum's, set again from the idle power by from_readings
                merged[reading.domain] = reading.model_copy(update={"net_energy_j": None, "idle_power_w": None})
                continue
            total.window_s += reading.window_s
            if total.energy_j is None or reading.energy_j is None:
                total.energy_j, total.label = None, "unavailable"
                total.detail = total.detail if reading.energy_j is not None else reading.detail
            else:
                total.energy_j += reading.energy_j
                total.detail = reading.detail
            total.warning = total.warning or reading.warning
    return list(merged.values())


def _total(readings: list[EnergyReading]) -> float | None:
    values = [r.energy_j for r in readings if r.energy_j is not None]
    return sum(values) if values else None


def _label(readings: list[EnergyReading]) -> CellLabel:
    labels = {r.label for r in readings}
    if not labels or labels == {"unavailable"}:
        return "unavailable"
    if "unavailable" in labels:
        return "partial"
    return "estimated" if "estimated" in labels else "measured"
