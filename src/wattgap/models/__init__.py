"""The model zoo: one registry of ModelSpec. Building a model imports its framework lazily, so listing
the zoo costs nothing. A user's own models come from models/sources.py."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from torch import nn

Task = Literal["classification", "image-translation"]


@dataclass(frozen=True)
class ModelSpec:
    """What the zoo knows of a model: its task, its default input, and the reference parameter counts
    it must reproduce (per component, at the reference image size and number of classes)."""

    name: str
    description: str
    task: Task
    torch_builder: str  # "module:function" under wattgap.models.torch, and its twin under wattgap.models.keras
    default_image_size: int
    default_num_classes: int
    in_channels: int = 3
    reference_image_size: int = 224
    reference_num_classes: int = 1000
    reference_params: dict[str, int] = field(default_factory=dict)
    batch_norm_stride: int | None = None  # batch norm down to a last stage this many times smaller than the input

    def train_reason(self, image_size: int | None, batch_size: int) -> str:
        """Why training at ``batch_size`` cannot run ('' when it can): batch norm in training needs more
        than one value per channel, and a ResNet's last stage is its input side over 32 (1x1 at 32x32)."""
        if self.batch_norm_stride is None:
            return ""
        side = self.input_shape(image_size)[1]
        last = -(-side // self.batch_norm_stride)
        if batch_size * last * last > 1:
            return ""
        return (
            f"training at batch {batch_size} with {side}x{side} inputs leaves {self.name}'s last stage {last}x{last}: "
            f"batch norm cannot normalise one value per channel (use --image-size {self.batch_norm_stride + 1} "
            "or more, or a batch of 2 or more)"
        )

    def input_shape(self, image_size: int | None = None) -> tuple[int, int, int]:
        side = image_size or self.default_image_size
        return (self.in_channels, side, side)

    def build_torch(self, image_size: int | None = None, num_classes: int | None = None) -> nn.Module:
        return self._build("torch", image_size, num_classes)

    def build_keras(self, image_size: int | None = None, num_classes: int | None = None) -> Any:
        """The Keras twin (channels last), from the module of the same name under models/keras."""
        return self._build("keras", image_size, num_classes)

    def _build(self, framework: str, image_size: int | None, num_classes: int | None) -> Any:
        module_name, function = self.torch_builder.split(":")
        module = importlib.import_module(f"wattgap.models.{framework}.{module_name}")
        builder: Callable[..., Any] = getattr(module, function)
        return builder(
            num_classes=num_classes if num_classes is not None else self.default_num_classes,
            image_size=image_size or self.default_image_size,
            in_channels=self.in_channels,
        )


_CLASSIFIER: Task = "classification"
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "conv6",
            "six 3x3 convolutions and three FC layers (CIFAR-10)",
            _CLASSIFIER,
            "conv6:conv6",
            default_image_size=32,
            default_num_classes=10,
            reference_image_size=32,
            reference_num_classes=10,
            reference_params={"model": 2_262_602},
        ),
        ModelSpec(
            "vgg16",
            "VGG16, configuration D",
            _CLASSIFIER,
            "vgg:vgg16",
            default_image_size=224,
            default_num_classes=1000,
            reference_params={"model": 138_357_544},
        ),
        ModelSpec(
            "resnet18",
            "ResNet-18",
            _CLASSIFIER,
            "resnet:resnet18",
            default_image_size=224,
            default_num_classes=1000,
            reference_params={"model": 11_689_512},
            batch_norm_stride=32,
        ),
        ModelSpec(
            "resnet50",
            "ResNet-50 (v1.5)",
            _CLASSIFIER,
            "resnet:resnet50",
            default_image_size=224,
            default_num_classes=1000,
            reference_params={"model": 25_557_032},
            batch_norm_stride=32,
        ),
        ModelSpec(
            "resnet101",
            "ResNet-101 (v1.5)",
            _CLASSIFIER,
            "resnet:resnet101",
            default_image_size=224,
            default_num_classes=1000,
            reference_params={"model": 44_549_160},
            batch_norm_stride=32,
        ),
        ModelSpec(
            "cyclegan",
            "CycleGAN: two ResNet-9-block generators, two 70x70 PatchGAN discriminators; inference runs one generator",
            "image-translation",
            "cyclegan:cyclegan",
            default_image_size=256,
            default_num_classes=0,
            reference_image_size=256,
            reference_num_classes=0,
            reference_params={"generator": 11_378_179, "discriminator": 2_764_737},
        ),
    )
}


def is_custom(name: str) -> bool:
    """A user's model (any source but the zoo: models/sources.py)."""
    return name not in MODELS
