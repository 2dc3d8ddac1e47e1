"""Energy meters: RAPL over a powercap tree laid out as the kernel does, the CPU model on this machine's
real CPU counters, NVML's integration logic through a double of the device (no GPU here; the real NVML
path runs in test_gpu.py), windows, idle subtraction and labels."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import fast_config

import wattgap.api
from wattgap.config import EnergySettings
from wattgap.measure.energy import CellEnergy, EnergyReading, EnergyWindow, cpu_meter, merge_readings, meters_for
from wattgap.measure.energy.base import EnergyMeter, MeterUnavailable, UnavailableMeter
from wattgap.measure.energy.cpu_model import MODEL_NAME, CpuModelMeter, default_tdp_per_core_w, tdp_per_core_w
from wattgap.measure.energy.nvml import NvmlMeter, integrate_trapezoid
from wattgap.measure.energy.rapl import RaplMeter, zones
from wattgap.render.terminal import idle_line


def _zone(path: Path, name: str, energy_uj: int | str, max_uj: int = 262_143_328_850) -> Path:
    path.mkdir(parents=True)
    (path / "name").write_text(f"{name}\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


def _powercap(root: Path) -> tuple[Path, Path]:
    package = _zone(root / "intel-rapl:0", "package-0", 1_000_000)
    _zone(package / "intel-rapl:0:0", "core", 500_000)  # inside the package figure: not added again
    dram = _zone(package / "intel-rapl:0:1", "dram", 2_000_000)
    return package, dram


def test_rapl_sums_packages_and_dram_and_corrects_a_wrap(tmp_path: Path) -> None:
    package, dram = _powercap(tmp_path)
    assert [z.name for z in zones(tmp_path)] == ["package-0", "dram"]
    meter = RaplMeter(tmp_path)
    meter.start()
    (package / "energy_uj").write_text("13500000\n")  # +12.5 J
    (dram / "energy_uj").write_text("500000\n")  # wrapped: max - 2 J + 0.5 J
    energy_j, detail = meter.stop()
    assert math.isclose(energy_j, 12.5 + (262_143_328_850 - 2_000_000 + 500_000) / 1e6)
    assert "package-0" in detail and "dram" in detail
    assert meter.label == "measured"


def test_rapl_unreadable_or_absent_falls_back_to_the_labelled_estimate(tmp_path: Path) -> None:
    with pytest.raises(MeterUnavailable, match="no RAPL zones"):
        zones(tmp_path / "nothing")
    _zone(tmp_path / "intel-rapl:0", "package-0", "garbage")
    with pytest.raises(MeterUnavailable, match="not readable"):
        zones(tmp_path)
    meter = cpu_meter(EnergySettings(powercap_root=str(tmp_path)))
    assert isinstance(meter, CpuModelMeter) and meter.label == "estimated"
    assert "RAPL unused" in meter.source and "not readable" in meter.source


def test_cpu_model_follows_utilisation_of_the_real_counters() -> None:
    meter = CpuModelMeter(tdp_w=100.0, idle_fraction=0.3)
    window = EnergyWindow([meter])
    with window:
        time.sleep(0.6)
    idle = window.readings[0]
    with window:
        deadline = time.perf_counter() + 0.6
        while time.perf_counter() < deadline:
            pass
    busy = window.readings[0]
    for reading in (idle, busy):
        assert reading.label == "estimated" and reading.meter == MODEL_NAME and reading.energy_j is not None
        # between idle_fraction x TDP and TDP; the meter's own span is the window plus the microseconds its
        # start and stop take, so energy over the window's seconds can be off by a few parts in 10,000
        assert 30.0 * 0.999 <= (reading.power_w or 0) <= 100.0 * 1.001
        assert "energy.cpu_tdp_w from the config" in reading.detail
    assert (busy.power_w or 0) > (idle.power_w or 0)


def test_cpu_model_charges_the_cell_its_own_cpu_time_not_other_processes() -> None:
    """The estimate used machine-wide utilisation: another process spinning was charged to the cell."""
    meter = CpuModelMeter(tdp_w=100.0, idle_fraction=0.3)
    window = EnergyWindow([meter])
    orphan = (
        "import subprocess, sys; print(subprocess.Popen([sys.executable, '-c', 'while True: pass'], "
        "stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)"
    )  # the spinner holds none of its parent's pipes: the parent's output ends when the parent does
    spawned = subprocess.run([sys.executable, "-c", orphan], capture_output=True, text=True, timeout=60)
    spinner = int(spawned.stdout)
    try:  # its parent has exited: another process of the machine, not one of this tree
        time.sleep(0.3)
        with window:
            time.sleep(0.8)  # this process sleeps while the spinner burns a core
    finally:
        os.kill(spinner, signal.SIGKILL)
    (reading,) = window.readings
    assert (reading.power_w or 0) < 30.0 * 1.05, reading.detail  # at the idle floor: our tree did nothing
    assert "of this process tree; the machine's" in reading.detail


def test_cpu_tdp_comes_from_the_table_or_its_median() -> None:
    per_core, source = tdp_per_core_w("AMD EPYC 7763 64-Core Processor")
    assert per_core == 280 / 64 and "EPYC 7763" in source
    per_core, source = tdp_per_core_w("Intel(R) Xeon(R) Platinum 8380 CPU @ 2.30GHz")
    assert per_core == 270 / 40
    per_core, source = tdp_per_core_w("Some Unknown CPU 1234")
    assert per_core == default_tdp_per_core_w() and "median" in source


class DeviceDouble(NvmlMeter):
    """Stands in for an NVIDIA GPU drawing ``watts`` (this machine has none): it overrides only the three
    methods that talk to NVML; the integration, threading and failure handling are the real ones."""

    def __init__(self, watts: float, counter: bool = True, fail_after_s: float | None = None, **kwargs: object):
        self.watts, self.counter, self.fail_after_s = watts, counter, fail_after_s
        self.t0 = time.perf_counter()
        super().__init__("GPU-double", **kwargs)  # type: ignore[arg-type]

    def _open(self) -> None:
        pass

    def _read_counter_mj(self) -> int:
        if not self.counter:
            raise RuntimeError("NVMLError_NotSupported")
        return int((time.perf_counter() - self.t0) * self.watts * 1000)

    def _read_power_w(self) -> float:
        if self.fail_after_s is not None and time.perf_counter() - self.t0 > self.fail_after_s:
            raise RuntimeError("NVMLError_GpuIsLost")
        return self.watts


def test_nvml_counter_and_polled_power_agree_on_the_same_window() -> None:
    counter = DeviceDouble(250.0, mode="counter")
    polled = DeviceDouble(250.0, mode="polled", poll_interval_s=0.01)
    window = EnergyWindow([counter, polled])
    with window:
        time.sleep(0.5)
    by_meter = {r.meter: r for r in window.readings}
    assert set(by_meter) == {"nvml-counter", "nvml-polled"}
    for reading in window.readings:
        assert reading.label == "measured" and reading.domain == "gpu:GPU-double"
        assert reading.energy_j == pytest.approx(250.0 * reading.window_s, rel=0.05)
    assert by_meter["nvml-counter"].energy_j == pytest.approx(by_meter["nvml-polled"].energy_j, rel=0.05)


def test_nvml_without_a_counter_polls_and_a_failure_mid_window_degrades_the_reading() -> None:
    assert DeviceDouble(100.0, counter=False).mode == "polled"
    failing = DeviceDouble(100.0, mode="polled", poll_interval_s=0.01, fail_after_s=0.1)
    healthy = UnavailableMeter("other", "for the label test")
    window = EnergyWindow([failing, CpuModelMeter(tdp_w=10.0), healthy])
    with window:
        time.sleep(0.3)
    gpu, cpu, other = window.readings
    assert gpu.label == "unavailable" and gpu.energy_j is None and "GpuIsLost" in gpu.detail
    assert cpu.label == "estimated" and cpu.energy_j is not None  # the other meters are unaffected
    assert other.label == "unavailable" and other.detail == "for the label test"


def test_real_nvml_path_reports_why_it_cannot_measure() -> None:
    """On this machine NVML's library is absent; on a GPU machine the UUID is bogus: either way one line."""
    with pytest.raises(MeterUnavailable, match="NVML"):
        NvmlMeter("GPU-00000000-0000-0000-0000-000000000000")
    meters = meters_for("mps", EnergySettings())
    assert isinstance(meters[0], UnavailableMeter) and meters[0].domain == "mps"
    assert meters_for("cpu", EnergySettings(enabled=False)) == []


def test_trapezoid_is_exact_for_a_ramp() -> None:
    ramp = [(t / 10, 100.0 + 50.0 * t / 10) for t in range(11)]  # 100 W -> 150 W over 1 s
    assert integrate_trapezoid(ramp) == pytest.approx(125.0)


class Constant(EnergyMeter):
    label = "measured"
    min_window_s = 1.0

    def __init__(self, domain: str, watts: float) -> None:
        self.domain, self.meter, self.watts = domain, "constant", watts
        self.started = 0.0

    def start(self) -> None:
        self.started = time.perf_counter()

    def stop(self) -> tuple[float, str]:
        return self.watts * (time.perf_counter() - self.started), "constant power"


def test_short_windows_are_flagged_and_net_energy_subtracts_idle() -> None:
    window = EnergyWindow([Constant("gpu:a", 200.0), CpuModelMeter(tdp_w=50.0)])
    with window:
        time.sleep(0.05)
    assert "shorter than constant resolves" in window.readings[0].warning
    idle = {"gpu:a": {"power_w": 50.0}, "cpu": {"power_w": 10.0}}
    energy = CellEnergy.from_readings(window.readings, samples=100, idle=idle)
    gpu = window.readings[0]
    assert gpu.net_energy_j == pytest.approx(gpu.energy_j - 50.0 * gpu.window_s)  # type: ignore[operator]
    assert energy.label == "estimated"  # one domain estimated: the total is an estimate
    assert energy.energy_j == pytest.approx(sum(r.energy_j for r in window.readings))  # type: ignore[misc]
    assert energy.j_per_sample == pytest.approx(energy.energy_j / 100)  # type: ignore[operator]
    assert energy.samples_per_j == pytest.approx(100 / energy.energy_j)  # type: ignore[operator]
    assert any("shorter than" in w for w in energy.warnings)


def test_labels_and_merged_epochs() -> None:
    def reading(domain: str, label: str, energy: float | None) -> EnergyReading:
        return EnergyReading(domain=domain, meter="m", label=label, energy_j=energy, window_s=1.0)  # type: ignore[arg-type]

    assert CellEnergy.from_readings([reading("a", "measured", 1.0)], 1).label == "measured"
    partial = CellEnergy.from_readings([reading("a", "measured", 1.0), reading("b", "unavailable", None)], 1)
    assert partial.label == "partial" and partial.energy_j == 1.0
    assert CellEnergy.from_readings([reading("b", "unavailable", None)], 1).label == "unavailable"
    merged = merge_readings([[reading("a", "measured", 2.0)], [reading("a", "measured", 3.0)]])
    assert len(merged) == 1 and merged[0].energy_j == 5.0 and merged[0].window_s == 2.0
    lost = merge_readings([[reading("a", "measured", 2.0)], [reading("a", "unavailable", None)]])
    assert lost[0].energy_j is None and lost[0].label == "unavailable"


@pytest.mark.slow  # real runs
@pytest.mark.serial  # only a quiet idle measurement is reused: no other test beside it
def test_a_recent_quiet_idle_measurement_on_this_machine_is_reused(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    config = fast_config(models=["helpers.usermodels:tiny"], energy={"idle_s": 0.3, "idle_busy_max": 1.0})
    first = wattgap.api.run(config, db=db)
    assert first.environment.idle_power and first.environment.idle_power_reused is None
    second = wattgap.api.run(config, db=db)
    reused = second.environment.idle_power_reused
    assert reused["run_id"] == first.run_id and 0 <= reused["age_s"] < 600
    assert second.environment.idle_power == first.environment.idle_power
    assert f"reused from run {first.run_id}, measured" in idle_line(second)
    third = wattgap.api.run(config, db=db)  # a reuse is never reused: the measurement is
    assert third.environment.idle_power_reused["run_id"] == first.run_id
    for energy in ({"idle_s": 0.3, "idle_busy_max": 1.0, "idle_reuse_s": 0}, {"idle_s": 0.4, "idle_busy_max": 1.0}):
        own = wattgap.api.run({**config, "energy": energy}, db=db)  # reuse off, or another idle window
        assert own.environment.idle_power_reused is None and own.environment.idle_power
