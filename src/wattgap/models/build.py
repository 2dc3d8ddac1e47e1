"""Building the PyTorch model of a cell, from any source PyTorch can run (the zoo, a callable returning an
``nn.Module``, a saved ``torch.export`` program, TorchScript, a transformers folder), with the inputs it
is fed (models/inputs.py); the seeded fp32 reference every PyTorch-based backend starts from, and
parameter counts. Takes plain options, not the sweep config: models sit below every other layer."""

from __future__ import annotations

import contextlib
import importlib
import os
import pickle
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wattgap.errors import ConfigError
from wattgap.models import MODELS
from wattgap.models.inputs import InputSpec, image_inputs
from wattgap.models.sources import HF_SEQUENCE, Declared, kind_of, path_of, resolve_inputs, torch_dtype_name

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class ModelOptions:
    """What shapes a built model: the input side, the number of classes, and a user model's inputs (its
    ``input_shape``, or the ``inputs`` section; each None for the model's own)."""

    image_size: int | None = None
    num_classes: int | None = None
    input_shape: tuple[int, ...] | None = None
    inputs: tuple[InputSpec, ...] | None = None

    def inputs_for(self, declared: list[Declared] | None, model: str) -> list[InputSpec]:
        """The inputs ``model`` is fed, given what it declares (None: nothing): see ``resolve_inputs``."""
        return resolve_inputs(declared, self.inputs, self.input_shape, model)


@contextlib.contextmanager
def weights_only(name: str, form: str) -> Iterator[None]:
    """While the block loads a file, PyTorch unpickles weights-only: tensors and plain containers, never
    a callable (TORCH_FORCE_WEIGHTS_ONLY_LOAD overrides even a call that asks for full unpickling, as
    torch.export's loader does when the weights-only reader refuses). A file that needs more is refused:
    a ConfigError naming its form and why."""
    given = os.environ.get(WEIGHTS_ONLY)
    os.environ[WEIGHTS_ONLY] = "1"
    try:
        yield
    except pickle.UnpicklingError as error:
        reason = " ".join(str(error).split())[:200]
        raise ConfigError(
            f"models: {name!r}: this {form} file holds pickled Python objects that only a full unpickler would "
            f"rebuild, which can run any code; wattgap loads model files weights-only ({reason})"
        ) from None
    finally:
        if given is None:
            os.environ.pop(WEIGHTS_ONLY, None)
        else:
            os.environ[WEIGHTS_ONLY] = given


WEIGHTS_ONLY = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"


class NotTorch(ValueError):
    """A source that is not a PyTorch model (a callable returning a Keras model)."""


def build_model(
    name: str, options: ModelOptions, num_classes: int | None = None
) -> tuple[nn.Module, list[InputSpec], int | None]:
    """The model, the inputs it is fed (in the order its forward takes them) and its number of classes
    (None: not a classifier). ``num_classes`` (a dataset's) overrides the options'."""
    kind = kind_of(name)
    if kind == "zoo":
        spec = MODELS[name]
        num_classes = num_classes or options.num_classes
        model = spec.build_torch(options.image_size, num_classes)
        classes = (num_classes or spec.default_num_classes) if spec.task == "classification" else None
        return model, image_inputs(spec.input_shape(options.image_size)), classes
    if kind == "callable":
        module, declared = _callable(name)
        return module, options.inputs_for(declared, name), None
    if kind == "torch-export":
        module, declared = _program(name)
        return module, options.inputs_for(declared, name), None
    if kind == "torchscript":
        import torch

        module = torch.jit.load(str(path_of(name)), map_location="cpu")  # TorchScript's own reader: no Python pickle
        return module, options.inputs_for(None, name), None
    if kind == "hf":
        adapter, declared, classes = _transformers(name)
        return adapter, options.inputs_for(declared, name), classes
    raise NotTorch(f"{name!r} is a {kind} model, which PyTorch does not run")


def _callable(name: str) -> tuple[nn.Module, list[Declared] | None]:
    from torch import nn

    module_name, attr = name.split(":", 1)
    builder = getattr(importlib.import_module(module_name), attr)
    built = builder()
    if not isinstance(built, nn.Module):
        raise NotTorch(f"{name!r} returned a {type(built).__module__}.{type(built).__qualname__}, not an nn.Module")
    for owner in (built, builder):
        shape = getattr(owner, "input_shape", None)
        if shape is not None:
            return built, [Declared("input", tuple(int(v) for v in shape), "float32")]
    return built, None


def _program(name: str) -> tuple[nn.Module, list[Declared]]:
    """A saved ``torch.export`` program's module and its user inputs as the program declares them. The
    module refuses train() and eval() (the program was captured in one mode and keeps it): both become
    no-ops on this instance, so that every backend's set-up runs on it, and it stays what torch.export,
    torch.onnx and torch.compile take."""
    import types

    import torch
    from torch.export.pt2_archive import constants

    with zipfile.ZipFile(path_of(name)) as archive:
        entries = archive.namelist()
    for entry in entries:
        inside = entry.partition("/")[2]  # below the archive's root folder
        if inside.startswith(constants.AOTINDUCTOR_DIR) or f"/{constants.OPAQUE_OBJ_FILENAME_PREFIX}" in entry:
            what = "compiled AOTInductor code" if inside.startswith(constants.AOTINDUCTOR_DIR) else "a pickled object"
            raise ConfigError(
                f"models: {name!r}: this torch.export archive holds {what} ({entry}), which loading would run; "
                "wattgap loads a saved program's graph and weights only"
            )
    with weights_only(name, "torch.export"):
        program = torch.export.load(str(path_of(name)))
    names = set(program.graph_signature.user_inputs)
    declared = []
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in names:
            value = node.meta["val"]
            sizes = tuple(int(d) if isinstance(d, int) else 0 for d in value.shape[1:])
            declared.append(Declared(node.name, sizes, torch_dtype_name(value.dtype)))
    module = program.module()
    module.training = False
    module.train = types.MethodType(lambda self, mode=True: self, module)  # type: ignore[method-assign]
    module.eval = types.MethodType(lambda self: self, module)  # type: ignore[method-assign]
    return module, declared


def _transformers(name: str) -> tuple[nn.Module, list[Declared], int | None]:
    """A transformers model from a local folder (its weights when the folder has them, else seeded random
    weights from its config; never a download), as a module taking (input_ids, attention_mask) and
    returning the logits of a classifier or the last hidden state of an encoder. A classifier trains with
    its own loss (make_train_step)."""
    import torch
    from torch import nn
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification

    folder = str(path_of(name))
    never_remote = {"local_files_only": True, "trust_remote_code": False}  # no download, no code from the folder
    config = AutoConfig.from_pretrained(folder, **never_remote)
    classifier = any(arch.endswith("ForSequenceClassification") for arch in (config.architectures or []))
    auto = AutoModelForSequenceClassification if classifier else AutoModel
    safetensors = any(path_of(name).glob("*.safetensors"))  # preferred: tensors only, no pickle at all
    if safetensors or any(path_of(name).glob("*.bin")):
        with weights_only(name, "transformers .bin"):
            model = auto.from_pretrained(folder, use_safetensors=safetensors, **never_remote)
    else:
        model = auto.from_config(config, trust_remote_code=False)
    sequence = min(HF_SEQUENCE, int(getattr(config, "max_position_embeddings", HF_SEQUENCE) or HF_SEQUENCE))
    vocabulary = float(config.vocab_size)
    declared = [
        Declared("input_ids", (0,), "int64", [0.0, vocabulary], default=(sequence,)),
        Declared("attention_mask", (0,), "int64", [1.0, 2.0], default=(sequence,)),
    ]
    classes = int(config.num_labels) if classifier else None

    class Transformer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            output = self.model(input_ids=input_ids, attention_mask=attention_mask)
            return output.logits if classifier else output.last_hidden_state

        def make_train_step(self, parts: Any) -> Any:
            if not classifier:
                from wattgap.models.torch.objective import supervised_step

                return supervised_step(self, parts)
            opt = parts.optimizer(self.parameters())
            labels = torch.randint(0, classes or 1, (parts.batch_size,), generator=parts.generator).to(parts.device)

            def step() -> None:
                input_ids, attention_mask = parts.fetch()
                with parts.autocast():
                    loss = self.model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
                parts.apply(loss.float(), opt)

            return step

    return Transformer(), declared, classes


def reference_model(name: str, options: ModelOptions, seed: int) -> tuple[nn.Module, list[InputSpec], bool]:
    """The fp32 PyTorch model every PyTorch-based backend starts from, on the CPU in eval mode: the same
    seed, hence the same weights, as every cell's own. Also its inputs and whether it is a classifier."""
    import torch

    torch.manual_seed(seed)
    model, inputs, classes = build_model(name, options)
    return model.eval(), inputs, classes is not None


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
