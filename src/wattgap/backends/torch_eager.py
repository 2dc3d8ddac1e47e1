"""PyTorch eager mode: inference under ``torch.inference_mode`` and full training steps."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from wattgap.backends.base import Backend, Capabilities, FitPrepared, PreparedCell
from wattgap.errors import ConfigError
from wattgap.models import is_custom

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from wattgap.config import SweepConfig
    from wattgap.datasets import Dataset
    from wattgap.devices import Hardware
    from wattgap.plan import Cell

_DTYPES = {"bf16": "bfloat16", "fp16": "float16"}


class TorchEager(Backend):
    name = "torch-eager"
    description = "PyTorch eager mode"
    capabilities = Capabilities(
        device_kinds=frozenset({"cpu", "cuda", "mps"}),
        precisions=frozenset({"fp32", "tf32", "bf16", "fp16"}),
        workloads=frozenset({"infer", "train", "train-to-accuracy"}),
    )

    def unavailable_reason(self) -> str:
        return "" if importlib.util.find_spec("torch") else "PyTorch is not installed"

    def unsupported_reason(self, cell: Cell, hardware: Hardware) -> str:
        reason = super().unsupported_reason(cell, hardware)
        if reason:
            return reason
        kind, _, index = cell.device.partition(":")
        if cell.workload == "train-to-accuracy" and is_custom(cell.model):
            return "train-to-accuracy trains zoo models only (a custom model's classifier head is its own)"
        if cell.precision == "tf32" and kind != "cuda":
            return "tf32 is a mode of NVIDIA tensor cores (Ampere or newer); it needs a CUDA device"
        if kind == "cuda" and cell.precision in ("tf32", "bf16") and hardware.gpus:
            gpu = hardware.gpus[int(index or 0)]
            if float(gpu.capability) < 8.0:
                return f"{cell.precision} needs compute capability 8.0 or newer; {gpu.name} has {gpu.capability}"
        return ""

    def prepare(self, cell: Cell, config: SweepConfig, phase: Callable[[str], None]) -> PreparedCell:
        import torch

        phase("load")
        device, settings = setup_device(cell, config)
        data = _load_data(cell, config, settings) if cell.workload == "infer" else None
        model, input_shape, classes = build_model(cell.model, config, data.classes if data else None)
        parameters = sum(p.numel() for p in model.parameters())
        model.to(device)

        phase("prepare")
        dtype = getattr(torch, _DTYPES[cell.precision]) if cell.precision in _DTYPES else None
        cast = dtype is not None and cell.workload == "infer" and config.infer_low_precision == "cast"
        settings["precision_applied"] = (
            ("cast" if cast else "autocast") + f" {dtype}".replace("torch.", "")
            if dtype is not None
            else cell.precision
        )
        generator = torch.Generator().manual_seed(config.seed)
        host_input = torch.randn((cell.batch_size, *input_shape), generator=generator)
        if cast:
            model.to(dtype)
            host_input = host_input.to(dtype)
        device_input = host_input.to(device)
        autocast: Callable[[], contextlib.AbstractContextManager[Any]] = (
            (lambda: torch.autocast(device.type, dtype=dtype))
            if dtype is not None and not cast
            else contextlib.nullcontext
        )
        fetch = (lambda: host_input.to(device)) if config.end_to_end else (lambda: device_input)
        settings["input_on_device"] = not config.end_to_end

        runner = self.wrap(model, cell, config, settings)
        if cell.workload == "infer":
            model.eval()
            step: Callable[[], Any] = lambda: runner(fetch())  # noqa: E731
            flop_step: Callable[[], Any] = lambda: model(fetch())  # noqa: E731

            @contextlib.contextmanager
            def context() -> Any:
                with torch.inference_mode(), autocast():
                    yield

            evaluate = None
            if data is not None:
                from wattgap.datasets import model_splits

                _, val = model_splits(data, input_shape[0], input_shape[-1])
                x_val, y_val = _tensors(val, data.y_val, device, dtype if cast else None)

                def evaluate() -> float:
                    with context():
                        return _top1(runner, x_val, y_val, cell.batch_size)

            def predict(batch: np.ndarray) -> np.ndarray:
                inputs = torch.from_numpy(batch).to(device)
                with context():
                    output = runner(inputs.to(dtype) if cast else inputs)
                return output.float().cpu().numpy()

        else:
            model.train()
            step = _train_step(runner, cell, config, fetch, autocast, classes, generator, device, settings)
            flop_step = (
                step
                if runner is model
                else _train_step(model, cell, config, fetch, autocast, classes, generator, device, {})
            )
            context = contextlib.nullcontext  # type: ignore[assignment]
            evaluate = predict = None  # type: ignore[assignment]
        return PreparedCell(
            step=step,
            samples_per_step=cell.batch_size,
            context=context,
            count_flops=lambda: count_flops(flop_step),
            parameters=parameters,
            input_shape=tuple(input_shape),
            settings=settings,
            evaluate=evaluate,
            predict=predict,
        )

    def wrap(self, model: nn.Module, cell: Cell, config: SweepConfig, settings: dict[str, Any]) -> nn.Module:
        """The module the timed step calls: the model itself in eager mode (torch-compile compiles it)."""
        return model

    def prepare_fit(self, cell: Cell, config: SweepConfig, phase: Callable[[str], None]) -> FitPrepared:
        import torch
        from torch import nn

        phase("load")
        device, settings = setup_device(cell, config)
        data = _load_data(cell, config, settings)
        assert data is not None  # the config validator requires a dataset for this workload
        model, input_shape, _ = build_model(cell.model, config, data.classes)
        parameters = sum(p.numel() for p in model.parameters())
        model.to(device)

        phase("prepare")
        dtype = getattr(torch, _DTYPES[cell.precision]) if cell.precision in _DTYPES else None
        settings["precision_applied"] = f"autocast {dtype}".replace("torch.", "") if dtype else cell.precision
        autocast: Callable[[], contextlib.AbstractContextManager[Any]] = (
            (lambda: torch.autocast(device.type, dtype=dtype)) if dtype is not None else contextlib.nullcontext
        )
        staging = torch.device("cpu") if config.end_to_end else device
        from wattgap.datasets import model_splits

        train, val = model_splits(data, input_shape[0], input_shape[-1])  # once for both splits
        x_train, y_train = _tensors(train, data.y_train, staging)
        x_val, y_val = _tensors(val, data.y_val, device)
        settings["input_on_device"] = not config.end_to_end
        opt = _optimizer(config, model.parameters(), cell.workload, settings)
        apply = _applier(cell, device)
        sync = _synchronizer(device)

        def train_epoch(epoch: int) -> list[float]:
            import time

            model.train()
            order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(config.seed * 100_003 + epoch))
            latencies = []
            clock = time.perf_counter_ns
            for first in range(0, len(order), cell.batch_size):
                index = order[first : first + cell.batch_size].to(staging)
                begin = clock()
                inputs, labels = x_train[index].to(device), y_train[index].to(device)
                with autocast():
                    loss = nn.functional.cross_entropy(model(inputs).float(), labels)
                apply(loss, opt)
                sync()
                latencies.append((clock() - begin) * 1e-9)
            return latencies

        def evaluate() -> float:
            model.eval()
            with torch.inference_mode(), autocast():
                return _top1(model, x_val, y_val, cell.batch_size)

        return FitPrepared(
            train_epoch=train_epoch,
            evaluate=evaluate,
            train_samples=len(y_train),
            sync=sync,
            parameters=parameters,
            input_shape=tuple(input_shape),
            settings=settings,
        )


def reference_model(cell: Cell, config: SweepConfig) -> tuple[nn.Module, tuple[int, ...], bool]:
    """The fp32 PyTorch model every backend starts from, on the CPU in eval mode: the same seed, hence
    the same weights, as the cell's own. Also its input shape and whether it is a classifier."""
    import torch

    torch.manual_seed(config.seed)
    model, input_shape, classes = build_model(cell.model, config)
    return model.eval(), input_shape, classes is not None


def reference_outputs(cell: Cell, config: SweepConfig) -> tuple[np.ndarray, np.ndarray, bool]:
    """The guardrail's fixed batch (``guardrail_samples`` N(0,1) inputs, seeded) and the reference's
    outputs on it."""
    import torch

    model, input_shape, classifier = reference_model(cell, config)
    generator = torch.Generator().manual_seed(config.seed + 1)
    inputs = torch.randn((config.guardrail_samples, *input_shape), generator=generator)
    with torch.inference_mode():
        outputs = torch.cat([model(chunk) for chunk in inputs.split(64)])
    return inputs.numpy(), outputs.numpy(), classifier


def setup_device(cell: Cell, config: SweepConfig) -> tuple[torch.device, dict[str, Any]]:
    """The cell's device made current, its threads and CUDA math modes set, and the seed."""
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
        torch.backends.cudnn.benchmark = config.cudnn_benchmark
        settings.update(cudnn_benchmark=config.cudnn_benchmark, allow_tf32=tf32)
    torch.manual_seed(config.seed)
    return device, settings


def _synchronizer(device: torch.device) -> Callable[[], None]:
    from wattgap.devices import synchronize

    return (lambda: synchronize(str(device))) if device.type in ("cuda", "mps") else (lambda: None)


def _load_data(cell: Cell, config: SweepConfig, settings: dict[str, Any]) -> Dataset | None:
    """The config's dataset (None without one), described in the cell's settings."""
    if config.dataset is None or is_custom(cell.model):
        return None
    from wattgap.datasets import load
    from wattgap.models import MODELS

    data = load(config, MODELS[cell.model].input_shape(config.image_size)[-1])
    settings.update(data.describe())
    return data


def _tensors(
    images: np.ndarray, labels: np.ndarray, device: torch.device, dtype: torch.dtype | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One split's model inputs and labels on ``device`` (inputs cast to ``dtype`` when given)."""
    import torch

    x = torch.from_numpy(images).to(device)
    return (x.to(dtype) if dtype is not None else x), torch.from_numpy(labels).to(device)


def _top1(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    correct = 0
    for first in range(0, len(y), batch_size):
        prediction = model(x[first : first + batch_size]).argmax(dim=1)
        correct += int((prediction == y[first : first + batch_size]).sum())
    return correct / len(y)


def build_model(
    name: str, config: SweepConfig, num_classes: int | None = None
) -> tuple[nn.Module, tuple[int, ...], int | None]:
    """The model, its input shape without the batch axis, and its number of classes (None: not a
    classifier). ``num_classes`` (a dataset's) overrides the config's."""
    from wattgap.models import MODELS, CustomModel

    if not is_custom(name):
        spec = MODELS[name]
        num_classes = num_classes or config.num_classes
        model = spec.build_torch(config.image_size, num_classes)
        classes = (num_classes or spec.default_num_classes) if spec.task == "classification" else None
        return model, spec.input_shape(config.image_size), classes
    custom = CustomModel(name)
    model = custom.build_torch()
    shape = tuple(config.input_shape) if config.input_shape else custom.declared_input_shape(model)
    if shape is None:
        raise ConfigError(
            f"input_shape: custom model {name!r} declares no input_shape attribute; give input_shape in the config"
        )
    return model, shape, None


def _train_step(
    model: nn.Module,
    cell: Cell,
    config: SweepConfig,
    fetch: Callable[[], torch.Tensor],
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
    classes: int | None,
    generator: torch.Generator,
    device: torch.device,
    settings: dict[str, Any],
) -> Callable[[], Any]:
    import torch
    from torch import nn

    def optimizer(params: Any) -> torch.optim.Optimizer:
        return _optimizer(config, params, cell.workload, settings)

    apply = _applier(cell, device)
    if hasattr(model, "g_ab"):
        return _cyclegan_step(model, fetch, autocast, optimizer, apply, generator, device)

    opt = optimizer(model.parameters())
    with torch.no_grad():
        output = model(fetch())
    if classes is not None and output.dim() == 2:
        labels = torch.randint(0, classes, (cell.batch_size,), generator=generator).to(device)
        criterion: Callable[[torch.Tensor], torch.Tensor] = lambda out: nn.functional.cross_entropy(  # noqa: E731
            out.float(), labels
        )
    else:
        target = torch.randn(output.shape, generator=generator).to(device)
        criterion = lambda out: nn.functional.mse_loss(out.float(), target)  # noqa: E731

    def step() -> None:
        with autocast():
            loss = criterion(model(fetch()))
        apply(loss, opt)

    return step


def _optimizer(config: SweepConfig, params: Any, workload: str, settings: dict[str, Any]) -> torch.optim.Optimizer:
    import torch

    name, rate = config.optimizer_for(workload)
    settings["optimizer"] = f"{name} lr={rate:g} momentum={config.momentum:g}"
    if name == "adam":
        return torch.optim.Adam(params, lr=rate, betas=(config.momentum, 0.999))
    return torch.optim.SGD(params, lr=rate, momentum=config.momentum)


def _applier(cell: Cell, device: torch.device) -> Callable[[torch.Tensor, torch.optim.Optimizer], None]:
    """Backward and optimiser step, through a gradient scaler in fp16 (a no-op scaler otherwise)."""
    import torch

    scaler = torch.amp.GradScaler(device.type, enabled=cell.precision == "fp16")

    def apply(loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return apply


def _cyclegan_step(
    model: nn.Module,
    fetch: Callable[[], torch.Tensor],
    autocast: Callable[[], contextlib.AbstractContextManager[Any]],
    optimizer: Callable[[Any], torch.optim.Optimizer],
    apply: Callable[[torch.Tensor, torch.optim.Optimizer], None],
    generator: torch.Generator,
    device: torch.device,
) -> Callable[[], Any]:
    """One CycleGAN iteration as in Zhu et al.: least-squares adversarial losses, cycle (lambda 10) and
    identity (0.5 x 10) L1 losses; generators then discriminators. The history pool of fakes is left out."""
    import itertools

    import torch
    from torch import nn

    g_ab, g_ba, d_a, d_b = (cast(nn.Module, getattr(model, name)) for name in ("g_ab", "g_ba", "d_a", "d_b"))
    opt_g = optimizer(itertools.chain(g_ab.parameters(), g_ba.parameters()))
    opt_d = optimizer(itertools.chain(d_a.parameters(), d_b.parameters()))
    mse, l1 = nn.functional.mse_loss, nn.functional.l1_loss
    lambda_cycle, lambda_identity = 10.0, 0.5

    def set_discriminators(trainable: bool) -> None:
        for param in itertools.chain(d_a.parameters(), d_b.parameters()):
            param.requires_grad_(trainable)

    def adversarial(prediction: torch.Tensor, real: bool) -> torch.Tensor:
        target = torch.ones_like(prediction) if real else torch.zeros_like(prediction)
        return mse(prediction.float(), target.float())

    shape = fetch().shape
    domain_b = torch.randn(shape, generator=generator).to(device)

    def step() -> None:
        real_a, real_b = fetch(), domain_b
        set_discriminators(False)
        with autocast():
            fake_b, fake_a = g_ab(real_a), g_ba(real_b)
            cycle = l1(g_ba(fake_b).float(), real_a.float()) + l1(g_ab(fake_a).float(), real_b.float())
            identity = l1(g_ab(real_b).float(), real_b.float()) + l1(g_ba(real_a).float(), real_a.float())
            loss_g = (
                adversarial(d_b(fake_b), True)
                + adversarial(d_a(fake_a), True)
                + lambda_cycle * cycle
                + lambda_cycle * lambda_identity * identity
            )
        apply(loss_g, opt_g)
        set_discriminators(True)
        with autocast():
            loss_d = 0.5 * (
                adversarial(d_a(real_a), True)
                + adversarial(d_a(fake_a.detach()), False)
                + adversarial(d_b(real_b), True)
                + adversarial(d_b(fake_b.detach()), False)
            )
        apply(loss_d, opt_d)

    return step


def count_flops(step: Callable[[], Any]) -> int:
    """Floating-point operations of one step, by PyTorch's flop counter (matmuls and convolutions,
    2 per multiply-add; forward and backward in training). 0 when the counter cannot run."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())
