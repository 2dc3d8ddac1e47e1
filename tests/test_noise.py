"""The noise audit: a cell measured while another process loads the CPU is flagged suspect, the same cell
on a quiet machine is not (real cells, a real busy process); the GPU part through a fake NVML probe that
subclasses the real one (no GPU here; `pytest -m gpu` runs the real probe)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FAST_PROTOCOL, fast_config

import wattgap.api
from wattgap.measure.noise import GpuProbe, GpuSample, NoiseSettings, NoiseWindow
from wattgap.render.format import result_notes


class ScriptedGpu(GpuProbe):
    """NVML's answers for a GPU this machine lacks: the clocks and throttle reasons given."""

    def __init__(self, samples: list[GpuSample]) -> None:
        self.samples = samples

    def sample(self) -> GpuSample:
        return self.samples[min(len(self.samples) - 1, int(time.monotonic() * 10) % len(self.samples))]

    def close(self) -> None:
        pass


def test_gpu_clocks_and_throttling_flag_a_cell() -> None:
    hot = GpuSample(sm_clock_mhz=1200, max_sm_clock_mhz=1980, throttle_reasons=0x20 | 0x1, temperature_c=88)
    with NoiseWindow(NoiseSettings(), "cuda:0", probe=ScriptedGpu([hot])) as window:
        time.sleep(0.25)
    audit = window.audit
    assert audit is not None and audit.gpu is not None and audit.gpu.samples >= 2
    assert audit.gpu.throttles == ["software thermal slowdown"]  # 0x1 (idle) is not throttling
    assert audit.gpu.max_temperature_c == 88 and audit.gpu.min_sm_clock_share == pytest.approx(1200 / 1980)
    assert any(reason.startswith("SM clock down to 61% of its maximum") for reason in audit.suspect)
    assert "GPU throttled: software thermal slowdown" in audit.suspect
    cool = GpuSample(sm_clock_mhz=1980, max_sm_clock_mhz=1980, throttle_reasons=0x1)
    with NoiseWindow(NoiseSettings(), "cuda:0", probe=ScriptedGpu([cool])) as quiet:
        time.sleep(0.15)
    assert quiet.audit is not None and not [r for r in quiet.audit.suspect if "GPU" in r or "SM" in r]
    with NoiseWindow(NoiseSettings(enabled=False), "cuda:0", probe=ScriptedGpu([hot])) as off:
        pass
    assert off.audit is None


@pytest.mark.slow  # real runs
@pytest.mark.serial  # the quiet run needs a quiet machine: no other test beside it
def test_a_cell_measured_beside_a_busy_process_is_suspect_and_a_quiet_one_is_not(tmp_path: Path) -> None:
    config = fast_config(threads=[1], protocol={**FAST_PROTOCOL, "min_time_s": 0.6, "max_time_s": 1.0})
    quiet = wattgap.api.run(config, db=tmp_path / "w.db").results[0]
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        loud = wattgap.api.run(config, db=tmp_path / "w.db").results[0]
    finally:
        busy.kill()
        busy.wait()
    assert quiet.noise is not None and loud.noise is not None
    assert loud.noise.other_cpu_cores is not None and loud.noise.other_cpu_cores > 0.5
    assert any(reason.startswith("other processes used") for reason in loud.noise.suspect)
    assert "SUSPECT, the machine was not quiet: other processes used" in result_notes(loud)
    assert quiet.noise.suspect == [], quiet.noise
    assert quiet.noise.window_s >= 0.6 and quiet.noise.load_before is not None
