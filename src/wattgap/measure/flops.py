"""What one step costs in work: its FLOPs by PyTorch's flop counter, and the elements its operations read
and write, split into the model's weights (the same at every batch size) and the rest (activations, in
proportion to the batch). A roofline (analysis/whatif.py) turns the two into a time bound on a device.

The traffic is counted per operator as PyTorch dispatches it (a convolution, a linear layer, an
addition): each operator reads its inputs and writes its output once. That is the memory traffic of a
stack that fuses nothing; a fusing stack moves less, caches move less again. Views move nothing and are
not counted. A tensor is a weight if it is a parameter or buffer of the model, or the output of an
operator whose every input is a weight (the bf16 copy autocast makes of a weight, a weight's view)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict


@dataclass(frozen=True)
class StepCount:
    flops: int
    weight_elements: int  # elements of weights read or written by the step's operators
    activation_elements: int  # every other element read or written


class Work(BaseModel):
    """A step's count per sample: it depends on neither batch, device, precision nor threads, so a count
    from one cell serves the later cells of its model, workload and backend. Traffic is counted for
    inference only (in training, weight gradients are neither weights nor per sample)."""

    model_config = ConfigDict(frozen=True)

    flops_per_sample: float | None = None
    weight_traffic_elements: float | None = None  # per step, whatever the batch
    activation_traffic_elements_per_sample: float | None = None

    @classmethod
    def of(cls, count: StepCount, samples_per_step: int, traffic: bool) -> Work:
        return cls(
            flops_per_sample=count.flops / samples_per_step or None,
            weight_traffic_elements=float(count.weight_elements) if traffic else None,
            activation_traffic_elements_per_sample=count.activation_elements / samples_per_step if traffic else None,
        )


def count_step(step: Callable[[], Any], model: Any = None) -> StepCount:
    """Run ``step`` once under PyTorch's flop counter (matmuls and convolutions, 2 per multiply-add;
    forward and backward in training) and the traffic counter; ``model``: the ``nn.Module`` whose
    parameters and buffers are the weights (without it, parameters alone)."""
    from torch.utils.flop_counter import FlopCounterMode

    flops = FlopCounterMode(display=False)
    traffic = _traffic_mode()
    if model is not None:
        for tensor in (*model.parameters(), *model.buffers()):
            traffic.add(tensor)
    with flops, traffic:  # the traffic counter sees each operator first, as the model calls it
        step()
    return StepCount(int(flops.get_total_flops()), traffic.weights, traffic.activations)


def _traffic_mode() -> Any:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    class Traffic(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.weights = 0
            self.activations = 0
            self.held: dict[int, weakref.ref[torch.Tensor]] = {}  # weights, and what was computed from them alone

        def add(self, tensor: torch.Tensor) -> None:
            self.held[id(tensor)] = weakref.ref(tensor)  # by identity: a set would compare tensors by value

        def is_weight(self, tensor: torch.Tensor) -> bool:
            held = self.held.get(id(tensor))
            return isinstance(tensor, torch.nn.Parameter) or (held is not None and held() is tensor)

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            inputs = [t for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
            if not inputs:  # a factory (randn) reads nothing
                return out
            outputs = [t for t in tree_leaves(out) if isinstance(t, torch.Tensor)]
            constant = all(self.is_weight(t) for t in inputs)
            if constant:
                for tensor in outputs:
                    self.add(tensor)
            if func.is_view and _aliases(inputs, outputs):  # a view moves nothing
                return out
            for tensor in (*inputs, *outputs):
                if constant or self.is_weight(tensor):
                    self.weights += tensor.numel()
                else:
                    self.activations += tensor.numel()
            return out

    return Traffic()


def _aliases(inputs: list[Any], outputs: list[Any]) -> bool:
    """Whether every output shares its storage with an input (a view, or .to() that had nothing to do)."""
    held = {t.untyped_storage().data_ptr() for t in inputs}
    return all(t.untyped_storage().data_ptr() in held for t in outputs)
