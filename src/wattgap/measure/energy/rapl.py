"""CPU energy from RAPL counters through Linux's powercap interface (Intel, and AMD since Linux 5.8):
``<root>/intel-rapl:N/energy_uj`` for package N and its ``dram`` sub-zone where present. Counters wrap
at ``max_energy_range_uj``; one wrap per window is corrected (a window would need minutes at hundreds
of watts to wrap twice). Reading needs root on kernels patched after CVE-2020-8694."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wattgap.measure.energy.base import EnergyMeter, Label, MeterUnavailable

DEFAULT_ROOT = "/sys/class/powercap"


@dataclass(frozen=True)
class RaplZone:
    path: Path
    name: str  # "package-0", "dram"
    max_range_uj: int

    def read_uj(self) -> int:
        return int((self.path / "energy_uj").read_text().strip())


def zones(root: str | Path = DEFAULT_ROOT) -> list[RaplZone]:
    """Package zones and their DRAM sub-zones, each checked readable; MeterUnavailable says why not."""
    base = Path(root)
    packages = sorted(p for p in base.glob("intel-rapl:*") if p.name.count(":") == 1) if base.is_dir() else []
    if not packages:
        raise MeterUnavailable(f"no RAPL zones under {base} (no powercap interface: a VM, or not Linux)")
    found: list[RaplZone] = []
    for package in packages:
        for path in [package, *sorted(package.glob(f"{package.name}:*"))]:
            try:
                name = (path / "name").read_text().strip()
                if path is not package and name != "dram":
                    continue  # core/uncore sub-zones are inside the package figure
                zone = RaplZone(path, name, int((path / "max_energy_range_uj").read_text().strip()))
                zone.read_uj()
            except (OSError, ValueError) as error:
                raise MeterUnavailable(
                    f"RAPL counter {path} is not readable ({type(error).__name__}: {error}); "
                    "reading it needs root on current kernels"
                ) from None
            found.append(zone)
    return found


class RaplMeter(EnergyMeter):
    """Energy of every CPU package (and DRAM where exposed) on the machine: RAPL counts the whole socket,
    other processes included."""

    meter = "rapl"
    label: Label = "measured"
    min_window_s = 0.01  # RAPL updates about every millisecond

    def __init__(self, root: str | Path = DEFAULT_ROOT) -> None:
        self.zones = zones(root)
        self.domain = "cpu-rapl"
        self._start: list[int] = []

    def start(self) -> None:
        self._start = [zone.read_uj() for zone in self.zones]

    def stop(self) -> tuple[float, str]:
        parts = []
        total_uj = 0
        for zone, begin in zip(self.zones, self._start, strict=True):
            delta = zone.read_uj() - begin
            if delta < 0:  # the counter wrapped
                delta += zone.max_range_uj
            total_uj += delta
            parts.append(f"{zone.path.name} ({zone.name}) {delta / 1e6:.3f} J")
        return total_uj / 1e6, "; ".join(parts)
