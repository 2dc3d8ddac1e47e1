"""Training objectives. A model that owns its objective defines ``make_train_step(parts)`` (CycleGAN's
four-network step lives beside CycleGAN, a transformers classifier's loss inside it); every other model
trains supervised: with the user's ``loss`` when the config names one, else a 2-D output of a classifier
with cross-entropy against seeded random labels, anything else with MSE against a seeded random target."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class StepParts:
    """What a training step is made of, set up by the backend for the cell: the inputs (on the device, in
    the order the model takes them), the precision context, an optimiser factory, backward-and-step
    (through a gradient scaler in fp16), a seeded generator for targets, the device, the classifier's
    number of classes (None: not one) and the user's loss (called with the output and the inputs)."""

    fetch: Callable[[], tuple[torch.Tensor, ...]]
    autocast: Callable[[], contextlib.AbstractContextManager[Any]]
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    apply: Callable[[torch.Tensor, torch.optim.Optimizer], None]
    generator: torch.Generator
    device: torch.device
    classes: int | None
    batch_size: int
    loss: Callable[..., torch.Tensor] | None = None


def train_step(model: nn.Module, parts: StepParts) -> Callable[[], None]:
    """One optimiser iteration of ``model`` as a callable."""
    own = getattr(model, "make_train_step", None)
    if callable(own):
        step: Callable[[], None] = own(parts)
        return step
    return supervised_step(model, parts)


def supervised_step(model: nn.Module, parts: StepParts) -> Callable[[], None]:
    opt = parts.optimizer(model.parameters())
    if parts.loss is not None:
        own = parts.loss

        def step_with_own_loss() -> None:
            inputs = parts.fetch()
            with parts.autocast():
                loss = own(model(*inputs), *inputs)
            parts.apply(loss.float(), opt)

        return step_with_own_loss
    with torch.no_grad():
        output = model(*parts.fetch())
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
            loss = criterion(model(*parts.fetch()))
        parts.apply(loss, opt)

    return step
