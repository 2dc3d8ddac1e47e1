"""VGG16 (configuration D) in Keras: the twin of models/torch/vgg.py."""

from __future__ import annotations

import keras

from wattgap.models.keras.layers import AdaptiveAvgPool, Names, conv, dense, flatten

_VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


def vgg16(num_classes: int = 1000, image_size: int = 224, in_channels: int = 3) -> keras.Model:
    if image_size < 32:
        raise ValueError(f"vgg16 needs an image size of at least 32, got {image_size}")
    names = Names()
    inputs = keras.Input((image_size, image_size, in_channels))
    x = inputs
    for item in _VGG16:
        pool = item == "M"
        x = keras.layers.MaxPooling2D(2)(x) if pool else keras.layers.ReLU()(conv(x, names, int(item), 3, pad=1))
    if x.shape[1] != 7:
        x = AdaptiveAvgPool(7)(x)
    x, shape = flatten(x)
    x = keras.layers.Dropout(0.5)(keras.layers.ReLU()(dense(x, names, 4096, flat=shape)))
    x = keras.layers.Dropout(0.5)(keras.layers.ReLU()(dense(x, names, 4096)))
    return keras.Model(inputs, dense(x, names, num_classes), name="vgg16")
