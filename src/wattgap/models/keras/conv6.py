"""Conv6 in Keras: the twin of models/torch/conv6.py."""

from __future__ import annotations

import keras

from wattgap.models.keras.layers import Names, conv, dense, flatten


def conv6(num_classes: int = 10, image_size: int = 32, in_channels: int = 3) -> keras.Model:
    if image_size % 8:
        raise ValueError(f"conv6 needs an image size divisible by 8, got {image_size}")
    names = Names()
    inputs = keras.Input((image_size, image_size, in_channels))
    x = inputs
    for width in (64, 128, 256):
        for _ in range(2):
            x = keras.layers.ReLU()(conv(x, names, width, 3, pad=1))
        x = keras.layers.MaxPooling2D(2)(x)
    x, shape = flatten(x)
    x = keras.layers.ReLU()(dense(x, names, 256, flat=shape))
    x = keras.layers.ReLU()(dense(x, names, 256))
    return keras.Model(inputs, dense(x, names, num_classes), name="conv6")
