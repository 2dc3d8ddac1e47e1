"""Training objectives. A model that owns its objective defines ``make_train_step(parts)`` (CycleGAN's
four-network step lives beside CycleGAN); every other model trains supervised: a 2-D output of a
classifier with cross-entropy against seeded random labels, anything else with MSE against a seeded
random target."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class StepParts:
    """What a training step is made of, set up by the backend for the cell: the inputs (on the device),
    the precision context, an optimiser factory, backward-and-step (through a gradient scaler in fp16),
    a seeded generator for targets, the device, and the classifier's number of classes (None: not one)."""

    fetch: Callable[[], torch.Tensor]
    autocast: Callable[[], contextlib.AbstractContextManager[Any]]
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    apply: Callable[[torch.Tensor, torch.optim.Optimizer], None]
    generator: torch.Generator
    device: torch.device
    classes: int | None
    batch_size: int


def train_step(model: nn.Module, parts: StepParts) -> Callable[[], None]:
    """One optimiser iteration of ``model`` as a callable."""
    own = getattr(model, "make_train_step", None)
    if callable(own):
        step: Callable[[], None] = own(parts)
        return step
    return supervised_step(model, parts)


def supervised_step(model: nn.Module, parts: StepParts) -> Callable[[], None]:
    opt = parts.optimizer(model.parameters())
    with torch.no_grad():
        output = model(parts.fetch())
    if parts.classes is not None and output.dim() == 2:
        labels = torch.randint(0, parts.classes, (parts.batch_size,), generator=parts.generator).to(parts.device)
        criterion: Callable[[torch.Tensor], torch.Tensor] = lambda out: nn.functional.cross_entropy(  # noqa: E731
            out.float(), labels
        )
    else:
        target = torch.randn(output.shape, generator=parts.generator).to(parts.device)
        criterion = lambda out: nn.functional.mse_loss(out.float(), target)  # noqa: E731

    def step() -> None:
        with parts.autocast():
            loss = criterion(model(parts.fetch()))
        parts.apply(loss, opt)

    return step
