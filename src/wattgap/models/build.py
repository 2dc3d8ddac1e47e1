"""Building PyTorch models of the zoo or a user's, the seeded fp32 reference every backend starts from,
and parameter counts. Takes plain options, not the sweep config: models sit below every other layer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from wattgap.errors import ConfigError
from wattgap.models import MODELS, CustomModel, is_custom

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelOptions:
    """What shapes a built model: the input side, the number of classes, and a custom model's input shape
    (each None for the model's own default)."""

    image_size: int | None = None
    num_classes: int | None = None
    input_shape: tuple[int, ...] | None = None


def build_model(
    name: str, options: ModelOptions, num_classes: int | None = None
) -> tuple[nn.Module, tuple[int, ...], int | None]:
    """The model, its input shape without the batch axis, and its number of classes (None: not a
    classifier). ``num_classes`` (a dataset's) overrides the options'."""
    if not is_custom(name):
        spec = MODELS[name]
        num_classes = num_classes or options.num_classes
        model = spec.build_torch(options.image_size, num_classes)
        classes = (num_classes or spec.default_num_classes) if spec.task == "classification" else None
        return model, spec.input_shape(options.image_size), classes
    custom = CustomModel(name)
    model = custom.build_torch()
    shape = options.input_shape or custom.declared_input_shape(model)
    if shape is None:
        raise ConfigError(
            f"input_shape: custom model {name!r} declares no input_shape attribute; give input_shape in the config"
        )
    return model, shape, None


def reference_model(name: str, options: ModelOptions, seed: int) -> tuple[nn.Module, tuple[int, ...], bool]:
    """The fp32 PyTorch model every backend starts from, on the CPU in eval mode: the same seed, hence
    the same weights, as every cell's own. Also its input shape and whether it is a classifier."""
    import torch

    torch.manual_seed(seed)
    model, input_shape, classes = build_model(name, options)
    return model.eval(), input_shape, classes is not None


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
