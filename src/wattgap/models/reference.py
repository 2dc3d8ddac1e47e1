"""The fp32 reference of a model in its own framework, which the guardrail compares every
low-precision or foreign stack with: PyTorch eager for the zoo and PyTorch sources, ONNX Runtime's CPU
provider for an ONNX file, Keras for a Keras file, SavedModel or Keras callable."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wattgap.errors import ConfigError
from wattgap.models.build import ModelOptions, NotTorch, count_parameters, reference_model
from wattgap.models.inputs import InputSpec, synthesize
from wattgap.models.sources import kind_of, onnx_declared, onnx_parameters, path_of

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Reference:
    predict: Callable[[dict[str, np.ndarray]], np.ndarray]  # a batch by input name -> first output, float32
    inputs: list[InputSpec]
    classifier: bool
    label: str  # what the outputs are compared with
    framework: str  # torch, onnx or keras
    parameters: int


def is_reference(name: str, backend: str, precision: str, device: str) -> bool:
    """Whether a cell is the reference of its model itself, known without building anything: PyTorch
    eager fp32 (any model that runs there is a PyTorch one), ONNX Runtime fp32 on the CPU for an ONNX file,
    TensorFlow fp32 for a user's Keras model (a callable on tf-eager builds one)."""
    if precision != "fp32":
        return False
    kind = kind_of(name)
    return (
        backend == "torch-eager"
        or (backend == "onnxruntime" and kind == "onnx" and device == "cpu")
        or (backend == "tf-eager" and kind in ("keras", "savedmodel", "callable"))
    )


def reference(name: str, options: ModelOptions, seed: int) -> Reference:
    kind = kind_of(name)
    if kind == "onnx":
        return _onnx(name, options)
    if kind in ("keras", "savedmodel"):
        return _keras(name, options, seed)
    try:
        return _torch(name, options, seed)
    except NotTorch:
        return _keras(name, options, seed)  # a callable that built a Keras model


def _torch(name: str, options: ModelOptions, seed: int) -> Reference:
    import torch

    network, inputs, classifier = reference_model(name, options, seed)

    def predict(batch: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode():
            return network(*(torch.from_numpy(a) for a in batch.values())).float().numpy()

    label = "PyTorch eager fp32, same weights"
    return Reference(predict, inputs, classifier, label, "torch", count_parameters(network))


def _onnx(name: str, options: ModelOptions) -> Reference:
    import numpy as np
    import onnxruntime as ort

    path = path_of(name)
    inputs = options.inputs_for(onnx_declared(path), name)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def predict(batch: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(session.run(None, batch)[0], dtype=np.float32)

    label = "ONNX Runtime CPU fp32, the file as it is"
    return Reference(predict, inputs, False, label, "onnx", onnx_parameters(path))


def _keras(name: str, options: ModelOptions, seed: int) -> Reference:
    import keras
    import numpy as np

    from wattgap.models.keras.user import load_keras

    keras.mixed_precision.set_global_policy("float32")
    source = load_keras(name, seed)
    inputs = options.inputs_for(source.declared, name)

    def predict(batch: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(source.call(source.arrange(batch), False), dtype=np.float32)

    label = "Keras fp32, called eagerly, same weights"
    return Reference(predict, inputs, False, label, "keras", source.parameters)


def describe(name: str, options: ModelOptions, seed: int) -> dict[str, Any]:
    """What a run stores about a user's model, learnt by loading it in its own framework and running its
    reference once on a batch of 2 of the inputs it will be fed (an input spec that does not fit the model
    fails here, before any cell): its framework, inputs and parameter count."""
    own = reference(name, options, seed)
    try:
        own.predict(synthesize(own.inputs, 2, seed))
    except Exception as error:
        fed = ", ".join(spec.describe() for spec in own.inputs)
        raise ConfigError(
            f"inputs: {name!r} fails on the inputs it would be fed ({fed}): {type(error).__name__}: {error}"
        ) from None
    return {
        "framework": own.framework,
        "inputs": [spec.model_dump(mode="json") for spec in own.inputs],
        "parameters": own.parameters,
    }
