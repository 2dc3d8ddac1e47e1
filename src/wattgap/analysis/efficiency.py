"""What each joule buys: samples per joule, accuracy per kWh, the GreenQuotientIndex, CO2-equivalent and
money, per cell of a run, ranked.

The GreenQuotientIndex (GQI) of Watt For What (arXiv 2310.06522), as far as it can be reconstructed
(the watt-for-what study): GQI = beta x accuracy^alpha / log10(electricity). The published alpha and beta are
unknown, so both are parameters (1 by default), as is the unit electricity is expressed in. log10 of an
electricity of at most 1 unit is zero or negative, where the index is infinite or negative: the ``strict``
variant refuses such cells (no index, with the reason); the ``log1p`` variant uses log10(1 + electricity),
defined for every positive electricity but not the published formula.

The work each cell's figures refer to: a train-to-accuracy cell's whole training run (to the target when
reached, otherwise to its last epoch); every other cell per 1,000 samples (inferences or training
samples). Energy is the gross figure of the measured windows by default (what a meter at the wall sees,
and what is billed), or the figure above the run's idle power."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from wattgap.blocks import Training
from wattgap.errors import ConfigError, field_error
from wattgap.results import CellResult, Run
from wattgap.text import number

JOULES_PER = {"J": 1.0, "Wh": 3600.0, "kWh": 3.6e6}
# Each ranking and the Efficiency field it reads (the co2 ranking reads grams, co2_g).
RANK_FIELDS = {
    "gqi": "gqi",
    "accuracy_per_kwh": "accuracy_per_kwh",
    "samples_per_j": "samples_per_j",
    "cost": "cost",
    "co2": "co2_g",
}
RANKINGS = tuple(RANK_FIELDS)
LOWER_IS_BETTER = ("cost", "co2")
PER_SAMPLES = 1000
# IEA's world-average carbon intensity of electricity generation, about 475 gCO2e/kWh (2019); a
# placeholder for the grid a user actually draws from.
DEFAULT_CARBON_G_PER_KWH = 475.0


class EfficiencyParams(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    alpha: float = Field(1.0, gt=0)
    beta: float = Field(1.0, gt=0)
    electricity_unit: Literal["J", "Wh", "kWh"] = "Wh"
    gqi_variant: Literal["strict", "log1p"] = "strict"
    carbon_intensity: float = Field(DEFAULT_CARBON_G_PER_KWH, ge=0)  # gCO2e per kWh
    price_per_kwh: float = Field(0.15, ge=0)
    price_per_device_hour: float = Field(0.0, ge=0)
    currency: str = "USD"
    energy: Literal["gross", "net"] = "gross"

    def formula(self) -> str:
        log = "log10(1 + E)" if self.gqi_variant == "log1p" else "log10(E)"
        return (
            f"GQI = {self.beta:g} x accuracy^{self.alpha:g} / {log}, E in {self.electricity_unit} "
            f"(reconstructed from Watt For What, arXiv 2310.06522; alpha and beta are assumptions; "
            f"variant {self.gqi_variant})"
        )


@dataclass(frozen=True)
class Efficiency:
    label: str  # the cell
    model: str
    workload: str
    basis: str  # "training run" or "1000 samples"
    energy_label: str  # measured / estimated / partial / unavailable
    accuracy: float | None
    energy_j: float | None  # of the basis
    time_s: float | None  # of the basis
    samples_per_j: float | None
    accuracy_per_kwh: float | None
    gqi: float | None
    co2_g: float | None
    cost: float | None
    note: str = ""

    def metric(self, rank: str) -> float | None:
        """The value of ranking ``rank`` (one of RANKINGS)."""
        value: float | None = getattr(self, RANK_FIELDS[rank])
        return value


def gqi(accuracy: float, energy_j: float, params: EfficiencyParams) -> tuple[float | None, str]:
    """The index and, when it is refused, why."""
    electricity = energy_j / JOULES_PER[params.electricity_unit]
    if params.gqi_variant == "log1p":
        return params.beta * accuracy**params.alpha / math.log10(1 + electricity), ""
    if electricity <= 1:
        return None, (
            f"electricity {number(electricity)} {params.electricity_unit} <= 1 makes log10 <= 0: no index; "
            "use a smaller unit (--electricity-unit J) or --gqi-variant log1p"
        )
    return params.beta * accuracy**params.alpha / math.log10(electricity), ""


def cell_efficiency(result: CellResult, params: EfficiencyParams) -> Efficiency:
    energy = result.energy
    training = result.block if isinstance(result.block, Training) else None
    samples = energy.samples if energy else None
    window_energy = (energy.energy_j if params.energy == "gross" else energy.net_energy_j) if energy else None
    if training is not None:
        basis = "training run"
        time_s = training.time_to_accuracy_s if training.reached else training.total_time_s
        curve_point = training.curve[-1] if training.curve else None
        gross = curve_point.energy_j if curve_point else None
        net = curve_point.net_energy_j if curve_point else None
        basis_energy = gross if params.energy == "gross" else net
    else:
        basis = f"{PER_SAMPLES} samples"
        time_s = PER_SAMPLES / result.throughput_sps if result.throughput_sps else None
        basis_energy = window_energy / samples * PER_SAMPLES if window_energy is not None and samples else None
    per_joule = samples / window_energy if samples and window_energy and window_energy > 0 else None
    note = "" if energy and energy.energy_j is not None else "no energy reading"
    if params.energy == "net" and basis_energy is None and not note:
        rejected = [text for text in (energy.warnings if energy else []) if "no net energy" in text]
        note = rejected[0] if rejected else "no idle power measured: net energy unknown"
    accuracy = result.accuracy_top1
    kwh = basis_energy / 3.6e6 if basis_energy is not None else None
    index = None
    if accuracy is not None and basis_energy is not None:
        if basis_energy > 0:
            index, refused = gqi(accuracy, basis_energy, params)
            note = note or refused
        else:
            note = note or "energy above idle is not positive: no index"
    return Efficiency(
        label=result.cell.label,
        model=result.cell.model,
        workload=result.cell.workload,
        basis=basis,
        energy_label=energy.label if energy else "unavailable",
        accuracy=accuracy,
        energy_j=basis_energy,
        time_s=time_s,
        samples_per_j=per_joule,
        accuracy_per_kwh=accuracy / kwh if accuracy is not None and kwh else None,
        gqi=index,
        co2_g=kwh * params.carbon_intensity if kwh is not None else None,
        cost=(
            kwh * params.price_per_kwh + time_s / 3600 * params.price_per_device_hour
            if kwh is not None and time_s is not None
            else None
        ),
        note=note,
    )


def default_rank(rows: list[Efficiency]) -> tuple[str, str]:
    """The ranking used when none is asked for, and why: the first of GQI, accuracy per kWh and samples
    per joule that some cell has. GQI first, as Watt For What ranks; but its strict form is undefined for
    electricity of 1 unit or less (every small CPU run in Wh), and a ranking of undefined values would be
    an arbitrary order."""
    if any(row.gqi is not None for row in rows):
        return "gqi", "the Watt For What index, defined for some cells"
    if any(row.accuracy_per_kwh is not None for row in rows):
        return "accuracy_per_kwh", "no cell has a GQI (strict GQI is undefined for electricity <= 1 unit)"
    return "samples_per_j", "no cell has an accuracy, so neither GQI nor accuracy per kWh"


def efficiency(run: Run, params: EfficiencyParams, rank: str | None = None) -> tuple[str, list[Efficiency]]:
    """The ranking metric used and the ok cells ranked by it (best first; cells without it last). Without
    ``rank``, the default of ``default_rank``; a ``rank`` that no cell has is refused (ConfigError)."""
    rows = [cell_efficiency(r, params) for r in run.results if r.status == "ok" and not r.probe]
    asked = rank is not None
    if rank is None:
        rank = default_rank(rows)[0]
    if rank not in RANK_FIELDS:
        raise field_error("--rank", rank, RANKINGS)
    if asked and rows and all(row.metric(rank) is None for row in rows):  # a ranking of nothing: sweep order
        accuracy = rank in ("gqi", "accuracy_per_kwh") and all(row.accuracy is None for row in rows)
        reasons = ["no cell has an accuracy (a dataset gives one)"] if accuracy else []
        reasons += sorted({row.note for row in rows if row.note})
        raise ConfigError(
            f"--rank {rank}: no cell of run {run.run_id} has a {rank} to rank by ({'; '.join(reasons) or 'none'}); "
            f"rank by {default_rank(rows)[0]} instead, or leave --rank out"
        )
    lower_is_better = rank in LOWER_IS_BETTER

    def key(row: Efficiency) -> tuple[bool, float]:
        value = row.metric(rank)
        if value is None:
            return True, 0.0
        return False, value if lower_is_better else -value

    return rank, sorted(rows, key=key)
