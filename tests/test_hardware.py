from __future__ import annotations

import pytest

from wattgap.measure.hardware import gpu_entry, peak_flops_per_s


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "H100 SXM"),
        ("NVIDIA H100 PCIe", "H100 PCIe"),
        ("NVIDIA H200", "H200 SXM"),
        ("NVIDIA A100-SXM4-80GB", "A100 SXM 80GB"),
        ("Tesla T4", "T4"),
        ("NVIDIA L4", "L4"),
        ("NVIDIA L40S", None),
        ("NVIDIA GeForce RTX 4090", None),
    ],
)
def test_gpu_names_match_whole_words(name: str, expected: str | None) -> None:
    entry = gpu_entry(name)
    assert (entry["name"] if entry else None) == expected


def test_peaks_are_the_design_numbers() -> None:
    h100 = gpu_entry("NVIDIA H100 80GB HBM3")
    assert h100 is not None and (h100["fp32"], h100["bf16"], h100["int8"]) == (67e12, 989e12, 1979e12)
    t4 = gpu_entry("Tesla T4")
    assert t4 is not None and "bf16" not in t4  # Turing has no bf16 tensor cores


def test_cpus_have_no_listed_peak() -> None:
    assert peak_flops_per_s("cpu", "fp32") is None
