"""Conv6: the six-convolution CIFAR network of the lottery-ticket literature."""

from __future__ import annotations

from torch import nn


def conv6(num_classes: int = 10, image_size: int = 32, in_channels: int = 3) -> nn.Module:
    """conv 64,64,pool,128,128,pool,256,256,pool then FC 256,256,num_classes (ReLU, no normalisation)."""
    if image_size % 8:
        raise ValueError(f"conv6 needs an image size divisible by 8, got {image_size}")
    layers: list[nn.Module] = []
    channels = in_channels
    for width in (64, 128, 256):
        for _ in range(2):
            layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            channels = width
        layers.append(nn.MaxPool2d(2))
    side = image_size // 8
    head = [
        nn.Flatten(),
        nn.Linear(256 * side * side, 256),
        nn.ReLU(inplace=True),
        nn.Linear(256, 256),
        nn.ReLU(inplace=True),
        nn.Linear(256, num_classes),
    ]
    return nn.Sequential(*layers, *head)
