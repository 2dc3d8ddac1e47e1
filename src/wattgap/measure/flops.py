"""FLOPs of one step, by PyTorch's flop counter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def count_flops(step: Callable[[], Any]) -> int:
    """Floating-point operations of one step, by PyTorch's flop counter (matmuls and convolutions,
    2 per multiply-add; forward and backward in training)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())
