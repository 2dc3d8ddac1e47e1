"""Real data for train-to-accuracy and for the top-1 of infer cells: ``digits`` (ships inside
scikit-learn: always offline), ``cifar10`` (the official python archive, checksum verified) and
``folder`` (one subfolder per class). Every loader returns uint8 NHWC images and int64 labels, split into
train and validation; ``model_input`` turns images into the float32 NCHW tensors a model takes. Loading
happens before any timed window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from wattgap.errors import ConfigError

if TYPE_CHECKING:
    from wattgap.config import SweepConfig


@dataclass(frozen=True)
class Dataset:
    name: str
    source: str  # where the data came from, for the record
    x_train: np.ndarray  # uint8, (N, H, W, C)
    y_train: np.ndarray  # int64, (N,)
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: tuple[str, ...]

    @property
    def classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> dict[str, object]:
        return {
            "dataset": self.name,
            "dataset_source": self.source,
            "train_samples": len(self.y_train),
            "validation_samples": len(self.y_val),
            "classes": self.classes,
        }


def load(config: SweepConfig, side: int) -> Dataset:
    """The config's dataset. ``side``: the square size folder images are resized to when read (the other
    datasets have one native size and are resized by ``model_input``)."""
    from wattgap.datasets import cifar10, digits, folder

    if config.dataset == "digits":
        return digits.load(config.validation_fraction, config.seed)
    if config.dataset == "cifar10":
        return cifar10.load(config.dataset_path)
    if config.dataset == "folder" and config.dataset_path:
        return folder.load(config.dataset_path, side, config.validation_fraction, config.seed)
    raise ConfigError(f"dataset: got {config.dataset!r}; allowed: digits, cifar10, folder (with dataset_path)")


def check(config: SweepConfig) -> None:
    """Cheap checks before a run starts, so that a bad path or a corrupt archive is a one-line error
    rather than a sweep of failed cells."""
    if config.dataset == "cifar10" and config.dataset_path:
        from wattgap.datasets import cifar10

        cifar10.locate(config.dataset_path)
    elif config.dataset == "folder" and config.dataset_path:
        from wattgap.datasets import folder

        folder.check(config.dataset_path)


def stratified_split(
    x: np.ndarray, y: np.ndarray, validation_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=validation_fraction, random_state=seed, stratify=y
    )
    return x_train, y_train.astype(np.int64), x_val, y_val.astype(np.int64)


def model_input(images: np.ndarray, channels: int, side: int) -> np.ndarray:
    """uint8 NHWC images -> float32 NCHW in [0, 1] at ``side`` x ``side`` (bilinear) with ``channels``
    channels (grey repeated for colour models, colour averaged for one-channel models)."""
    from PIL import Image

    if images.shape[1:3] != (side, side):
        planes = [img[..., 0] if img.shape[-1] == 1 else img for img in images]
        resized = [np.asarray(Image.fromarray(p).resize((side, side), Image.Resampling.BILINEAR)) for p in planes]
        images = np.stack([r if r.ndim == 3 else r[..., None] for r in resized])
    data = images.astype(np.float32) / 255.0
    if data.shape[-1] != channels:
        data = data.mean(axis=-1, keepdims=True) if channels == 1 else np.repeat(data[..., :1], channels, axis=-1)
    return np.ascontiguousarray(data.transpose(0, 3, 1, 2))


def model_splits(data: Dataset, channels: int, side: int) -> tuple[np.ndarray, np.ndarray]:
    """The training and validation images as model inputs, both standardised by the training split."""
    train, val = standardise(model_input(data.x_train, channels, side), model_input(data.x_val, channels, side))
    return train, val


def standardise(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Subtract the training split's per-channel mean and divide by its std, in every split."""
    mean = train.mean(axis=(0, 2, 3), keepdims=True)
    std = train.std(axis=(0, 2, 3), keepdims=True) + 1e-6
    return [((data - mean) / std).astype(np.float32) for data in (train, *others)]
