"""TensorFlow: the Keras twin of the zoo model (weights copied from the seeded PyTorch model, so every
stack runs the same network), called inside a ``tf.function``; ``tf-xla`` compiles it with XLA
(``jit_compile=True``). Channels-last inputs, as TensorFlow's CPU kernels want. Mixed precision by Keras
policies (``mixed_bfloat16``, ``mixed_float16`` with loss scaling in training). The first call traces
(and, with XLA, compiles) the function: it is timed as ``compile_s``, outside the measured window."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any

from wattgap.backends.base import Backend, Capabilities, Phase, Prepared, missing_packages
from wattgap.devices import synchronize
from wattgap.measure.flops import count_step
from wattgap.models import MODELS, is_custom
from wattgap.models.build import reference_model

if TYPE_CHECKING:
    import numpy as np

    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.devices import Hardware

POLICIES = {"bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def _onednn() -> str:
    """Whether TensorFlow's oneDNN (MKL) CPU kernels are on in this process: on by default on x86 Linux
    builds since TensorFlow 2.9, off where TF_ENABLE_ONEDNN_OPTS=0."""
    from tensorflow.python.util import _pywrap_util_port  # the check TensorFlow's own tests use

    flag = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    state = "on" if _pywrap_util_port.IsMklEnabled() else "off"
    return f"{state} (TF_ENABLE_ONEDNN_OPTS={flag})" if flag is not None else state


def _gpu_build() -> bool:
    """Whether the installed TensorFlow can use a GPU at all (tensorflow-cpu cannot), without importing it."""
    try:
        metadata.version("tensorflow")
    except metadata.PackageNotFoundError:
        return False
    return True


class TfEager(Backend):
    name = "tf-eager"
    description = "TensorFlow/Keras in a tf.function (graph mode, no XLA)"
    jit_compile = False
    capabilities = Capabilities(
        device_kinds=frozenset({"cpu", "cuda"}),
        precisions=frozenset({"fp32", "bf16", "fp16"}),
        workloads=frozenset({"infer", "train"}),
    )

    def unavailable_reason(self) -> str:
        return missing_packages(("tensorflow", "keras"), "tensorflow")

    def unsupported_reason(self, cell: Cell, hardware: Hardware) -> str:
        reason = super().unsupported_reason(cell, hardware)
        if reason:
            return reason
        kind = cell.device.partition(":")[0]
        if is_custom(cell.model):
            return f"{self.name} runs the zoo's Keras twins; a custom model is a PyTorch module"
        if cell.model == "cyclegan" and cell.workload == "train":
            return f"{self.name} trains the classifiers; CycleGAN's four-network step exists in PyTorch only"
        if cell.precision == "fp16" and kind != "cuda":
            return "TensorFlow's CPU kernels have little float16: fp16 runs on CUDA"
        if kind == "cuda" and not _gpu_build():
            return "the installed TensorFlow (tensorflow-cpu) has no GPU support"
        return ""

    def prepare(self, cell: Cell, config: SweepConfig, phase: Phase) -> Prepared:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import numpy as np
        import tensorflow as tf

        phase("load")
        if cell.threads is not None:
            tf.config.threading.set_intra_op_parallelism_threads(cell.threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        keras, model, reference, input_shape, classes = _twin(cell, config)
        kind, _, index = cell.device.partition(":")
        device = f"/GPU:{index or 0}" if kind == "cuda" else "/CPU:0"
        settings: dict[str, Any] = {
            "tf_threads": cell.threads,
            "xla": self.jit_compile,
            "layout": "NHWC",
            "onednn": _onednn(),
            "precision_applied": f"keras policy {POLICIES[cell.precision]}" if cell.precision in POLICIES else "fp32",
        }
        phase("prepare")
        import torch

        generator = torch.Generator().manual_seed(config.seed)
        host = torch.randn((cell.batch_size, *input_shape), generator=generator).numpy().transpose(0, 2, 3, 1)
        forward = tf.function(lambda x: model(x, training=False), jit_compile=self.jit_compile)
        with tf.device(device):
            inputs = tf.constant(host)
            if cell.workload == "infer":
                step: Callable[[], Any] = lambda: forward(inputs)  # noqa: E731
            else:
                step = _train_step(tf, keras, model, inputs, cell, config, classes, settings, self.jit_compile)
            started = time.perf_counter()
            step()  # traces the function (and compiles it with XLA)
            compile_s = time.perf_counter() - started

        def predict(batch: np.ndarray) -> np.ndarray:  # through the same (XLA-compiled) function
            with tf.device(device):
                output = forward(tf.constant(batch.transpose(0, 2, 3, 1)))
            result = np.asarray(output, dtype=np.float32)
            return result.transpose(0, 3, 1, 2) if result.ndim == 4 else result

        example = torch.from_numpy(host.transpose(0, 3, 1, 2).copy())
        sync = getattr(tf.experimental, "sync_devices", None)
        return Prepared(
            step=(lambda: (step(), sync())) if kind == "cuda" and sync else step,
            samples_per_step=cell.batch_size,
            sync=lambda: synchronize(cell.device),
            count_step=lambda: count_step(lambda: reference(example), reference),  # the same network, in PyTorch
            parameters=sum(int(np.prod(w.shape)) for w in model.trainable_weights),
            input_shape=tuple(input_shape),
            settings=settings,
            predict=predict if cell.workload == "infer" else None,
            host_timer=True,
            phase_s={"compile_s": compile_s},
        )


class TfXla(TfEager):
    name = "tf-xla"
    description = "TensorFlow/Keras in a tf.function compiled by XLA (jit_compile=True)"
    jit_compile = True


def _twin(cell: Cell, config: SweepConfig) -> tuple[Any, Any, Any, tuple[int, ...], int | None]:
    """Keras, the Keras model under the cell's precision policy with the seeded PyTorch model's weights,
    that PyTorch model, the input shape (channels first) and the number of classes."""
    import keras

    from wattgap.models.keras.transfer import copy_torch_weights

    reference, input_shape, classifier = reference_model(cell.model, config.model_options, config.seed)
    spec = MODELS[cell.model]
    keras.mixed_precision.set_global_policy(POLICIES.get(cell.precision, "float32"))
    model = spec.build_keras(config.image_size, config.num_classes)
    source = reference.g_ab if cell.model == "cyclegan" else reference
    copy_torch_weights(source, model)
    classes = (config.num_classes or spec.default_num_classes) if classifier else None
    return keras, model, source, input_shape, classes


def _train_step(
    tf: Any,
    keras: Any,
    model: Any,
    inputs: Any,
    cell: Cell,
    config: SweepConfig,
    classes: int | None,
    settings: dict[str, Any],
    jit_compile: bool,
) -> Callable[[], Any]:
    """Forward, cross-entropy against seeded labels, backward and an optimiser step, in one tf.function."""
    import numpy as np

    name, rate = config.optimizer_for(cell.workload)
    settings["optimizer"] = f"{name} lr={rate:g} momentum={config.momentum:g}"
    optimizer = (
        keras.optimizers.Adam(rate, beta_1=config.momentum)
        if name == "adam"
        else keras.optimizers.SGD(rate, momentum=config.momentum)
    )
    if cell.precision == "fp16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    labels = tf.constant(np.random.default_rng(config.seed).integers(0, classes or 1, cell.batch_size))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    @tf.function(jit_compile=jit_compile)
    def step() -> Any:
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, tf.cast(model(inputs, training=True), tf.float32))
            scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
        gradients = tape.gradient(scaled, model.trainable_variables)
        optimizer.apply(gradients, model.trainable_variables)
        return loss

    return step
