"""Where a model comes from: the zoo, a user's ``package.module:callable``, a file (ONNX, Keras,
SavedModel, a saved ``torch.export`` program, TorchScript) or a transformers folder (``hf:folder``).
Naming and checking a source costs nothing (no framework import, no user code run); what each source
declares about its inputs is read by its own framework (runner/probe.py asks in a subprocess before a
run, each cell again for itself), and resolved against the config's ``inputs`` / ``input_shape`` here."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from wattgap.errors import ConfigError, field_error
from wattgap.models import MODELS
from wattgap.models.inputs import IMAGE, Dtype, InputSpec

Kind = Literal["zoo", "callable", "onnx", "keras", "savedmodel", "torch-export", "torchscript", "hf"]
Framework = Literal["torch", "keras", "onnx"]
SUFFIXES: dict[str, Kind] = {".onnx": "onnx", ".keras": "keras", ".pt2": "torch-export", ".pt": "torchscript"}
FRAMEWORKS: dict[str, Framework] = {
    "onnx": "onnx",
    "keras": "keras",
    "savedmodel": "keras",
    "torch-export": "torch",
    "torchscript": "torch",
    "hf": "torch",
}
HF_PREFIX = "hf:"
ALLOWED = (
    "a zoo model ({zoo}), package.module:callable, a .onnx, .keras, .pt2 (torch.export) or .pt (TorchScript) "
    "file, a SavedModel folder, or hf:folder (a transformers model saved with save_pretrained)"
)
HF_SEQUENCE = 128  # tokens per sample of a transformers model when no input shape is given (fewer if it allows fewer)


def kind_of(name: str) -> Kind | None:
    """The source ``name`` designates, from its form alone (None: none); files need not exist."""
    if name.startswith(HF_PREFIX):
        return "hf"
    if name in MODELS:
        return "zoo"
    suffix = Path(name).suffix.lower()
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    try:
        if (Path(name) / "saved_model.pb").is_file():
            return "savedmodel"
    except OSError:  # a name too long for a path is no folder
        pass
    if ":" in name and "/" not in name.partition(":")[0]:
        return "callable"
    return None


def path_of(name: str) -> Path:
    return Path(name.removeprefix(HF_PREFIX))


def check_model_name(name: str, field_name: str = "models") -> None:
    """A ConfigError unless ``name`` is a zoo model, an importable ``module:callable``, an existing file
    of a known kind or a transformers folder; nothing is imported but the callable's parent packages."""
    kind = kind_of(name)
    if kind is None:
        raise field_error(field_name, name, ALLOWED.format(zoo=", ".join(MODELS)))
    if kind == "callable":
        check_callable(name, field_name, ALLOWED.format(zoo=", ".join(MODELS)))
    elif kind == "hf":
        if importlib.util.find_spec("transformers") is None:
            raise ConfigError(f"{field_name}: {name!r}: hf: models need transformers (pip install 'wattgap[hf]')")
        if not (path_of(name) / "config.json").is_file():
            raise ConfigError(
                f"{field_name}: {name!r}: no folder {str(path_of(name))!r} holding a config.json (hf: reads a local "
                "folder written by save_pretrained, or one with only its config.json; nothing is downloaded)"
            )
    elif kind != "zoo" and not path_of(name).is_file() and kind != "savedmodel":
        what = "is a folder, not a file" if path_of(name).is_dir() else "does not exist"
        raise ConfigError(f"{field_name}: {name!r} {what}")


def check_callable(name: str, field_name: str, allowed: str) -> None:
    """A ConfigError unless ``name`` is ``package.module:callable`` with a module on the Python path
    (found by importlib: only its parent packages are imported)."""
    module_name, _, attr = name.partition(":")
    if not module_name or not attr.isidentifier():
        raise field_error(field_name, name, allowed)
    try:
        found = importlib.util.find_spec(module_name)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise ConfigError(f"{field_name}: module {module_name!r} of {name!r} cannot be found on the Python path")


def identity(name: str) -> dict[str, Any]:
    """What the run stores to say which model it measured, without running it: the source kind, its file
    (a callable's defining module, found by importlib; a folder for SavedModel and hf:) and a SHA-256 of
    its content (a folder's: of every file's relative path and content). None where it cannot be found."""
    kind = kind_of(name)
    path: Path | None
    if kind == "callable":
        try:
            spec = importlib.util.find_spec(name.partition(":")[0])
            path = Path(spec.origin) if spec is not None and spec.has_location and spec.origin else None
        except (ImportError, ValueError):
            path = None
    else:
        path = path_of(name).resolve()
    found: dict[str, Any] = {"kind": kind, "file": str(path) if path is not None else None, "sha256": None}
    try:
        weights = _onnx_external_data(path) if kind == "onnx" and path is not None else []
    except ValueError:  # not an ONNX model: the probe says so
        weights = []
    if weights and path is not None:  # the graph's weights live beside it: the identity covers them too
        for location in weights:
            _check_inside(name, path.parent, location)
        found["external_data"] = weights
    with contextlib.suppress(OSError):  # unreadable: the probe says why
        found["sha256"] = _digest(path, weights) if path is not None else None
    return found


def _check_inside(name: str, folder: Path, location: str) -> None:
    """A ConfigError unless ``location`` (a path an ONNX graph names for its external data) resolves, links
    followed, to a regular file inside the graph's folder: a graph may not make wattgap (or ONNX Runtime)
    read a device, a FIFO or a file elsewhere. Nothing is opened to find out."""
    root = folder.resolve()
    target = (folder / location).resolve()
    if Path(location).is_absolute() or not target.is_relative_to(root):
        raise ConfigError(
            f"models: {name!r} names external data at {location!r}, outside the graph's folder {str(root)!r}; "
            "external data must lie in that folder"
        )
    try:
        status = target.stat()
    except FileNotFoundError:  # no identity is claimed for it, and loading the graph says what is missing
        return
    except OSError as error:
        raise ConfigError(f"models: {name!r} names external data at {location!r}: {error.strerror}") from None
    if not stat.S_ISREG(status.st_mode):
        raise ConfigError(f"models: {name!r} names external data at {location!r}, which is not a regular file")


def _digest(path: Path, beside: Sequence[str] = ()) -> str:
    """SHA-256 of a file, or of a folder's files (each relative path and content); with ``beside`` (files
    the file refers to, relative to its folder), of the file's digest followed by each of theirs."""
    sha = hashlib.sha256()
    if beside:
        sha.update(bytes.fromhex(_digest(path)))
        parts = [(name, path.parent / name) for name in beside]
    elif path.is_dir():
        parts = [(str(item.relative_to(path)), item) for item in _regular_files(path)]
    else:
        with path.open("rb") as file:
            status = os.fstat(file.fileno())
            if not stat.S_ISREG(status.st_mode):  # a device or FIFO never ends: read no further
                raise OSError(f"{str(path)!r} is not a regular file")
            left = status.st_size  # what the file held when opened, and no more
            while left > 0:
                block = file.read(min(left, 1 << 20))
                if not block:
                    break
                sha.update(block)
                left -= len(block)
        return sha.hexdigest()
    for name, item in parts:
        sha.update(name.encode() + b"\0")
        sha.update(bytes.fromhex(_digest(item)))
    return sha.hexdigest()


def _regular_files(folder: Path) -> list[Path]:
    """The regular files in ``folder`` and below it, sorted; links are not followed (a link in a model's
    folder to a file or folder elsewhere is no part of the model's identity)."""
    found = []
    for root, _, files in os.walk(folder, followlinks=False):
        for file_name in files:
            item = Path(root) / file_name
            if stat.S_ISREG(item.lstat().st_mode):
                found.append(item)
    return sorted(found)


def _onnx_external_data(path: Path) -> list[str]:
    """The files, relative to the graph's folder, that an ONNX graph keeps tensors in (its external data),
    in every subgraph and constant; none for a self-contained file."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf's DecodeError and friends: not an ONNX model (the probe says so)
        raise ValueError(str(error)) from None
    found: set[str] = set()
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        tensors = list(graph.initializer)
        for node in graph.node:
            for attribute in node.attribute:
                tensors.extend([attribute.t, *attribute.tensors])
                graphs.extend([attribute.g, *attribute.graphs])
        for tensor in tensors:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                found.update(entry.value for entry in tensor.external_data if entry.key == "location")
    return sorted(found)


@dataclass(frozen=True)
class Declared:
    """An input as a model declares it: a size of 0 is one the model leaves free (besides the batch);
    ``default`` fills the free sizes when the user gives none (a transformers model's sequence length)."""

    name: str
    shape: tuple[int, ...]
    dtype: Dtype
    range: list[float] | None = None
    default: tuple[int, ...] | None = None

    def fits(self, shape: tuple[int, ...] | list[int]) -> bool:
        """``shape`` has this input's rank and its fixed sizes."""
        return len(shape) == len(self.shape) and all(d in (0, g) for d, g in zip(self.shape, shape, strict=True))

    def text(self) -> str:
        return f"{self.name} {self.dtype}[{'x'.join(str(d) if d else '?' for d in self.shape)}]"


def resolve_inputs(
    declared: list[Declared] | None,
    inputs: tuple[InputSpec, ...] | None,
    input_shape: tuple[int, ...] | None,
    model: str,
) -> list[InputSpec]:
    """The inputs a model is fed, in the order it takes them: the config's ``inputs`` checked against what
    the model declares; else ``input_shape`` given to every declared input (or to one float input when the
    model declares nothing); else what the model declares, when that is complete. A ConfigError names what
    to add otherwise."""
    if inputs:
        given = list(inputs)
        if declared is not None:
            _check_against(given, declared, model)
            by_name = {spec.name: spec for spec in given}
            return [by_name[d.name] for d in declared]
        return given
    if declared is None:
        if input_shape is None:
            raise ConfigError(
                f"inputs: {model!r} does not declare its inputs; give input_shape (one float input, e.g. "
                "input_shape: [3, 224, 224] or --input-shape 3,224,224) or an inputs section (names, shapes, dtypes)"
            )
        return [InputSpec(name=IMAGE, shape=list(input_shape))]
    specs = []
    for spec in declared:
        shape = input_shape or spec.default or spec.shape
        if not spec.fits(shape):
            raise ConfigError(
                f"input_shape: got {list(input_shape or ())}; allowed: a shape that fits input {spec.text()} of "
                f"{model!r} (? is free)"
            )
        if 0 in shape:
            raise ConfigError(
                f"inputs: input {spec.text()} of {model!r} has free sizes; give input_shape or an inputs section"
            )
        if spec.range is None and spec.dtype not in ("float32", "float16", "float64", "bool"):
            raise ConfigError(
                f"inputs: input {spec.text()} of {model!r} needs a value range; give an inputs section with "
                f"range: [low, high] for {spec.name!r} (e.g. [0, vocabulary size] for token ids)"
            )
        specs.append(InputSpec(name=spec.name, shape=list(shape), dtype=spec.dtype, range=spec.range))
    return specs


def _check_against(given: list[InputSpec], declared: list[Declared], model: str) -> None:
    names = [spec.name for spec in declared]
    if sorted(spec.name for spec in given) != sorted(names):
        raise ConfigError(f"inputs: got {[s.name for s in given]}; allowed: the inputs {model!r} declares, {names}")
    by_name = {spec.name: spec for spec in given}
    for spec in declared:
        mine = by_name[spec.name]
        if not spec.fits(mine.shape) or mine.dtype != spec.dtype:
            raise ConfigError(
                f"inputs.{spec.name}: got {mine.describe()}; allowed: what {model!r} declares, {spec.text()}"
            )


def onnx_declared(path: Path) -> list[Declared]:
    """An ONNX graph's inputs (initializers excluded), the first axis taken as the batch's; a file that is
    not a readable ONNX model raises ValueError."""
    import onnx
    from onnx import helper

    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as error:  # protobuf's DecodeError and friends: the file is not an ONNX model
        raise ValueError(f"{str(path)!r} is not a readable ONNX model ({type(error).__name__}: {error})") from None
    if not graph.input:
        raise ValueError(f"{str(path)!r} holds no ONNX graph with inputs")
    weights = {item.name for item in graph.initializer}
    declared = []
    for item in graph.input:
        if item.name in weights:
            continue
        tensor = item.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tensor.shape.dim]
        dtype = str(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
        if not dims:
            raise ValueError(f"{str(path)!r}: input {item.name!r} has no batch axis")
        declared.append(Declared(item.name, tuple(dims[1:]), dtype_named(dtype, item.name)))
    return declared


def onnx_parameters(path: Path) -> int:
    """Elements of the graph's weights: its floating-point initializers, and the int8 ones of rank 2 or
    more (a quantized graph's weights; not its shape constants, scales or zero points)."""
    import onnx
    from onnx import TensorProto

    floats = {TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16}
    integers = {TensorProto.INT8, TensorProto.UINT8}
    total = 0
    for item in onnx.load(str(path), load_external_data=False).graph.initializer:
        if item.data_type in floats or (item.data_type in integers and len(item.dims) >= 2):
            count = 1
            for dim in item.dims:
                count *= int(dim)
            total += count
    return total


def dtype_named(name: str, input_name: str) -> Dtype:
    allowed: tuple[Dtype, ...] = ("float32", "float16", "float64", "int64", "int32", "int8", "uint8", "bool")
    for dtype in allowed:
        if name == dtype:
            return dtype
    raise ValueError(f"input {input_name!r} is {name}, which wattgap cannot synthesise ({', '.join(allowed)})")


def torch_dtype_name(dtype: Any) -> Dtype:
    return dtype_named(str(dtype).removeprefix("torch."), "input")
