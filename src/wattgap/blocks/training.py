"""train-to-accuracy's result block (workloads/train_to_accuracy.py fills it in)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, Field

from wattgap.blocks.base import Block


class EpochPoint(BaseModel):
    """The train-to-accuracy curve, one point per epoch; time and energy are cumulative over the compute
    windows (training and validation), data loading excluded."""

    epoch: int
    time_s: float
    energy_j: float | None = None
    net_energy_j: float | None = None
    top1: float


class Training(Block):
    """train-to-accuracy's block: the target, whether and when it was reached, and the curve."""

    kind: Literal["train-to-accuracy"] = "train-to-accuracy"
    COLUMNS: ClassVar[tuple[str, ...]] = ("time_to_accuracy_s", "energy_to_accuracy_j", "epochs", "reached")

    target_accuracy: float | None
    max_epochs: int
    reached: bool  # the target was met (False also when no target was set)
    epochs: int
    time_to_accuracy_s: float | None = None
    energy_to_accuracy_j: float | None = None
    net_energy_to_accuracy_j: float | None = None
    total_time_s: float
    total_energy_j: float | None = None
    final_top1: float
    best_top1: float
    curve: list[EpochPoint] = Field(default_factory=list)
