"""What every PyTorch-based backend sets up the same way: the device (made current, threads, CUDA math
modes, seed), the precision (autocast or cast), optimisers and gradient scaling, device synchronisation,
and the dataset's tensors and top-1."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wattgap.models import is_custom
from wattgap.models.inputs import InputSpec, floating
from wattgap.models.sources import kind_of

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from wattgap.backends.base import Needs, Optimizer
    from wattgap.backends.settings import CudnnSettings, TorchSettings
    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.datasets import Dataset

_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


def compiler_reason(cell: Cell) -> str:
    """Why Inductor cannot compile ``cell`` here: its CPU code generation needs a C++ compiler, and
    TorchScript is a compiled form of its own that Dynamo does not trace."""
    if kind_of(cell.model) == "torchscript":
        return "torch.compile and torch.export do not take TorchScript (run it on torch-eager)"
    if cell.device == "cpu" and not (shutil.which("g++") or shutil.which("c++")):
        return "torch.compile's CPU code generation needs a C++ compiler (g++) on the PATH"
    return ""


def setup_device(cell: Cell, config: SweepConfig, own: CudnnSettings) -> tuple[torch.device, dict[str, Any]]:
    """The cell's device made current, its threads and CUDA math modes set (``own``: the backend's
    settings), and the seed."""
    import torch

    device = torch.device(cell.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # set_device needs an index
    if cell.threads is not None:
        torch.set_num_threads(cell.threads)
    settings: dict[str, Any] = {"torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        tf32 = cell.precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = own.cudnn_benchmark
        settings.update(cudnn_benchmark=own.cudnn_benchmark, allow_tf32=tf32)
    torch.manual_seed(config.seed)
    return device, settings


@dataclass(frozen=True)
class LowPrecision:
    """How a cell's precision is applied: ``dtype`` None for fp32/tf32; ``cast`` converts model and inputs
    (inference with ``infer_low_precision: cast``), otherwise autocast."""

    dtype: torch.dtype | None
    cast: bool
    autocast: Callable[[], contextlib.AbstractContextManager[Any]]
    applied: str  # recorded as settings.precision_applied


def low_precision(cell: Cell, own: TorchSettings, device: torch.device, needs: Needs) -> LowPrecision:
    import torch

    dtype = getattr(torch, _DTYPES[cell.precision]) if cell.precision in _DTYPES else None
    if dtype is None:
        return LowPrecision(None, False, contextlib.nullcontext, cell.precision)
    cast = needs.mode == "infer" and own.infer_low_precision == "cast"
    applied = ("cast " if cast else "autocast ") + str(dtype).replace("torch.", "")
    if cast:
        return LowPrecision(dtype, True, contextlib.nullcontext, applied)
    return LowPrecision(dtype, False, lambda: torch.autocast(device.type, dtype=dtype), applied)


@dataclass(frozen=True)
class Layout:
    """A cell's memory format: what the model and every 4-D input it sees are converted to."""

    format: torch.memory_format
    applied: str  # recorded as settings.memory_format

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor.contiguous(memory_format=self.format) if tensor.dim() == 4 else tensor


def layout(cell: Cell, inputs: list[InputSpec], device: torch.device) -> Layout:
    """``auto`` is channels_last for a model of one 4-D float input (N, C, H, W) on CPU and CUDA:
    PyTorch's documented fast path for convolutions with oneDNN and with cuDNN's tensor-core kernels;
    contiguous elsewhere."""
    import torch

    formats = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
    image = len(inputs) == 1 and len(inputs[0].shape) == 3 and floating(inputs)
    if cell.memory_format == "channels_last" and not image:
        taken = ", ".join(spec.describe() for spec in inputs)
        raise ValueError(f"memory_format channels_last needs one 4-D input (N, C, H, W); this model takes {taken}")
    if cell.memory_format == "auto":
        chosen = "channels_last" if image and device.type in ("cpu", "cuda") else "contiguous"
        return Layout(formats[chosen], f"{chosen} (auto)")
    return Layout(formats[cell.memory_format], cell.memory_format)


def as_tensors(
    batch: dict[str, np.ndarray], layout: Layout, precision: LowPrecision | None = None
) -> tuple[torch.Tensor, ...]:
    """A batch of every input as host tensors in the model's order: laid out as the cell says, and float
    inputs cast to the cell's precision when it casts (integer inputs, token ids, stay as they are)."""
    import torch

    tensors = []
    for array in batch.values():
        tensor = layout(torch.from_numpy(array))
        if precision is not None and precision.cast and tensor.is_floating_point():
            tensor = tensor.to(precision.dtype)
        tensors.append(tensor)
    return tuple(tensors)


def user_loss(config: SweepConfig) -> Callable[..., torch.Tensor] | None:
    """The config's ``loss`` (``package.module:callable``), imported in the cell; None without one."""
    if config.loss is None:
        return None
    import importlib

    module_name, attr = config.loss.split(":", 1)
    loss: Callable[..., torch.Tensor] = getattr(importlib.import_module(module_name), attr)
    return loss


def optimizer_factory(
    chosen: Optimizer, settings: dict[str, Any]
) -> Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]:
    """Makes the optimiser the workload asked for over the given parameters, and records which it is in
    ``settings``."""
    import torch

    def make(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        settings["optimizer"] = chosen.describe()
        if chosen.name == "adam":
            return torch.optim.Adam(params, lr=chosen.learning_rate, betas=(chosen.momentum, 0.999))
        return torch.optim.SGD(params, lr=chosen.learning_rate, momentum=chosen.momentum)

    return make


def applier(cell: Cell, device: torch.device) -> Callable[[torch.Tensor, torch.optim.Optimizer], None]:
    """Backward and optimiser step, through a gradient scaler in fp16 (a no-op scaler otherwise)."""
    import torch

    scaler = torch.amp.GradScaler(device.type, enabled=cell.precision == "fp16")

    def apply(loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return apply


def synchronizer(device: torch.device) -> Callable[[], None]:
    from wattgap.devices import synchronize

    return (lambda: synchronize(str(device))) if device.type in ("cuda", "mps") else (lambda: None)


def load_data(cell: Cell, config: SweepConfig, settings: dict[str, Any]) -> Dataset | None:
    """The config's dataset (None without one, or for a custom model), described in the cell's settings."""
    if config.dataset is None or is_custom(cell.model):
        return None
    from wattgap.datasets import load
    from wattgap.models import MODELS

    data = load(config, MODELS[cell.model].input_shape(config.image_size)[-1])
    settings.update(data.describe())
    return data


def tensors(
    images: np.ndarray, labels: np.ndarray, device: torch.device, dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One split's model inputs and labels on ``device`` (inputs cast to ``dtype`` when given)."""
    import torch

    x = torch.from_numpy(images).to(device)
    return (x.to(dtype) if dtype is not None else x), torch.from_numpy(labels).to(device)


def top1(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    correct = 0
    for first in range(0, len(y), batch_size):
        prediction = model(x[first : first + batch_size]).argmax(dim=1)
        correct += int((prediction == y[first : first + batch_size]).sum())
    return correct / len(y)


def data_parallel(module: nn.Module, device: torch.device) -> tuple[nn.Module, Callable[[], float]]:
    """``module`` under DistributedDataParallel in the process group the rank started (one device per
    rank on CUDA), and the seconds its gradient all-reduce has taken so far: DDP's own all-reduce, timed
    by a communication hook from the moment a bucket of gradients is handed over to the moment its
    reduction completes (on CUDA, as NCCL's future reports it). Buckets are reduced while the backward
    pass goes on, so this time overlaps the computation: its share of the step is an upper bound on what
    the all-reduce adds to it."""
    from torch.nn.parallel import DistributedDataParallel

    one = [device.index] if device.type == "cuda" and device.index is not None else None  # the rank's GPU
    wrapped = DistributedDataParallel(module, device_ids=one)
    spent = [0.0]
    # DDP reads a hook's annotations and refuses any but its own types: the hook is a lambda, unannotated
    wrapped.register_comm_hook(None, lambda state, bucket: _timed_allreduce(state, bucket, spent))
    return wrapped, lambda: spent[0]


def _timed_allreduce(state: Any, bucket: Any, spent: list[float]) -> Any:
    """DDP's own all-reduce of ``bucket``, its time from now to its completion added to ``spent[0]``."""
    import time

    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    begin = time.perf_counter()

    def done(future: Any) -> Any:
        spent[0] += time.perf_counter() - begin
        return future.value()

    return allreduce_hook(state, bucket).then(done)
