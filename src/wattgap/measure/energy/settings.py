"""How energy is metered: the settings the meters of this package read."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class EnergySettings(BaseModel):
    """How energy is metered (measure/energy). Stored with the run."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    enabled: bool = True
    idle_s: float = Field(3.0, ge=0, le=600)  # idle power measured once per run; 0: no net energy
    # a run reuses the idle power of an earlier run in the same database, on the same machine and devices,
    # measured (quiet) at most this long ago; 0: every run measures its own
    idle_reuse_s: float = Field(3600.0, ge=0)
    # Share of the machine's CPU time other work may take during the idle measurement before the idle
    # reading is flagged as not idle (and no net energy is computed from it).
    idle_busy_max: float = Field(0.10, gt=0, le=1)
    gpu_mode: Literal["auto", "counter", "polled"] = "auto"  # NVML energy counter or polled power
    poll_interval_s: float = Field(0.05, gt=0, le=10)
    cpu_tdp_w: float | None = Field(None, gt=0)  # overrides the TDP the CPU estimate uses
    cpu_idle_fraction: float = Field(0.3, ge=0, le=1)  # share of TDP the CPU estimate draws at zero load
    powercap_root: str = "/sys/class/powercap"
