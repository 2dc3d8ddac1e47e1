"""An estimate of CPU power where no counter can be read (a VM without powercap, macOS, RAPL locked to
root). Model ``cpu-tdp-utilisation-v1``:

    P = TDP_visible x (idle_fraction + (1 - idle_fraction) x u)

- TDP_visible: TDP per core x the physical cores this machine shows (a VM shows its share of a socket),
  or ``energy.cpu_tdp_w`` from the config. TDP per core comes from ``resources/cpus.yaml`` by CPU model
  name; a CPU not listed gets the median TDP per core of that table.
- u: the cell's CPU utilisation over the window: the CPU time of its own process tree over all the
  machine's CPU time (the kernel's counters), so that other processes' work is not charged to the cell;
  the machine-wide utilisation (busy = all time but idle, iowait and steal, as a wall meter would see it)
  is kept beside it in the reading's detail, as context.
- idle_fraction: the share of TDP drawn at zero load, ``energy.cpu_idle_fraction`` (0.3 by default: an
  assumption, not a measurement).

Linear in u, so the energy over a window is exactly P(mean u) x window. TDP is a thermal design figure,
not a measured draw: readings are labelled ``estimated`` and carry the model's inputs."""

from __future__ import annotations

import statistics
import time

from wattgap.devices import cpu_info, physical_core_count
from wattgap.measure.cpu_times import machine_cpu_s, tree_cpu_s
from wattgap.measure.energy.base import EnergyMeter, Label
from wattgap.measure.hardware import cpu_entry, known_cpus

MODEL_NAME = "cpu-tdp-utilisation-v1"


def default_tdp_per_core_w() -> float:
    return statistics.median(entry["tdp_w"] / entry["cores"] for entry in known_cpus())


def tdp_per_core_w(model_name: str) -> tuple[float, str]:
    """TDP per core for the named CPU, and where the figure comes from."""
    entry = cpu_entry(model_name)
    if entry is not None:
        return entry["tdp_w"] / entry["cores"], f"{entry['match']}: {entry['tdp_w']} W / {entry['cores']} cores"
    return default_tdp_per_core_w(), f"CPU {model_name!r} is not in cpus.yaml: median TDP per core of that table"


class CpuModelMeter(EnergyMeter):
    meter = MODEL_NAME
    label: Label = "estimated"
    min_window_s = 0.5  # the kernel's CPU time counters tick at 100 Hz on most systems

    def __init__(self, tdp_w: float | None = None, idle_fraction: float = 0.3) -> None:
        self.domain = "cpu"
        self.idle_fraction = idle_fraction
        if tdp_w is not None:
            self.tdp_w, self.source = tdp_w, "energy.cpu_tdp_w from the config"
        else:
            cores = physical_core_count()
            per_core, origin = tdp_per_core_w(cpu_info()["model"])
            self.tdp_w, self.source = per_core * cores, f"{cores} cores x {per_core:.2f} W ({origin})"
        self._start = (0.0, 0.0, 0.0, 0.0)

    def start(self) -> None:
        self._start = (*machine_cpu_s()[:2], tree_cpu_s(), time.perf_counter())

    def stop(self) -> tuple[float, str]:
        busy, total, _ = machine_cpu_s()
        own = tree_cpu_s()
        window_s = time.perf_counter() - self._start[3]
        elapsed_cpu_s = total - self._start[1]

        def share(spent: float) -> float:
            return min(max(spent / elapsed_cpu_s, 0.0), 1.0) if elapsed_cpu_s > 0 else 0.0

        utilisation, machine = share(own - self._start[2]), share(busy - self._start[0])
        power_w = self.tdp_w * (self.idle_fraction + (1 - self.idle_fraction) * utilisation)
        detail = (
            f"{MODEL_NAME}: {self.tdp_w:.1f} W TDP x ({self.idle_fraction:g} + {1 - self.idle_fraction:g} x "
            f"utilisation {utilisation:.3f} of this process tree; the machine's {machine:.3f}); TDP from {self.source}"
        )
        return power_w * window_s, detail
