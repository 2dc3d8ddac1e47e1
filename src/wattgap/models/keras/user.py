"""A user's TensorFlow model: a saved Keras file (``.keras``), a SavedModel folder (its serving
signature), or a ``package.module:callable`` returning a Keras model (built under the cell's dtype
policy, seeded). Each comes with its inputs as it declares them and its parameter count."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wattgap.errors import ConfigError
from wattgap.models.sources import Declared, dtype_named, kind_of, path_of


@dataclass
class KerasSource:
    """``arrange`` turns a batch (inputs by name) into what ``call(x, training)`` takes; ``model`` is the
    Keras model, or None for a SavedModel (whose serving signature does not train)."""

    arrange: Callable[[dict[str, Any]], Any]
    call: Callable[[Any, bool], Any]
    model: Any
    declared: list[Declared]
    parameters: int


def load_keras(name: str, seed: int) -> KerasSource:
    import keras

    kind = kind_of(name)
    if kind == "savedmodel":
        return _saved_model(name)
    if kind == "keras":
        try:  # safe mode: a Lambda layer's pickled Python (bytecode) is refused, never run
            model = keras.saving.load_model(str(path_of(name)), compile=False, safe_mode=True)
        except ValueError as error:
            if "safe_mode" not in str(error):
                raise
            raise ConfigError(
                f"models: {name!r}: this Keras file holds Python code (a Lambda layer's bytecode), which loading "
                "would run; wattgap loads Keras files in safe mode (build the model from your code instead: "
                "package.module:callable)"
            ) from None
    else:
        module_name, attr = name.split(":", 1)
        keras.utils.set_random_seed(seed)
        model = getattr(importlib.import_module(module_name), attr)()
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"{name!r} returned a {type(model).__module__}.{type(model).__qualname__}, not a Keras model"
            )
    declared = [_declared(tensor.name, tensor.shape, tensor.dtype) for tensor in model.inputs]
    names = [spec.name for spec in declared]

    def arrange(batch: dict[str, Any]) -> Any:
        given = [batch[n] for n in names]
        return given if len(given) > 1 else given[0]

    return KerasSource(
        arrange,
        lambda x, training: model(x, training=training),
        model,
        declared,
        int(model.count_params()),
    )


def _saved_model(name: str) -> KerasSource:
    import numpy as np
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path_of(name)))
    signatures = getattr(loaded, "signatures", {})
    if "serving_default" not in signatures:
        raise ValueError(f"{name!r} has no serving_default signature to call")
    signature = signatures["serving_default"]
    specs = signature.structured_input_signature[1]
    declared = [_declared(key, spec.shape, spec.dtype.name) for key, spec in specs.items()]
    output = sorted(signature.structured_outputs)[0]

    def call(batch: dict[str, Any], training: bool, owner: Any = loaded) -> Any:
        return signature(**batch)[output]  # ``owner`` keeps the variables the signature only references

    parameters = sum(int(np.prod(v.shape)) for v in loaded.trainable_variables)
    return KerasSource(dict, call, None, declared, parameters)


def _declared(name: str, shape: Any, dtype: Any) -> Declared:
    dims = list(shape)[1:]
    return Declared(name, tuple(int(d) if d is not None else 0 for d in dims), dtype_named(str(dtype), name))
