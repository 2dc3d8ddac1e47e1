"""An image folder: one subfolder per class, named after it, holding image files Pillow reads (PNG, JPEG,
BMP, GIF, PPM, WebP...). Images are converted to RGB and resized to the model's input side when read."""

from __future__ import annotations

import stat
from pathlib import Path

import numpy as np

from wattgap.datasets import Dataset, stratified_split
from wattgap.errors import ConfigError
from wattgap.fs import kind_of

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
        if not image_files(folder):
            raise ConfigError(f"dataset_path: class folder {str(folder)!r} holds no image files")
    return folders


def image_files(folder: Path) -> list[Path]:
    """The image files of a class folder, sorted; a ConfigError for an entry with an image's name that is
    not a regular file with content (a folder, a FIFO, a device, an empty file), found without opening it."""
    found = []
    for file in sorted(f for f in folder.iterdir() if f.suffix.lower() in EXTENSIONS):
        try:
            status = file.stat()
        except OSError as error:
            raise ConfigError(f"dataset_path: image {str(file)!r}: {error.strerror}") from None
        if not stat.S_ISREG(status.st_mode):
            raise ConfigError(f"dataset_path: image {str(file)!r} is {kind_of(status)}, not an image file")
        if status.st_size == 0:
            raise ConfigError(f"dataset_path: image {str(file)!r} is empty")
        found.append(file)
    return found


def read_image(file: Path, side: int) -> np.ndarray:
    """One image decoded whole (a truncated or corrupt file fails here), as RGB uint8 at ``side`` x ``side``."""
    from PIL import Image

    try:
        with Image.open(file) as image:
            image.load()
            rgb = image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
            return np.asarray(rgb, dtype=np.uint8)
    except Exception as error:  # Pillow's errors for bad data are of many kinds (OSError, SyntaxError, ...)
        raise ConfigError(f"dataset_path: cannot read image {str(file)!r}: {error}") from None


def check(path: str) -> None:
    """Every image of the folder decoded once before a run starts: a bad one is a one-line error then,
    not a failure in every cell."""
    for folder in class_folders(path):
        for file in image_files(folder):
            read_image(file, 1)


def load(path: str, side: int, validation_fraction: float, seed: int) -> Dataset:
    images: list[np.ndarray] = []
    labels: list[int] = []
    folders = class_folders(path)
    for label, folder in enumerate(folders):
        for file in image_files(folder):
            images.append(read_image(file, side))
            labels.append(label)
    x_train, y_train, x_val, y_val = stratified_split(np.stack(images), np.asarray(labels), validation_fraction, seed)
    return Dataset("folder", str(Path(path).resolve()), x_train, y_train, x_val, y_val, tuple(f.name for f in folders))
