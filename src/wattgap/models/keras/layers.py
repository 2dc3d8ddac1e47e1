"""Pieces the Keras zoo needs that Keras lacks, and the naming that pairs layers with PyTorch modules."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np


class Names:
    """Sequential layer names ("w0007_conv"), in the order the PyTorch twin registers its modules. A
    Dense layer after a Flatten records the flattened (H, W, C) shape: PyTorch flattens (C, H, W)."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix, self.count = prefix, 0

    def __call__(self, kind: str, flat: tuple[int, ...] | None = None) -> str:
        self.count += 1
        suffix = "_flat" + "x".join(map(str, flat)) if flat else ""
        return f"{self.prefix}w{self.count:04d}_{kind}{suffix}"


@keras.saving.register_keras_serializable(package="wattgap")
class ReflectionPad(keras.layers.Layer):
    def __init__(self, pad: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pad = pad

    def call(self, x: Any) -> Any:
        p = self.pad
        return keras.ops.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "pad": self.pad}


def _bins(size: int, out: int) -> np.ndarray:
    """PyTorch's adaptive average pooling as a matrix: bin i averages [floor(i*n/out), ceil((i+1)*n/out))."""
    matrix = np.zeros((out, size), dtype=np.float32)
    for i in range(out):
        start, end = (i * size) // out, -(-(i + 1) * size // out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


@keras.saving.register_keras_serializable(package="wattgap")
class AdaptiveAvgPool(keras.layers.Layer):
    """AdaptiveAvgPool2d((out, out)) of PyTorch for any input size, as two small matrix products."""

    def __init__(self, out: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.out = out

    def build(self, input_shape: Any) -> None:
        self.rows = keras.ops.convert_to_tensor(_bins(int(input_shape[1]), self.out))
        self.cols = keras.ops.convert_to_tensor(_bins(int(input_shape[2]), self.out))

    def call(self, x: Any) -> Any:
        rows = keras.ops.cast(self.rows, x.dtype)
        cols = keras.ops.cast(self.cols, x.dtype)
        return keras.ops.einsum("oh,bhwc,pw->bopc", rows, x, cols)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "out": self.out}


def conv(x: Any, names: Names, filters: int, kernel: int, stride: int = 1, pad: int = 0, bias: bool = True) -> Any:
    """Conv2d with PyTorch's symmetric zero padding (Keras "same" pads unevenly at stride 2)."""
    if pad:
        x = keras.layers.ZeroPadding2D(pad)(x)
    return keras.layers.Conv2D(filters, kernel, strides=stride, use_bias=bias, name=names("conv"))(x)


def batch_norm(x: Any, names: Names) -> Any:
    return keras.layers.BatchNormalization(epsilon=1e-5, momentum=0.9, name=names("bn"))(x)


def dense(x: Any, names: Names, units: int, flat: tuple[int, ...] | None = None) -> Any:
    return keras.layers.Dense(units, name=names("dense", flat))(x)


def flatten(x: Any) -> tuple[Any, tuple[int, ...]]:
    shape = tuple(int(v) for v in x.shape[1:])
    return keras.layers.Flatten()(x), shape
