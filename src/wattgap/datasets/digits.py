"""The 8x8 handwritten digits that ship inside scikit-learn (1,797 images, 10 classes; UCI's optdigits
test set). No download: always available, so the tests train on it."""

from __future__ import annotations

import numpy as np

from wattgap.datasets import Dataset, stratified_split


def load(validation_fraction: float, seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(np.asarray(bunch.images) * 16, 0, 255).astype(np.uint8)[..., None]  # 0..16 -> 0..255
    x_train, y_train, x_val, y_val = stratified_split(images, np.asarray(bunch.target), validation_fraction, seed)
    return Dataset(
        "digits",
        "sklearn.datasets.load_digits (bundled with scikit-learn)",
        x_train,
        y_train,
        x_val,
        y_val,
        tuple(str(d) for d in range(10)),
    )
