"""The measurement protocol: how long to warm up and measure, and when to stop."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from wattgap.errors import field_error


class Protocol(BaseModel):
    """How one cell is measured. Every field is stored with the run."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    warmup_min_iters: int = Field(10, ge=0)
    warmup_min_time_s: float = Field(1.0, ge=0)
    min_iters: int = Field(30, ge=2)
    min_time_s: float = Field(2.0, ge=0)
    max_time_s: float = Field(30.0, gt=0)
    max_iters: int = Field(1_000_000, ge=2)
    ci_rel_halfwidth: float = Field(0.02, gt=0, lt=1)
    confidence: float = Field(0.95, gt=0, lt=1)
    bootstrap_resamples: int = Field(1000, ge=100)
    noise_iqr_ratio: float = Field(0.10, gt=0)
    # true: max_time_s caps the warmup and the window outright, minimums included (at least CAPPED_ITERS
    # iterations are kept, and a window cut under min_iters is flagged); --max-time sets it
    hard_max_time: bool = False
    # each cell measured in this many fresh processes; its median and interval then come from a
    # t interval over their log medians (measure/stats.py). train-to-accuracy cells run once.
    repeats: int = Field(1, ge=1, le=100)
    # sweep: the cells in sweep order, all of them once per round, a round per repeat; interleaved: every
    # repeat of every cell in one seeded random order. Default: interleaved when repeats > 1.
    order: Literal["sweep", "interleaved"] | None = None
    cooldown_s: float = Field(0.0, ge=0, le=3600)  # a pause between two cells' processes

    @model_validator(mode="after")
    def _caps_above_minimums(self) -> Protocol:
        if self.max_time_s < self.min_time_s:
            raise field_error("protocol.max_time_s", self.max_time_s, f"at least min_time_s ({self.min_time_s})")
        if self.max_iters < self.min_iters:
            raise field_error("protocol.max_iters", self.max_iters, f"at least min_iters ({self.min_iters})")
        return self


CAPPED_ITERS = 5  # the fewest iterations a hard cap keeps: a median and its interval need some


PROBE_ITERS = 3  # what a probe of a batch search times, after one warmup iteration
PROBE = "probe"  # the stop reason of a probe's result: it shows the batch fits, and measures nothing


def probe_protocol(protocol: Protocol) -> Protocol:
    """What a probe of a batch search runs: one warmup iteration and PROBE_ITERS timed ones, in one
    process. Enough to show that the batch fits (memory is taken in the first iterations), too few to
    measure it; the search's answer is then measured with ``protocol``."""
    update = {"warmup_min_iters": 1, "warmup_min_time_s": 0.0, "min_time_s": 0.0, "repeats": 1}
    return protocol.model_copy(update=update | {"min_iters": PROBE_ITERS, "max_iters": PROBE_ITERS})
