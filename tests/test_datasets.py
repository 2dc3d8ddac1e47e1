"""Datasets: the bundled digits, CIFAR-10 in its official batch format (written here in miniature), image
folders, and every way a path or archive can be wrong."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from helpers import fast_config

from wattgap import plan
from wattgap.config import parse_config
from wattgap.datasets import check, cifar10, digits, folder, model_input, standardise
from wattgap.errors import ConfigError


def test_digits_split_is_stratified_and_seeded() -> None:
    data = digits.load(0.2, seed=0)
    assert data.classes == 10 and data.x_train.dtype == np.uint8 and data.x_train.shape[1:] == (8, 8, 1)
    assert len(data.y_train) + len(data.y_val) == 1797
    assert abs(len(data.y_val) - 0.2 * 1797) <= 1
    assert set(np.bincount(data.y_val)) <= {35, 36, 37}  # every class in proportion
    again = digits.load(0.2, seed=0)
    assert np.array_equal(data.y_val, again.y_val) and not np.array_equal(data.y_val, digits.load(0.2, 1).y_val)


def test_model_input_resizes_repeats_channels_and_standardises() -> None:
    data = digits.load(0.2, seed=0)
    x = model_input(data.x_train, channels=3, side=16)
    assert x.shape == (len(data.y_train), 3, 16, 16) and x.dtype == np.float32
    assert x.min() >= 0.0 and x.max() <= 1.0 and np.array_equal(x[:, 0], x[:, 2])
    train, val = standardise(x, model_input(data.x_val, 3, 16))
    assert np.allclose(train.mean(axis=(0, 2, 3)), 0, atol=1e-4)
    assert np.allclose(train.std(axis=(0, 2, 3)), 1, atol=1e-3)
    assert val.shape[1:] == (3, 16, 16)


def _write_cifar_batches(target: Path, per_batch: int = 20) -> None:
    target.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in (*cifar10.TRAIN_BATCHES, cifar10.TEST_BATCH):
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, per_batch)],
            b"batch_label": name.encode(),
        }
        (target / name).write_bytes(pickle.dumps(batch))


def test_cifar10_reads_the_batch_format_from_a_folder(tmp_path: Path) -> None:
    _write_cifar_batches(tmp_path / cifar10.FOLDER)
    data = cifar10.load(str(tmp_path))  # the parent of cifar-10-batches-py works too
    assert data.x_train.shape == (100, 32, 32, 3) and data.x_val.shape == (20, 32, 32, 3)
    assert data.classes == 10 and data.class_names[0] == "airplane" and data.y_train.dtype == np.int64


def test_cifar10_refuses_corrupt_archives_and_foreign_pickles(tmp_path: Path) -> None:
    archive = tmp_path / cifar10.ARCHIVE
    archive.write_bytes(b"not the archive" * 100)
    with pytest.raises(ConfigError, match=r"MD5 .* corrupt"):
        cifar10.load(str(archive))
    with pytest.raises(ConfigError, match="neither"):
        cifar10.load(str(tmp_path))
    batches = tmp_path / "evil"
    _write_cifar_batches(batches)

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("this must never run",))

    (batches / "data_batch_1").write_bytes(pickle.dumps({b"data": Payload(), b"labels": []}))
    with pytest.raises(ConfigError, match="not in the CIFAR-10 format"):
        cifar10.load(str(batches))


def test_cifar10_without_path_or_network_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATTGAP_CACHE", str(tmp_path))
    monkeypatch.setattr(cifar10, "URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")  # a closed port
    with pytest.raises(ConfigError, match=r"download .* failed.*dataset_path"):
        cifar10.load(None)
    assert not list(tmp_path.iterdir())  # no partial file left behind


def _image_folder(root: Path, classes: int = 2, per_class: int = 10) -> Path:
    from PIL import Image

    for label in range(classes):
        (root / f"class{label}").mkdir(parents=True)
        for index in range(per_class):
            pixels = np.full((12, 10, 3), 40 * label + index, dtype=np.uint8)
            Image.fromarray(pixels).save(root / f"class{label}" / f"{index}.png")
    return root


def test_image_folder_loads_resized_rgb_with_class_names(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "imgs")
    data = folder.load(str(root), side=16, validation_fraction=0.2, seed=0)
    assert data.class_names == ("class0", "class1") and data.x_train.shape == (16, 16, 16, 3)
    assert sorted(np.bincount(data.y_val)) == [2, 2]


def test_image_folder_errors_name_the_problem(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "imgs")
    (root / "class1" / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ConfigError, match=r"cannot read image .*broken.png"):
        folder.load(str(root), 16, 0.2, 0)
    lonely = _image_folder(tmp_path / "one", classes=1)
    with pytest.raises(ConfigError, match="1 class subfolder"):
        check(parse_config(fast_config(dataset="folder", dataset_path=str(lonely))))


def test_config_refuses_bad_dataset_settings(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="dataset: got None"):
        parse_config(fast_config(workloads=["train-to-accuracy"]))
    with pytest.raises(ConfigError, match=r"dataset_path: .* does not exist"):
        parse_config(fast_config(dataset="cifar10", dataset_path=str(tmp_path / "missing")))
    with pytest.raises(ConfigError, match=r"^workloads.train-to-accuracy.target_accuracy: got 1.5; input should be"):
        plan.check(parse_config(fast_config(workloads=["train-to-accuracy"], dataset="digits", target_accuracy=1.5)))
    with pytest.raises(ConfigError, match="dataset_path: required"):
        parse_config(fast_config(dataset="folder"))
