"""The CycleGAN generator (ResNet-9-block) and 70x70 PatchGAN discriminator in Keras: the twins of
models/torch/cyclegan.py. Instance normalisation is GroupNormalization with one group per channel."""

from __future__ import annotations

from typing import Any

import keras

from wattgap.models.keras.layers import Names, ReflectionPad, conv


def _norm(x: Any) -> Any:
    return keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, center=False, scale=False)(x)


def generator(
    image_size: int = 256, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, blocks: int = 9
) -> keras.Model:
    names = Names("g_")
    inputs = keras.Input((image_size, image_size, in_channels))
    x = keras.layers.ReLU()(_norm(conv(ReflectionPad(3)(inputs), names, ngf, 7)))
    width = ngf
    for _ in range(2):
        width *= 2
        x = keras.layers.ReLU()(_norm(conv(x, names, width, 3, 2, 1)))
    for _ in range(blocks):
        body = keras.layers.ReLU()(_norm(conv(ReflectionPad(1)(x), names, width, 3)))
        body = _norm(conv(ReflectionPad(1)(body), names, width, 3))
        x = keras.layers.Add()([x, body])
    for _ in range(2):
        width //= 2
        # ConvTranspose2d(k3, s2, p1, output_padding 1): the full transposed convolution, first row and
        # column dropped (Keras "same" would drop the last ones instead).
        x = keras.layers.Conv2DTranspose(width, 3, strides=2, name=names("convt"))(x)
        x = keras.layers.ReLU()(_norm(keras.layers.Cropping2D(((1, 0), (1, 0)))(x)))
    x = conv(ReflectionPad(3)(x), names, out_channels, 7)
    return keras.Model(inputs, keras.layers.Activation("tanh", dtype="float32")(x), name="cyclegan_generator")


def discriminator(image_size: int = 256, in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> keras.Model:
    names = Names("d_")
    inputs = keras.Input((image_size, image_size, in_channels))
    x = keras.layers.LeakyReLU(0.2)(conv(inputs, names, ndf, 4, 2, 1))
    for index in range(1, n_layers + 1):
        stride = 2 if index < n_layers else 1
        x = keras.layers.LeakyReLU(0.2)(_norm(conv(x, names, ndf * min(2**index, 8), 4, stride, 1)))
    return keras.Model(inputs, conv(x, names, 1, 4, 1, 1), name="cyclegan_discriminator")


def cyclegan(num_classes: int = 0, image_size: int = 256, in_channels: int = 3) -> keras.Model:
    """What inference runs: the A->B generator."""
    if image_size % 4 or image_size < 32:
        raise ValueError(f"cyclegan needs an image size divisible by 4 and at least 32, got {image_size}")
    return generator(image_size, in_channels, in_channels)
