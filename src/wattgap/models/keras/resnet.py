"""ResNet-18/50/101 in Keras: the twins of models/torch/resnet.py (v1.5, stride on the 3x3 convolution)."""

from __future__ import annotations

from typing import Any

import keras

from wattgap.models.keras.layers import Names, batch_norm, conv, dense


def _basic(x: Any, names: Names, planes: int, stride: int) -> Any:
    in_planes = int(x.shape[-1])
    out = keras.layers.ReLU()(batch_norm(conv(x, names, planes, 3, stride, 1, bias=False), names))
    out = batch_norm(conv(out, names, planes, 3, 1, 1, bias=False), names)
    identity = _shortcut(x, names, in_planes, planes, stride)
    return keras.layers.ReLU()(keras.layers.Add()([out, identity]))


def _bottleneck(x: Any, names: Names, planes: int, stride: int) -> Any:
    in_planes = int(x.shape[-1])
    out = keras.layers.ReLU()(batch_norm(conv(x, names, planes, 1, bias=False), names))
    out = keras.layers.ReLU()(batch_norm(conv(out, names, planes, 3, stride, 1, bias=False), names))
    out = batch_norm(conv(out, names, planes * 4, 1, bias=False), names)
    identity = _shortcut(x, names, in_planes, planes * 4, stride)
    return keras.layers.ReLU()(keras.layers.Add()([out, identity]))


def _shortcut(x: Any, names: Names, in_planes: int, out_planes: int, stride: int) -> Any:
    if stride == 1 and in_planes == out_planes:
        return x
    return batch_norm(conv(x, names, out_planes, 1, stride, bias=False), names)


def _resnet(block: Any, depths: tuple[int, ...], num_classes: int, image_size: int, in_channels: int) -> keras.Model:
    names = Names()
    inputs = keras.Input((image_size, image_size, in_channels))
    x = keras.layers.ReLU()(batch_norm(conv(inputs, names, 64, 7, 2, 3, bias=False), names))
    x = keras.layers.MaxPooling2D(3, 2)(keras.layers.ZeroPadding2D(1)(x))  # zeros = -inf after a ReLU
    for index, depth in enumerate(depths):
        for position in range(depth):
            x = block(x, names, 64 * 2**index, 2 if index > 0 and position == 0 else 1)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, dense(x, names, num_classes), name="resnet")


def resnet18(num_classes: int = 1000, image_size: int = 224, in_channels: int = 3) -> keras.Model:
    return _resnet(_basic, (2, 2, 2, 2), num_classes, image_size, in_channels)


def resnet50(num_classes: int = 1000, image_size: int = 224, in_channels: int = 3) -> keras.Model:
    return _resnet(_bottleneck, (3, 4, 6, 3), num_classes, image_size, in_channels)


def resnet101(num_classes: int = 1000, image_size: int = 224, in_channels: int = 3) -> keras.Model:
    return _resnet(_bottleneck, (3, 4, 23, 3), num_classes, image_size, in_channels)
