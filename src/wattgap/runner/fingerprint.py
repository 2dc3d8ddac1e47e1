"""The fingerprint of a node (wattgap.machines.Machine), stored with the cells it runs, and the machine
description of ``wattgap env``."""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from collections.abc import Iterator
from functools import cache
from importlib import metadata, util
from itertools import chain
from pathlib import Path
from typing import Any

from wattgap.backends import BACKENDS
from wattgap.devices import Hardware, cpu_info
from wattgap.machines import Machine
from wattgap.version import __version__

# Each library by its usual name and the module it is imported as. The version is looked up through the
# distributions that provide that module, so tensorflow-cpu counts as tensorflow and onnxruntime-gpu as
# onnxruntime (a lookup by distribution name misses them).
LIBRARIES = {
    "torch": "torch",
    "numpy": "numpy",
    "pydantic": "pydantic",
    "tensorflow": "tensorflow",
    "keras": "keras",
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "tensorrt": "tensorrt",
    "nvidia-ml-py": "pynvml",
    "scikit-learn": "sklearn",
    "pillow": "PIL",
}
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "CUDA_VISIBLE_DEVICES")


def _versions() -> tuple[dict[str, str | None], dict[str, str]]:
    """The version of each library (None: not installed), and the distribution that provides it where
    its name differs from the library's (e.g. tensorflow: tensorflow-cpu). A library is looked up by its
    own name first; only one found under another name is searched for among the distributions (their
    top-level lists, then every file they install: a second in all, paid only then)."""
    versions: dict[str, str | None] = {}
    distributions: dict[str, str] = {}
    for name, module in LIBRARIES.items():
        versions[name] = None
        if util.find_spec(module) is None:
            continue
        for distribution in chain([name], _providers(module)):  # the search only when the name misses
            try:
                versions[name] = metadata.version(distribution)
            except metadata.PackageNotFoundError:
                continue
            canonical = metadata.metadata(distribution)["Name"]
            if canonical.lower() != name:
                distributions[name] = canonical
            break
    return versions, distributions


def _providers(module: str) -> Iterator[str]:
    """The distributions that install ``module``: those whose top_level.txt names it, then (when none
    does) those whose files hold it, as ``importlib.metadata.packages_distributions`` finds them."""
    listed = [
        str(found.metadata["Name"])
        for found in metadata.distributions()
        if module in (found.read_text("top_level.txt") or "").split()
    ]
    yield from listed
    if not listed:
        yield from metadata.packages_distributions().get(module, [])


@cache
def wattgap_commit() -> str | None:
    """The git commit of the wattgap source tree, when it is a checkout."""
    root = Path(__file__).resolve().parents[3]
    if not (root / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _torch_details() -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {}
    details: dict[str, Any] = {
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "intra_op_threads_default": torch.get_num_threads(),
        "interop_threads_default": torch.get_num_interop_threads(),
        "mkldnn": torch.backends.mkldnn.is_available(),
    }
    return details


def _nvidia_driver() -> str | None:
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
            return version.decode() if isinstance(version, bytes) else str(version)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # NVML optional
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def fingerprint(hardware: Hardware) -> Machine:
    """Everything about this machine and software that a result depends on."""
    import psutil

    versions, distributions = _versions()
    devices = {"cpu": ""} | {name: hardware.unusable_reason(name) for name in ("cuda", "mps")}
    facts = {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_info() | {"physical_cores": hardware.physical_cores, "logical_cores": hardware.logical_cores},
        "memory_bytes": int(psutil.virtual_memory().total),
        "gpus": [gpu.__dict__ for gpu in hardware.gpus],
        "nvidia_driver": _nvidia_driver() if hardware.gpus else None,
        "torch": _torch_details(),
        "libraries": versions,
        "library_distributions": distributions,
        "thread_variables": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "wattgap": {"version": __version__, "commit": wattgap_commit()},
        "devices": {name: {"usable": not reason, "reason": reason} for name, reason in devices.items()},
        "backends": {
            name: {"usable": not backend.unavailable_reason(), "reason": backend.unavailable_reason()}
            for name, backend in BACKENDS.items()
        },
    }
    return Machine.model_validate(facts)
