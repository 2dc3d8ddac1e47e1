"""PyTorch eager mode: inference under ``torch.inference_mode``, full training steps, and the training
batches and validation of train-to-accuracy."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from wattgap.backends import torch_runtime as rt
from wattgap.backends.base import Backend, Capabilities, Needs, Phase, Prepared
from wattgap.backends.settings import TorchSettings
from wattgap.measure.flops import count_step
from wattgap.models import is_custom
from wattgap.models.build import build_model, count_parameters
from wattgap.models.sources import kind_of

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.datasets import Dataset
    from wattgap.devices import Hardware
    from wattgap.models.inputs import InputSpec
    from wattgap.models.torch.objective import StepParts


class TorchEager(Backend):
    name = "torch-eager"
    description = "PyTorch eager mode"
    capabilities = Capabilities(
        device_kinds=frozenset({"cpu", "cuda", "mps"}),
        precisions=frozenset({"fp32", "tf32", "bf16", "fp16"}),
        modes=frozenset({"infer", "train", "fit", "ddp"}),
        memory_formats=True,
    )
    settings_model: type[TorchSettings] = TorchSettings

    def unavailable_reason(self) -> str:
        return "" if importlib.util.find_spec("torch") else "PyTorch is not installed"

    def unsupported_reason(self, cell: Cell, hardware: Hardware, needs: Needs) -> str:
        reason = super().unsupported_reason(cell, hardware, needs)
        if reason:
            return reason
        kind, _, index = cell.device.partition(":")
        if needs.mode == "fit" and is_custom(cell.model):
            return f"{cell.workload} trains zoo models only (a custom model's classifier head is its own)"
        if needs.mode != "infer" and kind_of(cell.model) == "torch-export":
            return "a saved torch.export program is an inference graph here (its module refuses train())"
        if cell.precision == "tf32" and kind != "cuda":
            return "tf32 is a mode of NVIDIA tensor cores (Ampere or newer); it needs a CUDA device"
        if kind == "cuda" and cell.precision in ("tf32", "bf16") and hardware.gpus:
            gpu = hardware.gpus[int(index or 0)]
            if float(gpu.capability) < 8.0:
                return f"{cell.precision} needs compute capability 8.0 or newer; {gpu.name} has {gpu.capability}"
        return ""

    def wrap(
        self, model: nn.Module, cell: Cell, config: SweepConfig, settings: dict[str, Any], needs: Needs
    ) -> nn.Module:
        """The module the timed step calls: the model itself in eager mode (torch-compile compiles it)."""
        return model

    def prepare(self, cell: Cell, config: SweepConfig, phase: Phase, needs: Needs) -> Prepared:
        phase("load")
        own = config.settings("backends", self.name, self.settings_model)
        device, settings = rt.setup_device(cell, config, own)
        data = rt.load_data(cell, config, settings) if needs.dataset != "never" else None
        if needs.dataset == "required" and data is None:
            raise ValueError(f"{cell.workload} needs a dataset")  # the config validator requires one
        model, inputs, classes = build_model(
            cell.model, config.model_options(cell.model), data.classes if data else None
        )
        parameters = count_parameters(model)
        layout = rt.layout(cell, inputs, device)
        model.to(device)
        model.to(memory_format=layout.format)  # type: ignore[call-overload]  # documented, not in the stubs
        settings["memory_format"] = layout.applied

        phase("prepare")
        precision = rt.low_precision(cell, own, device, needs)
        settings["precision_applied"] = precision.applied
        settings["input_on_device"] = not config.end_to_end
        prepared = Prepared(
            samples_per_step=cell.batch_size,
            sync=rt.synchronizer(device),
            parameters=parameters,
            input_shape=_shape(inputs),
            inputs=inputs,
            settings=settings,
        )
        runner = self.wrap(model, cell, config, settings, needs)
        optimizer = rt.optimizer_factory(needs.optimizer, settings)  # records the optimiser when it makes one
        if data is not None and needs.mode == "fit":
            return _fit(prepared, runner, cell, config, data, device, precision, layout, optimizer)

        import torch

        from wattgap.models.inputs import synthesize

        generator = torch.Generator().manual_seed(config.seed)
        if precision.cast:
            model.to(precision.dtype)
        host = rt.as_tensors(synthesize(inputs, cell.batch_size, config.seed), layout, precision)
        on_device = tuple(tensor.to(device) for tensor in host)
        fetch = (lambda: tuple(t.to(device) for t in host)) if config.end_to_end else (lambda: on_device)
        if needs.mode == "infer":
            return _infer(prepared, model, runner, cell, config, data, device, precision, fetch, layout)

        model.train()
        parts = _step_parts(cell, config, device, precision, fetch, generator, classes, settings, optimizer)
        if needs.mode == "ddp":
            runner, prepared.communication_s = rt.data_parallel(runner, device)
        prepared.step = _train_step(runner, parts)
        flop_step = prepared.step
        if runner is not model:  # count the eager model's step: the same math, without the compiler
            flop_step = _train_step(
                model, dataclasses.replace(parts, optimizer=rt.optimizer_factory(needs.optimizer, {}))
            )
        prepared.count_step = lambda: count_step(flop_step, model)
        return prepared


def _shape(inputs: list[InputSpec]) -> tuple[int, ...]:
    """The stored input shape: the single input's (a zoo model's), or the first of several."""
    return tuple(inputs[0].shape)


def _step_parts(
    cell: Cell,
    config: SweepConfig,
    device: torch.device,
    precision: rt.LowPrecision,
    fetch: Callable[[], tuple[torch.Tensor, ...]],
    generator: torch.Generator,
    classes: int | None,
    settings: dict[str, Any],
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
) -> StepParts:
    from wattgap.models.torch.objective import StepParts

    if config.loss is not None:
        settings["loss"] = config.loss
    return StepParts(
        fetch=fetch,
        autocast=precision.autocast,
        optimizer=optimizer,
        apply=rt.applier(cell, device),
        generator=generator,
        device=device,
        classes=classes,
        batch_size=cell.batch_size,
        loss=rt.user_loss(config),
    )


def _train_step(model: nn.Module, parts: StepParts) -> Callable[[], None]:
    from wattgap.models.torch.objective import train_step

    return train_step(model, parts)


def _infer(
    prepared: Prepared,
    model: nn.Module,
    runner: nn.Module,
    cell: Cell,
    config: SweepConfig,
    data: Dataset | None,
    device: torch.device,
    precision: rt.LowPrecision,
    fetch: Callable[[], tuple[torch.Tensor, ...]],
    layout: rt.Layout,
) -> Prepared:
    import torch

    model.eval()

    @contextlib.contextmanager
    def context() -> Any:
        with torch.inference_mode(), precision.autocast():
            yield

    def predict(batch: dict[str, np.ndarray]) -> np.ndarray:
        with context():
            output = runner(*(tensor.to(device) for tensor in rt.as_tensors(batch, layout, precision)))
        return output.float().cpu().numpy()

    prepared.step = lambda: runner(*fetch())
    prepared.context = context
    prepared.predict = predict
    prepared.count_step = lambda: count_step(lambda: model(*fetch()), model)
    if data is not None:
        from wattgap.datasets import model_splits

        shape = prepared.input_shape
        _, val = model_splits(data, shape[0], shape[-1])
        x_val, y_val = rt.tensors(val, data.y_val, device, precision.dtype if precision.cast else None)
        x_val = layout(x_val)

        def evaluate() -> float:
            with context():
                return rt.top1(runner, x_val, y_val, cell.batch_size)

        prepared.evaluate = evaluate
    return prepared


def _fit(
    prepared: Prepared,
    model: nn.Module,
    cell: Cell,
    config: SweepConfig,
    data: Dataset,
    device: torch.device,
    precision: rt.LowPrecision,
    layout: rt.Layout,
    optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
) -> Prepared:
    """Train-to-accuracy: both splits staged before anything is timed (the training split on the host for
    end-to-end cells), a training step on the samples at given indices, and the validation top-1."""
    import torch
    from torch import nn

    from wattgap.datasets import model_splits

    shape = prepared.input_shape
    staging = torch.device("cpu") if config.end_to_end else device
    train, val = model_splits(data, shape[0], shape[-1])  # once for both splits
    x_train, y_train = rt.tensors(train, data.y_train, staging)
    x_val, y_val = rt.tensors(val, data.y_val, device)
    x_val = layout(x_val)
    opt = optimizer(model.parameters())
    apply = rt.applier(cell, device)
    model.train()

    def train_batch(indices: np.ndarray) -> None:
        index = torch.from_numpy(indices).to(staging)
        inputs, labels = layout(x_train[index].to(device)), y_train[index].to(device)
        with precision.autocast():
            loss = nn.functional.cross_entropy(model(inputs).float(), labels)
        apply(loss, opt)

    def evaluate() -> float:
        model.eval()
        try:
            with torch.inference_mode(), precision.autocast():
                return rt.top1(model, x_val, y_val, cell.batch_size)
        finally:
            model.train()

    prepared.train_batch = train_batch
    prepared.train_samples = len(y_train)
    prepared.evaluate = evaluate
    return prepared
