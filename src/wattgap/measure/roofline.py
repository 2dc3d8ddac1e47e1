"""A CPU's roofline, measured: a CPU has no datasheet row in resources/hardware.yaml (its rates depend on
the cores, the clock and the instructions a VM exposes), so each run measures the two numbers a roofline
needs for the thread counts it uses: the best rate per precision of PyTorch's two dense kernels, a
matrix product (BLAS: MKL on x86, which runs AMD CPUs on narrower paths than it could) and a 3x3
convolution (oneDNN, channels-last), the faster of the two; and the copy bandwidth (a buffer far larger
than the caches, read and written). Both are attainable rates, not theoretical peaks: a cell reaching
them is at the roofline."""

from __future__ import annotations

import time
from typing import Any

GEMM_SIZE = 768  # 0.9 GFLOP a product: milliseconds on a core, far above the timer's resolution
CONV_SHAPE = (8, 256, 16, 16)  # batch, channels, height, width: 2.4 GFLOP a 3x3 convolution, 256 to 256 channels
COPY_BYTES = 128 * 2**20  # beyond the last-level cache of the CPUs this runs on
REPEATS = 5
REPEAT_BUDGET_S = 0.3  # a kernel on a slow path (bf16 products where the CPU has no bf16 instructions: about
# 1 s each on an AVX2-only core) is timed fewer times; its best rate is far below the other kernel's anyway
PRECISIONS = {"fp32": "float32", "bf16": "bfloat16"}


def _best(action: Any) -> float:
    """The shortest of up to REPEATS timed calls, after one untimed; no further call starts once the
    timed ones have taken REPEAT_BUDGET_S (one timed call at least)."""
    action()  # the first call pays for allocation and kernel selection
    times: list[float] = []
    while len(times) < REPEATS and sum(times) < REPEAT_BUDGET_S:
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def cpu_roofline(threads: int) -> dict[str, float]:
    """``{"fp32_flops_per_s": ..., "bf16_flops_per_s": ..., "bandwidth_bytes_per_s": ...}`` on ``threads``
    intra-op threads (this process's thread count is changed to it)."""
    import torch

    torch.set_num_threads(threads)
    rates: dict[str, float] = {}
    generator = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for name, dtype_name in PRECISIONS.items():
            dtype = getattr(torch, dtype_name)
            a = torch.randn(GEMM_SIZE, GEMM_SIZE, generator=generator).to(dtype)
            b = torch.randn(GEMM_SIZE, GEMM_SIZE, generator=generator).to(dtype)
            gemm = 2 * GEMM_SIZE**3 / _best(lambda a=a, b=b: torch.mm(a, b))
            batch, channels, height, width = CONV_SHAPE
            x = torch.randn(CONV_SHAPE, generator=generator).to(dtype).contiguous(memory_format=torch.channels_last)
            weight = torch.randn(channels, channels, 3, 3, generator=generator).to(dtype)
            weight = weight.contiguous(memory_format=torch.channels_last)
            flops = 2 * channels * channels * 9 * height * width * batch
            conv = flops / _best(lambda x=x, w=weight: torch.nn.functional.conv2d(x, w, padding=1))
            rates[f"{name}_flops_per_s"] = max(gemm, conv)
        source = torch.ones(COPY_BYTES // 4)
        target = torch.empty_like(source)
        rates["bandwidth_bytes_per_s"] = 2 * COPY_BYTES / _best(lambda: target.copy_(source))
    return rates
