"""TensorFlow: the Keras twin of the zoo model (weights copied from the seeded PyTorch model, so every
stack runs the same network), or a user's Keras file, SavedModel or Keras callable, called inside a
``tf.function``; ``tf-xla`` compiles it with XLA
(``jit_compile=True``). Channels-last inputs, as TensorFlow's CPU kernels want. Mixed precision by Keras
policies (``mixed_bfloat16``, ``mixed_float16`` with loss scaling in training). The first call traces
(and, with XLA, compiles) the function: it is timed as ``compile_s``, outside the measured window."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

from wattgap.backends.base import Backend, Capabilities, Needs, Optimizer, Phase, Prepared, missing_packages
from wattgap.devices import synchronize
from wattgap.fs import CELL_SCRATCH
from wattgap.measure.flops import count_step
from wattgap.models import MODELS
from wattgap.models.build import reference_model
from wattgap.models.inputs import InputSpec, synthesize
from wattgap.models.sources import kind_of

if TYPE_CHECKING:
    import numpy as np

    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.devices import Hardware
    from wattgap.measure.flops import StepCount

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
        modes=frozenset({"infer", "train"}),
        frameworks=frozenset({"keras"}),
    )

    def unavailable_reason(self) -> str:
        return missing_packages(("tensorflow", "keras"), "tensorflow")

    def unsupported_reason(self, cell: Cell, hardware: Hardware, needs: Needs) -> str:
        reason = super().unsupported_reason(cell, hardware, needs)
        if reason:
            return reason
        kind = cell.device.partition(":")[0]
        source = kind_of(cell.model)
        if cell.precision in POLICIES and source in ("keras", "savedmodel"):
            return (
                f"a saved Keras model keeps the dtype policy it was saved with; {cell.precision} needs a model "
                "built under a mixed policy (give a package.module:callable that builds it)"
            )
        if needs.mode != "infer" and source == "savedmodel":
            return "a SavedModel's serving signature runs inference only"
        if cell.model == "cyclegan" and needs.mode == "train":
            return f"{self.name} trains the classifiers; CycleGAN's four-network step exists in PyTorch only"
        if cell.precision == "fp16" and kind != "cuda":
            return "TensorFlow's CPU kernels have little float16: fp16 runs on CUDA"
        if kind == "cuda" and not _gpu_build():
            return "the installed TensorFlow (tensorflow-cpu) has no GPU support"
        return ""

    def prepare(self, cell: Cell, config: SweepConfig, phase: Phase, needs: Needs) -> Prepared:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        scratch = os.environ.get(CELL_SCRATCH)
        if scratch:  # in a cell's own process: autograph's generated code goes where the runner removes it
            tempfile.tempdir = scratch
        import numpy as np
        import tensorflow as tf

        phase("load")
        if cell.threads is not None:
            tf.config.threading.set_intra_op_parallelism_threads(cell.threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        model = _zoo(cell, config) if cell.model in MODELS else _user(cell, config)
        kind, _, index = cell.device.partition(":")
        device = f"/GPU:{index or 0}" if kind == "cuda" else "/CPU:0"
        settings: dict[str, Any] = {
            "tf_threads": cell.threads,
            "xla": self.jit_compile,
            "layout": "NHWC" if cell.model in MODELS else "the model's own",
            "onednn": _onednn(),
            "precision_applied": f"keras policy {POLICIES[cell.precision]}" if cell.precision in POLICIES else "fp32",
        }
        phase("prepare")
        batch = synthesize(model.inputs, cell.batch_size, config.seed)
        forward = tf.function(lambda x: model.call(x, False), jit_compile=self.jit_compile)
        with tf.device(device):
            inputs = tf.nest.map_structure(tf.constant, model.arrange(batch))
            if needs.mode == "infer":
                step: Callable[[], Any] = lambda: forward(inputs)  # noqa: E731
            else:
                step = _train_step(tf, model, inputs, cell, config, needs.optimizer, settings, self.jit_compile)
            started = time.perf_counter()
            step()  # traces the function (and compiles it with XLA)
            compile_s = time.perf_counter() - started

        def predict(given: dict[str, np.ndarray]) -> np.ndarray:  # through the same (XLA-compiled) function
            with tf.device(device):
                output = forward(tf.nest.map_structure(tf.constant, model.arrange(given)))
            return model.restore(np.asarray(output, dtype=np.float32))

        sync = getattr(tf.experimental, "sync_devices", None)
        return Prepared(
            step=(lambda: (step(), sync())) if kind == "cuda" and sync else step,
            samples_per_step=cell.batch_size,
            sync=lambda: synchronize(cell.device),
            count_step=model.counter(batch),
            parameters=model.parameters,
            input_shape=tuple(model.inputs[0].shape),
            inputs=model.inputs,
            settings=settings,
            predict=predict if needs.mode == "infer" else None,
            host_timer=True,
            phase_s={"compile_s": compile_s},
        )


class TfXla(TfEager):
    name = "tf-xla"
    description = "TensorFlow/Keras in a tf.function compiled by XLA (jit_compile=True)"
    jit_compile = True


@dataclass
class _Model:
    """What a cell drives, whatever the source: ``arrange`` turns a batch (inputs by name, channels first
    for the zoo) into what ``call(x, training)`` takes, ``restore`` turns an output back (channels first
    for the zoo's images); ``keras_model`` trains (None: a SavedModel's signature, which does not)."""

    inputs: list[InputSpec]
    arrange: Callable[[dict[str, np.ndarray]], Any]
    call: Callable[[Any, bool], Any]
    restore: Callable[[np.ndarray], np.ndarray]
    keras_model: Any
    parameters: int
    classes: int | None
    counter: Callable[[dict[str, np.ndarray]], Callable[[], StepCount] | None]


def _zoo(cell: Cell, config: SweepConfig) -> _Model:
    """The Keras twin of a zoo model under the cell's precision policy, with the seeded PyTorch model's
    weights; FLOPs are counted on that PyTorch model (the same network)."""
    import keras
    import numpy as np

    from wattgap.models.keras.transfer import copy_torch_weights

    reference, inputs, classifier = reference_model(cell.model, config.model_options(cell.model), config.seed)
    spec = MODELS[cell.model]
    keras.mixed_precision.set_global_policy(POLICIES.get(cell.precision, "float32"))
    model = spec.build_keras(config.image_size, config.num_classes)
    source: Any = reference.g_ab if cell.model == "cyclegan" else reference
    copy_torch_weights(source, model)

    def counter(batch: dict[str, np.ndarray]) -> Callable[[], StepCount]:
        import torch

        example = torch.from_numpy(batch[inputs[0].name])
        return lambda: count_step(lambda: source(example), source)

    return _Model(
        inputs=inputs,
        arrange=lambda batch: batch[inputs[0].name].transpose(0, 2, 3, 1),
        call=lambda x, training: model(x, training=training),
        restore=lambda out: out.transpose(0, 3, 1, 2) if out.ndim == 4 else out,
        keras_model=model,
        parameters=sum(int(np.prod(w.shape)) for w in model.trainable_weights),
        classes=(config.num_classes or spec.default_num_classes) if classifier else None,
        counter=counter,
    )


def _user(cell: Cell, config: SweepConfig) -> _Model:
    """A user's Keras file, SavedModel or Keras callable, fed as it declares its inputs. Its FLOPs are
    not counted (unknown, never guessed)."""
    import keras

    from wattgap.models.keras.user import load_keras

    keras.mixed_precision.set_global_policy(POLICIES.get(cell.precision, "float32"))  # a callable builds under it
    source = load_keras(cell.model, config.seed)
    options = config.model_options(cell.model)
    return _Model(
        inputs=options.inputs_for(source.declared, cell.model),
        arrange=source.arrange,
        call=source.call,
        restore=lambda out: out,
        keras_model=source.model,
        parameters=source.parameters,
        classes=None,
        counter=lambda batch: None,
    )


def _train_step(
    tf: Any,
    model: _Model,
    inputs: Any,
    cell: Cell,
    config: SweepConfig,
    chosen: Optimizer,
    settings: dict[str, Any],
    jit_compile: bool,
) -> Callable[[], Any]:
    """Forward, the loss (cross-entropy against seeded labels for a classifier, else mean squared error
    against a seeded target), backward and an optimiser step, in one tf.function."""
    import keras
    import numpy as np

    trained = model.keras_model
    if trained is None:
        raise ValueError("a SavedModel's serving signature runs inference only")
    settings["optimizer"] = chosen.describe()
    optimizer = (
        keras.optimizers.Adam(chosen.learning_rate, beta_1=chosen.momentum)
        if chosen.name == "adam"
        else keras.optimizers.SGD(chosen.learning_rate, momentum=chosen.momentum)
    )
    if cell.precision == "fp16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    rng = np.random.default_rng(config.seed)
    if model.classes is not None:
        labels = tf.constant(rng.integers(0, model.classes, cell.batch_size))
        cross_entropy = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        loss_fn = lambda output: cross_entropy(labels, output)  # noqa: E731
    else:
        shape = tuple(trained(inputs, training=False).shape)
        target = tf.constant(rng.standard_normal(shape, dtype=np.float32))
        loss_fn = lambda output: tf.reduce_mean(tf.square(output - target))  # noqa: E731

    @tf.function(jit_compile=jit_compile)
    def step() -> Any:
        with tf.GradientTape() as tape:
            loss = loss_fn(tf.cast(trained(inputs, training=True), tf.float32))
            scaled = optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss
        gradients = tape.gradient(scaled, trained.trainable_variables)
        optimizer.apply(gradients, trained.trainable_variables)
        return loss

    return step
