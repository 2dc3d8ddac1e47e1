"""CIFAR-10, the official python archive (cifar-10-python.tar.gz, 163 MB): 50,000 training and 10,000
test images of 32x32, 10 classes; the test batch is the validation split. From ``dataset_path`` (the
archive, or the extracted ``cifar-10-batches-py`` folder or its parent), else from wattgap's cache, else
downloaded from the official address when the network allows. The archive's MD5 is checked against the
published one. The batches are pickles: they are read by an unpickler that admits only the few numpy
types the format needs, so a tampered file cannot run code."""

from __future__ import annotations

import hashlib
import io
import os
import pickle
import tarfile
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from wattgap.datasets import Dataset
from wattgap.errors import ConfigError

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def cache_dir() -> Path:
    return Path(os.environ.get("WATTGAP_CACHE", Path.home() / ".cache" / "wattgap"))


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def locate(path: str | None) -> Path:
    """The archive or batch folder to read; checks the archive's checksum. Downloads only when no path
    is given and the cache holds nothing."""
    if path is not None:
        given = Path(path)
        for candidate in (given, given / FOLDER):
            if candidate.is_dir() and all((candidate / name).is_file() for name in (*TRAIN_BATCHES, TEST_BATCH)):
                return candidate
        if given.is_file():
            _verify(given, "dataset_path")
            return given
        raise ConfigError(
            f"dataset_path: {path!r} is neither {ARCHIVE} nor a folder holding {FOLDER}'s batches "
            f"({', '.join(TRAIN_BATCHES)}, {TEST_BATCH})"
        )
    cached = cache_dir() / ARCHIVE
    if not cached.is_file():
        _download(cached)
    _verify(cached, "cached archive")
    return cached


def _verify(archive: Path, what: str) -> None:
    found = md5_of(archive)
    if found != MD5:
        raise ConfigError(
            f"{what}: {str(archive)!r} has MD5 {found}, the official CIFAR-10 python archive has {MD5}: "
            f"the file is corrupt or another file; download it again from {URL}"
        )


def _download(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".part")
    try:
        with urllib.request.urlopen(URL, timeout=30) as response, partial.open("wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise ConfigError(
            f"dataset cifar10: no dataset_path given, none cached in {target.parent}, and the download from "
            f"{URL} failed ({error}); download the archive elsewhere and give its path as dataset_path"
        ) from None
    partial.replace(target)


class _BatchUnpickler(pickle.Unpickler):
    ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of the CIFAR-10 batch format")
        return super().find_class(module, name)


def _read_batch(opener: Callable[[str], bytes], name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _BatchUnpickler(io.BytesIO(opener(name)), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as error:
        raise ConfigError(f"dataset cifar10: batch {name} is not in the CIFAR-10 format ({error})") from None
    if len(data) != len(labels):
        raise ConfigError(f"dataset cifar10: batch {name} has {len(data)} images and {len(labels)} labels")
    return data, labels


def load(path: str | None) -> Dataset:
    source = locate(path)
    if source.is_dir():
        batches = [_read_batch(lambda name: (source / name).read_bytes(), n) for n in (*TRAIN_BATCHES, TEST_BATCH)]
    else:
        with tarfile.open(source, "r:gz") as archive:

            def member(name: str) -> bytes:
                extracted = archive.extractfile(f"{FOLDER}/{name}")
                if extracted is None:
                    raise ConfigError(f"dataset cifar10: {source} has no {FOLDER}/{name}")
                return extracted.read()

            batches = [_read_batch(member, n) for n in (*TRAIN_BATCHES, TEST_BATCH)]
    x_train = np.concatenate([b[0] for b in batches[:-1]])
    y_train = np.concatenate([b[1] for b in batches[:-1]])
    return Dataset("cifar10", str(source), x_train, y_train, batches[-1][0], batches[-1][1], CLASSES)
