"""Copy a PyTorch zoo model's weights into its Keras twin, layer by layer, converting layouts: convolution
kernels (out, in, kh, kw) -> (kh, kw, in, out), transposed ones (in, out, kh, kw) -> (kh, kw, out, in),
dense (out, in) -> (in, out) with the rows after a Flatten reordered from (C, H, W) to (H, W, C), batch
norm (weight, bias, running mean, running var)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

KINDS = {"Conv2d": "conv", "ConvTranspose2d": "convt", "Linear": "dense", "BatchNorm2d": "bn"}


def weighted_torch_modules(module: Any) -> list[Any]:
    return [m for m in module.modules() if type(m).__name__ in KINDS]


def weighted_keras_layers(model: Any) -> list[Any]:
    return sorted((layer for layer in model.layers if layer.weights), key=lambda layer: layer.name)


def copy_torch_weights(source: Any, target: Any) -> int:
    """Copy every weight; returns how many layers were copied. Raises ValueError when the two models do
    not line up (a different architecture)."""
    modules, layers = weighted_torch_modules(source), weighted_keras_layers(target)
    if len(modules) != len(layers):
        raise ValueError(f"{len(modules)} weighted PyTorch modules but {len(layers)} weighted Keras layers")
    for module, layer in zip(modules, layers, strict=True):
        kind = KINDS[type(module).__name__]
        if not re.search(rf"_{kind}(_|$)", layer.name):
            raise ValueError(f"PyTorch {type(module).__name__} paired with Keras layer {layer.name}")
        layer.set_weights(_convert(module, kind, layer.name))
    return len(layers)


def _numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().float().numpy()


def _convert(module: Any, kind: str, name: str) -> list[np.ndarray]:
    bias = [_numpy(module.bias)] if getattr(module, "bias", None) is not None else []
    if kind == "bn":
        return [_numpy(module.weight), _numpy(module.bias), _numpy(module.running_mean), _numpy(module.running_var)]
    weight = _numpy(module.weight)
    if kind in ("conv", "convt"):
        return [weight.transpose(2, 3, 1, 0), *bias]
    flat = re.search(r"_flat(\d+)x(\d+)x(\d+)$", name)
    if flat:  # rows in PyTorch's (C, H, W) flatten order -> Keras's (H, W, C)
        h, w, c = (int(v) for v in flat.groups())
        weight = weight.reshape(-1, c, h, w).transpose(0, 2, 3, 1).reshape(weight.shape[0], -1)
    return [weight.T, *bias]
