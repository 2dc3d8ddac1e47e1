"""The sweep configuration: pydantic models, YAML loading and the shipped suites. Pure: validating a
config reads no hardware and writes nothing."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from wattgap.errors import ConfigError, field_error, shown
from wattgap.measure.energy.settings import EnergySettings
from wattgap.measure.noise import NoiseSettings
from wattgap.measure.protocol import Protocol
from wattgap.models import is_custom
from wattgap.models.build import ModelOptions
from wattgap.models.inputs import InputSpec
from wattgap.models.sources import check_callable, check_model_name

DatasetName = Literal["digits", "cifar10", "folder"]
Precision = Literal["fp32", "tf32", "bf16", "fp16", "int8"]
MemoryFormat = Literal["auto", "contiguous", "channels_last"]
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DEVICES_ALLOWED = "auto, cpu, cuda, cuda:N, mps"
MAX_BATCH_SIZE = 65_536
MAX_THREADS = 1_024


T = TypeVar("T")


def _each(field: str, values: list[T], valid: Callable[[T], bool], allowed: Iterable[object] | str) -> list[T]:
    """Check every entry of a list field; the first bad one is named with its index."""
    for index, value in enumerate(values):
        if not valid(value):
            raise field_error(f"{field}[{index}]", value, allowed)
    return values


class ComponentSettings(BaseModel):
    """The settings a backend or workload owns (none, unless it declares its own subclass). A sweep gives
    them under the component's name: ``backends: {torch-compile: {mode: max-autotune}}``. Settings that
    several components share are a subclass each of them inherits (backends/settings.py)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    def conflict(self, config: SweepConfig) -> str:
        """Why these settings do not fit the rest of ``config`` (``setting: ...``); empty when they do."""
        return ""


S = TypeVar("S", bound=ComponentSettings)
Axis = Literal["backends", "workloads"]  # the axes whose members own settings (plan.COMPONENTS: their registries)

_TORCH = ("torch-eager", "torch-compile")
_QDQ = ("onnxruntime", "openvino", "tensorrt")  # the backends that quantize through the exported ONNX graph
_TRAINING = ("train", "train-to-accuracy")

# Sweep-level keys of earlier versions that now belong to components' settings: key -> (axis, the components
# that own it, setting). Older sweep files and stored runs give them at the top level; they move to each owner
# the sweep runs (a key none of them runs is refused in a sweep file and dropped from a stored run, which kept
# every key, used or not). A None value there meant "the default" and moves nowhere.
MOVED_KEYS: dict[str, tuple[Axis, tuple[str, ...], str]] = {
    "compile_mode": ("backends", ("torch-compile",), "mode"),
    "compile_freezing": ("backends", ("torch-compile",), "freezing"),
    "openvino_hint": ("backends", ("openvino",), "hint"),
    "openvino_int8": ("backends", ("openvino",), "int8"),
    "cudnn_benchmark": ("backends", (*_TORCH, "torchao"), "cudnn_benchmark"),
    "infer_low_precision": ("backends", _TORCH, "infer_low_precision"),
    "int8_activation_type": ("backends", _QDQ, "int8_activation_type"),
    "calibration_method": ("backends", _QDQ, "calibration_method"),
    "calibration_samples": ("backends", (*_QDQ, "torchao"), "calibration_samples"),
    "target_accuracy": ("workloads", ("train-to-accuracy",), "target_accuracy"),
    "max_epochs": ("workloads", ("train-to-accuracy",), "max_epochs"),
    "optimizer": ("workloads", _TRAINING, "optimizer"),
    "learning_rate": ("workloads", _TRAINING, "learning_rate"),
    "momentum": ("workloads", _TRAINING, "momentum"),
}


def _settle(settings: dict[str, dict[str, Any]], axis: str, name: str, setting: str, value: Any) -> None:
    """Set one setting of a component, refusing two different values for it (a top-level key of an older
    sweep and the component's own entry)."""
    held = settings.setdefault(name, {})
    if setting in held and held[setting] != value:
        raise ConfigError(
            f"{axis}.{name}.{setting}: given twice ({shown(held[setting])} and {shown(value)}); give it once"
        )
    held[setting] = value


def _move(data: dict[str, Any], axis: str, names: Any, settings: dict[str, dict[str, Any]], stored: bool) -> None:
    """Move the keys of older sweeps that ``axis``'s components own (MOVED_KEYS) into their settings."""
    swept = names if isinstance(names, list) else []
    for old, (owner_axis, owners, setting) in MOVED_KEYS.items():
        if owner_axis != axis or old not in data:
            continue
        value = data.pop(old)
        if value is None:
            continue
        taking = [name for name in owners if name in swept]
        if not taking and not stored:
            if len(owners) == 1:  # named, so that the sweep's check says which component is not run
                taking = list(owners)
            else:
                raise ConfigError(
                    f"{old}: got {shown(value)}; it is a setting of {', '.join(owners)} ({axis}: {{NAME: "
                    f"{{{setting}: ...}}}}), and this sweep runs none of them"
                )
        for name in taking:
            _settle(settings, axis, name, setting, value)


def component_settings(model: type[S], given: dict[str, Any], where: str) -> S:
    """``given`` validated into a component's settings ``model``; a problem is one line naming
    ``where.setting``."""
    try:
        return model.model_validate(given)
    except ValidationError as error:
        raise ConfigError(f"{where}.{_describe(error, model)}") from None


class SweepConfig(BaseModel):
    """A sweep: each list is an axis; the cells are their product (see plan.expand)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    name: str = "custom"
    description: str = ""
    models: list[str] = Field(min_length=1)
    # names checked by plan.check; or a mapping of each name to its settings (its model: workloads/<name>)
    workloads: list[str] = Field(default_factory=lambda: ["infer"], min_length=1)
    # names checked by plan.check; or a mapping of each name to its settings (its model: backends/<name>)
    backends: list[str] = Field(default_factory=lambda: ["torch-eager"], min_length=1)
    # each workload's own settings by name, as `workloads` given as a mapping holds them (checked by plan.check)
    workload_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # each backend's own settings by name, as `backends` given as a mapping holds them (checked by plan.check)
    backend_settings: dict[str, dict[str, Any]] = Field(default_factory=dict)
    devices: list[str] = Field(default_factory=lambda: ["auto"], min_length=1)
    precisions: list[Precision] = Field(default_factory=lambda: list[Precision](["fp32"]), min_length=1)
    # default: 32 for train-to-accuracy, else 1; "max": search the largest batch that runs (plan.next_probe)
    batch_sizes: list[int] | Literal["max"] | None = Field(None, min_length=1)
    threads: list[int] | None = None
    image_size: int | None = Field(None, ge=8, le=4096)
    num_classes: int | None = Field(None, ge=1, le=1_000_000)
    input_shape: list[int] | None = None  # a user model's inputs, each this shape (one float input if it says nothing)
    # a user model's inputs, described (models/inputs.py): one list for every user model, or a list per model
    inputs: list[InputSpec] | dict[str, list[InputSpec]] | None = Field(None, min_length=1)
    loss: str | None = None  # train: package.module:callable(output, *inputs) -> loss, for a user's PyTorch model
    # PyTorch's tensor layout, an axis: auto is channels_last for 4-D inputs on CPU and CUDA (README: stacks)
    memory_formats: list[MemoryFormat] = Field(default_factory=lambda: list[MemoryFormat](["auto"]), min_length=1)
    guardrail_samples: int = Field(32, ge=1, le=4096)  # the fixed seeded batch compared with fp32
    min_top1_agreement: float = Field(0.99, ge=0, le=1)  # below it a cell is flagged degraded
    # a model that is not a classifier (no top-1): degraded when its outputs' mean relative difference from
    # the fp32 reference is over this
    max_output_rel_diff: float = Field(0.10, gt=0)
    end_to_end: bool = False
    seed: int = 0
    cell_timeout_s: float = Field(900.0, gt=0)
    # how each cell's process starts: forked from a server that imported PyTorch once (Linux; auto there),
    # or a fresh interpreter that imports it again (exec). Either way a new process per cell.
    process_start: Literal["auto", "forkserver", "exec"] = "auto"
    cpu_roofline: bool = True  # before the first cell, measure the CPU's GEMM rates and bandwidth (the what-if)
    max_host_memory_gb: float | None = Field(None, gt=0)  # GiB; a cell whose processes hold more is out of memory
    protocol: Protocol = Field(default_factory=Protocol)
    energy: EnergySettings = Field(default_factory=EnergySettings)
    noise: NoiseSettings = Field(default_factory=NoiseSettings)  # when a cell is flagged suspect (measure/noise.py)
    dataset: DatasetName | None = None  # real data: train-to-accuracy, and top-1 of infer cells
    dataset_path: str | None = None  # cifar10: the archive or its folder; folder: one subfolder per class
    validation_fraction: float = Field(0.2, gt=0, lt=1)  # digits and folder (CIFAR-10 has its test split)

    @model_validator(mode="before")
    @classmethod
    def _component_settings(cls, data: Any, info: ValidationInfo) -> Any:
        """``backends`` and ``workloads`` given as mappings (name -> its settings) become the lists and the
        ``*_settings`` fields; the keys of older sweeps in MOVED_KEYS move into their component's settings
        (a stored run's, only for the components it swept: it stored every key, used or not)."""
        stored = bool(info.context and info.context.get("stored"))
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for axis in ("workloads", "backends"):
            key = f"{axis[:-1]}_settings"
            given, settings = data.get(axis), data.get(key, {})
            if not isinstance(settings, dict) or not all(isinstance(v, dict) for v in settings.values()):
                continue  # its validation names it
            settings = {name: dict(values) for name, values in settings.items()}
            if isinstance(given, dict):
                for name, values in given.items():
                    if values is not None and not isinstance(values, dict):
                        raise field_error(f"{axis}.{name}", values, "a mapping of its settings, or nothing")
                    for setting, value in (values or {}).items():
                        _settle(settings, axis, str(name), setting, value)
                data[axis] = list(given)
            names = data.get(axis, cls.model_fields[axis].get_default(call_default_factory=True))
            _move(data, axis, names, settings, stored)
            data[key] = settings
        return data

    def settings(self, axis: Axis, name: str, model: type[S]) -> S:
        """The settings of the backend or workload ``name`` in this sweep, as its own ``model``."""
        given = (self.backend_settings if axis == "backends" else self.workload_settings).get(name, {})
        return component_settings(model, given, f"{axis}.{name}")

    @property
    def batch_search(self) -> bool:
        """The batch is searched (``batch_sizes: max``): each configuration's first probe is batch 1."""
        return self.batch_sizes == "max"

    def batch_sizes_for(self, workload: str) -> list[int]:
        """The swept batch sizes (the first probe, 1, when searching), or the default: 1 for latency cells,
        32 for training to accuracy (one sample per step would make an epoch of digits 1,437 optimiser
        steps)."""
        if self.batch_sizes == "max":
            return [1]
        return self.batch_sizes or ([32] if workload == "train-to-accuracy" else [1])

    def repeats_for(self, workload: str) -> int:
        """Fresh processes per cell: ``protocol.repeats``, but one for train-to-accuracy (its figure is a
        whole training, which N repeats would multiply N times)."""
        return 1 if workload == "train-to-accuracy" else self.protocol.repeats

    @property
    def order(self) -> Literal["sweep", "interleaved"]:
        """The order the cells' processes run in: ``protocol.order``, or interleaved when cells repeat (a
        batch search runs in sweep order: each probe is planned from the last)."""
        if self.protocol.order is not None:
            return self.protocol.order
        return "interleaved" if self.protocol.repeats > 1 and not self.batch_search else "sweep"

    @property
    def max_host_memory_bytes(self) -> int | None:
        return None if self.max_host_memory_gb is None else int(self.max_host_memory_gb * 2**30)

    def model_options(self, model: str) -> ModelOptions:
        """What shapes ``model`` as this sweep builds it: its inputs are the ``inputs`` list, or its own entry
        when ``inputs`` is per model (none: it is fed what it declares, or ``input_shape``)."""
        shape = tuple(self.input_shape) if self.input_shape else None
        given = self.inputs.get(model) if isinstance(self.inputs, dict) else self.inputs
        inputs = tuple(given) if given else None
        return ModelOptions(self.image_size, self.num_classes, input_shape=shape, inputs=inputs)

    @model_validator(mode="after")
    def _inputs_once(self) -> SweepConfig:
        if isinstance(self.inputs, list) and self.input_shape is not None:
            raise ConfigError("input_shape: give input_shape or inputs, not both (inputs holds each input's shape)")
        if isinstance(self.inputs, dict):  # input_shape then serves the user models it does not name
            users = [name for name in self.models if is_custom(name)]
            for name in self.inputs:
                if name not in users:
                    raise field_error("inputs", name, f"the user models of models ({', '.join(users) or 'none'})")
        return self

    @model_validator(mode="after")
    def _search_runs_cells(self) -> SweepConfig:
        if self.batch_search and "train-to-accuracy" in self.workloads:
            raise field_error(
                "batch_sizes", "max", "a list of batch sizes", "each probe of train-to-accuracy would train a model"
            )
        if self.batch_search and self.protocol.order == "interleaved":
            raise field_error(
                "protocol.order", "interleaved", "sweep", "a batch search plans each probe from the last one's result"
            )
        return self

    @model_validator(mode="after")
    def _dataset_consistent(self, info: ValidationInfo) -> SweepConfig:
        if "train-to-accuracy" in self.workloads and self.dataset is None:
            raise field_error("dataset", None, "digits, cifar10, folder (train-to-accuracy needs real data)")
        if self.dataset == "folder" and not self.dataset_path:
            raise ConfigError("dataset_path: required for dataset folder (a folder with one subfolder per class)")
        stored = bool(info.context and info.context.get("stored"))  # read back: the data may have moved since
        if self.dataset_path is not None and not stored and not Path(self.dataset_path).exists():
            raise ConfigError(f"dataset_path: {self.dataset_path!r} does not exist")
        return self

    @field_validator("models")
    @classmethod
    def _models_known(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if info.context and info.context.get("stored"):  # a run's stored config: its user models may live elsewhere
            return value
        for index, name in enumerate(value):
            check_model_name(name, f"models[{index}]")
        return value

    @field_validator("loss")
    @classmethod
    def _loss_known(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not (info.context and info.context.get("stored")):
            check_callable(value, "loss", "package.module:callable taking (output, *inputs), returning the loss")
        return value

    @field_validator("inputs")
    @classmethod
    def _inputs_distinct(
        cls, value: list[InputSpec] | dict[str, list[InputSpec]] | None
    ) -> list[InputSpec] | dict[str, list[InputSpec]] | None:
        if value is None:
            return None
        lists = value.items() if isinstance(value, dict) else [("", value)]
        for model, specs in lists:
            names = [spec.name for spec in specs]
            if not specs or len(set(names)) != len(names):
                field = f"inputs[{model!r}]" if model else "inputs"
                raise field_error(field, names, "one or more inputs of distinct names")
        return value

    @field_validator("devices")
    @classmethod
    def _devices_valid(cls, value: list[str]) -> list[str]:
        return _each("devices", value, lambda name: bool(DEVICE_PATTERN.match(name)), DEVICES_ALLOWED)

    @field_validator("batch_sizes", mode="before")
    @classmethod
    def _batches_sane(cls, value: object) -> object:
        allowed = f"a list of integers from 1 to {MAX_BATCH_SIZE}, or max"
        if value is None or value == "max":
            return value
        if not isinstance(value, list):
            raise field_error("batch_sizes", value, allowed)
        return _each(
            "batch_sizes",
            value,
            lambda size: type(size) is int and 1 <= size <= MAX_BATCH_SIZE,
            f"integers from 1 to {MAX_BATCH_SIZE}",
        )

    @field_validator("threads")
    @classmethod
    def _threads_sane(cls, value: list[int] | None) -> list[int] | None:
        if value is None:
            return None
        return _each("threads", value, lambda count: 1 <= count <= MAX_THREADS, f"integers from 1 to {MAX_THREADS}")

    @field_validator("input_shape")
    @classmethod
    def _shape_sane(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (not value or any(v < 1 for v in value)):
            raise field_error("input_shape", value, "a list of positive integers without the batch axis")
        return value


def _describe(error: ValidationError, model: type[BaseModel] | None = None) -> str:
    """One line from the first pydantic error: the field, what was given and what is allowed (``model``:
    the one validated, SweepConfig unless given). (The validators above raise ConfigError, which pydantic
    lets through unchanged: it is not a ValueError.)"""
    first = error.errors()[0]
    location = ""
    for part in first["loc"]:
        location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else str(part))
    location = location or "config"
    given = first.get("input")
    if first["type"] == "extra_forbidden":
        top = model or SweepConfig
        owners: dict[str, type[BaseModel]] = {"protocol": Protocol, "energy": EnergySettings, "noise": NoiseSettings}
        owner = owners.get(location.partition(".")[0], top) if "." in location and model is None else top
        return f"{location}: unknown key; allowed keys: {', '.join(owner.model_fields) or 'none (it has no settings)'}"
    if first["type"] == "missing":
        return f"{location}: required but missing"
    message = first["msg"]
    expected = first.get("ctx", {}).get("expected")
    if expected:
        return f"{location}: got {shown(given)}; allowed: {expected}"
    return f"{location}: got {shown(given)}; {message[0].lower()}{message[1:]}"


def parse_config(data: Any, source: str = "config") -> SweepConfig:
    """Validate a mapping into a SweepConfig; any problem is a one-line ConfigError."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping of config keys, got {type(data).__name__}")
    try:
        return SweepConfig.model_validate(data)
    except ValidationError as error:
        raise ConfigError(f"{source}: {_describe(error)}") from None


M = TypeVar("M", bound=BaseModel)


def validate_flags(model: type[M], flags: dict[str, Any]) -> M:
    """Validate command-line values into ``model``; a problem is one line naming the flag."""
    try:
        return model.model_validate(flags)
    except ValidationError as error:
        message = _describe(error)
        field, _, rest = message.partition(":")
        raise ConfigError(f"--{field.replace('_', '-')}:{rest}") from None


MAX_CONFIG_BYTES = 1_048_576  # a sweep file is a few hundred bytes; this leaves room, not a bomb
MAX_CONFIG_VALUES = 100_000  # values in the config once aliases are expanded


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader that refuses a key given twice in one mapping (the later one would silently
    win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise ConfigError(f"line {mark.line + 1}: key {shown(key)} is given twice; give it once")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _values(data: Any, limit: int) -> int:
    """How many values ``data`` holds once its aliases are expanded, counting no further than ``limit``:
    an alias bomb ("billion laughs") loads as a few shared lists but expands to billions of values."""
    count, stack = 0, [data]
    while stack and count <= limit:
        item = stack.pop()
        count += 1
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return count


def _read_yaml(text: str, source: str) -> Any:
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: {len(text)} characters; a config file may have at most {MAX_CONFIG_BYTES}")
    try:
        data = yaml.load(text, Loader=_Loader)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "malformed YAML"
        raise ConfigError(f"{source}: not valid YAML{where}: {problem}") from None
    if _values(data, MAX_CONFIG_VALUES) > MAX_CONFIG_VALUES:
        raise ConfigError(
            f"{source}: over {MAX_CONFIG_VALUES} values once its aliases are expanded; a sweep needs far fewer"
        )
    return data


def load_config_data(path: str | Path) -> dict[str, Any]:
    """The raw mapping of a YAML config file (validated later, after flags are merged in)."""
    file = Path(path)
    try:
        if not file.is_file():
            raise ConfigError(f"--config: file {str(file)!r} does not exist or is not a file")
        with file.open("rb") as handle:  # the size is checked on what was opened, and no more is read
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_CONFIG_BYTES:
                raise ConfigError(
                    f"--config: {str(file)!r} is {size} bytes; a sweep file is at most {MAX_CONFIG_BYTES} bytes"
                )
            text = handle.read(MAX_CONFIG_BYTES + 1).decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"--config: cannot read {str(file)!r}: {error}") from None
    if len(text) > MAX_CONFIG_BYTES:  # it grew while being read
        raise ConfigError(f"--config: {str(file)!r} is over {MAX_CONFIG_BYTES} bytes")
    data = _read_yaml(text, str(file))
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a mapping of config keys at the top level")
    return data


def suite_names() -> list[str]:
    folder = resources.files("wattgap.resources").joinpath("suites")
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_suite_data(name: str) -> dict[str, Any]:
    names = suite_names()
    if name not in names:
        raise field_error("--suite", name, names)
    text = resources.files("wattgap.resources").joinpath("suites", f"{name}.yaml").read_text("utf-8")
    data = _read_yaml(text, f"suite {name}")
    data.setdefault("name", name)
    return dict(data)


def load_config(path: str | Path) -> SweepConfig:
    return parse_config(load_config_data(path), str(path))
