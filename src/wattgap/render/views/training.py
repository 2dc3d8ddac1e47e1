"""train-to-accuracy's view: whether and when a cell reached its target, and the report's section of
curves (top-1 against time and energy) and targets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wattgap.blocks import Training
from wattgap.render import plots
from wattgap.render.content import Section, Table, figure_plots
from wattgap.render.format import seconds
from wattgap.render.views.base import View
from wattgap.text import number

if TYPE_CHECKING:
    from wattgap.results import CellResult


def note(training: Training) -> str:
    if training.reached:
        return f"target reached in {training.epochs} epochs, {seconds(training.time_to_accuracy_s)}"
    return f"{training.epochs} epochs, target not reached"


def section(trained: list[CellResult]) -> Section:
    blocks = [(result, result.block) for result in trained if isinstance(result.block, Training)]
    curves = [(result.cell.label, block) for result, block in blocks]
    figures = figure_plots("training-time", "Top-1 against time", plots.training(curves, "time"))
    figures += figure_plots("training-energy", "Top-1 against energy", plots.training(curves, "energy"))
    table = Table(["cell", "target", "reached", "epochs", "time to target", "energy to target", "best top-1"], [])
    for result, training in blocks:
        table.rows.append(
            [
                result.cell.label,
                "-" if training.target_accuracy is None else f"{training.target_accuracy:.3f}",
                "yes" if training.reached else "no",
                str(training.epochs),
                seconds(training.time_to_accuracy_s),
                "-" if training.energy_to_accuracy_j is None else f"{number(training.energy_to_accuracy_j)} J",
                f"{training.best_top1:.3f}",
            ]
        )
    return Section("training", "Training to a target accuracy", [], figures, [table])


VIEW = View("train-to-accuracy", note, section)
