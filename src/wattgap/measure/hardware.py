"""Peak rates of known devices (resources/hardware.yaml), for FLOP utilisation."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import yaml


@cache
def _table(file: str) -> list[dict[str, Any]]:
    return list(yaml.safe_load(resources.files("wattgap.resources").joinpath(file).read_text("utf-8")))


def known_gpus() -> list[dict[str, Any]]:
    return _table("hardware.yaml")


def known_cpus() -> list[dict[str, Any]]:
    return _table("cpus.yaml")


def _entry(table: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The first entry whose ``match`` stands in the name as a whole word ("L4" is not "L40S")."""
    for entry in table:
        if re.search(rf"(?<![A-Za-z0-9]){re.escape(entry['match'])}(?![A-Za-z0-9])", name, re.IGNORECASE):
            return entry
    return None


def gpu_entry(device_name: str) -> dict[str, Any] | None:
    return _entry(known_gpus(), device_name)


def cpu_entry(model_name: str) -> dict[str, Any] | None:
    return _entry(known_cpus(), model_name)


def peak_flops_per_s(device: str, precision: str) -> float | None:
    """The datasheet peak for ``precision`` on ``device``; None when unknown (CPUs, unlisted GPUs, tf32)."""
    if not device.startswith("cuda"):
        return None
    import torch

    entry = gpu_entry(torch.cuda.get_device_name(device))
    value = entry.get(precision) if entry else None
    return float(value) if value is not None else None
