"""An image folder: one subfolder per class, named after it, holding image files Pillow reads (PNG, JPEG,
BMP, GIF, PPM, WebP...). Images are converted to RGB and resized to the model's input side when read."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wattgap.datasets import Dataset, stratified_split
from wattgap.errors import ConfigError

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".webp", ".tif", ".tiff"}


def class_folders(path: str) -> list[Path]:
    root = Path(path)
    if not root.is_dir():
        raise ConfigError(f"dataset_path: {path!r} is not a folder (dataset folder needs one subfolder per class)")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(folders) < 2:
        raise ConfigError(
            f"dataset_path: {path!r} has {len(folders)} class subfolder(s); a classifier needs at least 2"
        )
    for folder in folders:
        if not any(f.suffix.lower() in EXTENSIONS for f in folder.iterdir()):
            raise ConfigError(f"dataset_path: class folder {str(folder)!r} holds no image files")
    return folders


def load(path: str, side: int, validation_fraction: float, seed: int) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    images: list[np.ndarray] = []
    labels: list[int] = []
    folders = class_folders(path)
    for label, folder in enumerate(folders):
        for file in sorted(f for f in folder.iterdir() if f.suffix.lower() in EXTENSIONS):
            try:
                with Image.open(file) as image:
                    rgb = image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
                    images.append(np.asarray(rgb, dtype=np.uint8))
            except (UnidentifiedImageError, OSError) as error:
                raise ConfigError(f"dataset_path: cannot read image {str(file)!r}: {error}") from None
            labels.append(label)
    x_train, y_train, x_val, y_val = stratified_split(np.stack(images), np.asarray(labels), validation_fraction, seed)
    return Dataset("folder", str(Path(path).resolve()), x_train, y_train, x_val, y_val, tuple(f.name for f in folders))
