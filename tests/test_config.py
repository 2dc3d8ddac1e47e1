from __future__ import annotations

from pathlib import Path

import pytest

from wattgap.backends.openvino import OpenVinoSettings
from wattgap.backends.settings import QdqSettings
from wattgap.backends.torch_compile import CompileSettings
from wattgap.backends.torchao import TorchAoSettings
from wattgap.config import SweepConfig, load_config, load_suite_data, parse_config, suite_names
from wattgap.errors import ConfigError
from wattgap.plan import check
from wattgap.workloads.train_to_accuracy import TrainingSettings


def test_defaults() -> None:
    config = parse_config({"models": ["resnet18"]})
    assert config.workloads == ["infer"] and config.backends == ["torch-eager"]
    assert config.devices == ["auto"] and config.precisions == ["fp32"]
    assert config.protocol.min_iters == 30 and config.protocol.ci_rel_halfwidth == 0.02


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"models": ["resnet17"]}, "models[0]: got 'resnet17'; allowed: a zoo model (conv6, vgg16"),
        (
            {"models": ["conv6"], "devices": ["gpu"]},
            "devices[0]: got 'gpu'; allowed: auto, cpu, cuda, cuda:N, mps",
        ),
        (
            {"models": ["conv6"], "precisions": ["fp8"]},
            "precisions[0]: got 'fp8'; allowed: 'fp32', 'tf32', 'bf16', 'fp16' or 'int8'",
        ),
        (
            {"models": ["conv6"], "batch_sizes": [0]},
            "batch_sizes[0]: got 0; allowed: integers from 1 to 65536",
        ),
        ({"models": ["conv6"], "batch_sizes": [10**7]}, "batch_sizes[0]: got 10000000"),
        (
            {"models": ["conv6"], "batchsize": [1]},
            "batchsize: unknown key; allowed keys: name, description, models",
        ),
        (
            {"models": ["conv6"], "protocol": {"warmup": 1}},
            "protocol.warmup: unknown key; allowed keys: warmup_min_iters",
        ),
        ({"models": ["conv6"], "protocol": {"min_iters": 1}}, "protocol.min_iters: got 1"),
        ({}, "models: required but missing"),
    ],
)
def test_bad_fields_name_the_field_the_allowed_values_and_the_value(data: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_yaml_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("models: [conv6\nworkloads: infer\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_config(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(scalar)


def test_every_shipped_suite_is_valid() -> None:
    assert {"quick", "democratizing-ai", "gdev-ai", "deep-gap"} <= set(suite_names())
    for name in suite_names():
        assert parse_config(load_suite_data(name)).name == name


def test_unknown_suite_lists_the_suites() -> None:
    with pytest.raises(ConfigError, match="--suite: got 'quik'; allowed: "):
        load_suite_data("quik")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"cell_timeout_s": float("inf")}, "cell_timeout_s: got inf; input should be a finite number"),
        ({"protocol": {"max_time_s": float("inf")}}, "protocol.max_time_s: got inf; input should be a finite number"),
        ({"energy": {"idle_s": float("nan")}}, "energy.idle_s: got nan; input should be a finite number"),
        ({"batch_sizes": [True]}, "batch_sizes[0]: got True; allowed: integers from 1 to 65536"),
        ({"image_size": True}, "image_size: got True; input should be a valid integer"),
    ],
)
def test_non_finite_numbers_and_booleans_for_numbers_are_bad_input(data: dict, message: str) -> None:  # type: ignore[type-arg]
    """--timeout inf used to be stored as null, and every reading of that run failed for good."""
    with pytest.raises(ConfigError) as caught:
        parse_config({"models": ["conv6"], **data})
    assert message in str(caught.value)


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    twice = tmp_path / "twice.yaml"
    twice.write_text("models: [conv6]\nbatch_sizes: [1]\nbatch_sizes: [8]\n")
    with pytest.raises(ConfigError, match=r"line 3: key 'batch_sizes' is given twice"):
        load_config(twice)


def test_an_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    """Nine levels of nine aliases: 387 million values once expanded (it took 8.3 GB and printed a 312 MB
    line); refused from the loaded, shared structure, with a short message."""
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [{','.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join([*lines, "models: *a8"]) + "\n")
    with pytest.raises(ConfigError) as caught:
        load_config(bomb)
    assert "over 100000 values once its aliases are expanded" in str(caught.value) and len(str(caught.value)) < 300


def test_a_huge_value_is_quoted_short(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"models": ["conv6"], "devices": ["x" * 100_000]})
    assert len(str(caught.value)) < 400 and "(100002 characters)" in str(caught.value)


def test_a_component_owns_its_settings_and_older_keys_move_to_it() -> None:
    given = {
        "models": ["conv6"],
        "backends": {"torch-eager": None, "torch-compile": {"mode": "max-autotune"}},
        "workloads": {"train-to-accuracy": {"max_epochs": 3}},
        "dataset": "digits",
    }
    config = parse_config(given)
    assert config.backends == ["torch-eager", "torch-compile"] and config.workloads == ["train-to-accuracy"]
    compiled = config.settings("backends", "torch-compile", CompileSettings)
    assert compiled.mode == "max-autotune" and compiled.freezing is True  # what it does not say: the default
    assert config.settings("workloads", "train-to-accuracy", TrainingSettings).max_epochs == 3
    assert config.settings("backends", "openvino", OpenVinoSettings).hint == "latency"  # not swept: defaults
    stored = SweepConfig.model_validate_json(config.model_dump_json(), context={"stored": True})
    assert stored == config  # what a run stores reads back the same
    # the keys of earlier versions move into their component, from a file, flags or a stored run
    older = parse_config({"models": ["conv6"], "backends": ["torch-compile"], "compile_mode": "reduce-overhead"})
    assert older.backend_settings == {"torch-compile": {"mode": "reduce-overhead"}}
    kept = {"models": ["conv6"], "compile_mode": "default", "openvino_hint": "latency", "max_epochs": 10}
    assert SweepConfig.model_validate(kept, context={"stored": True}).backend_settings == {}  # unswept: unused
    with pytest.raises(
        ConfigError, match=r"^backends.torch-compile.mode: given twice \('max-autotune' and 'default'\)"
    ):
        parse_config({**given, "compile_mode": "default"})
    with pytest.raises(ConfigError, match=r"^backends.torch-eager: got 5; allowed: a mapping of its settings"):
        parse_config({**given, "backends": {"torch-eager": 5}})


def test_a_setting_several_components_share_is_each_ones_own() -> None:
    from wattgap.backends.base import Optimizer
    from wattgap.workloads import WORKLOADS

    given = {
        "models": ["conv6"],
        "workloads": {"train": {"optimizer": "adam"}, "train-to-accuracy": {"learning_rate": 0.1}, "infer": None},
        "backends": {"onnxruntime": {"calibration_samples": 8}, "torchao": None, "torch-eager": None},
        "precisions": ["fp32", "int8"],
        "dataset": "digits",
    }
    config = parse_config(given)
    check(config)
    assert config.settings("backends", "onnxruntime", QdqSettings).calibration_samples == 8
    assert config.settings("backends", "torchao", TorchAoSettings).calibration_samples == 64  # not given: its default
    # each training workload's optimiser reaches the backend through what it needs (Needs.optimizer)
    assert WORKLOADS["train"].needs_for(config).optimizer == Optimizer("adam", 0.001, 0.9)
    assert WORKLOADS["train-to-accuracy"].needs_for(config).optimizer == Optimizer("adam", 0.1, 0.9)
    assert WORKLOADS["infer"].needs_for(config) == WORKLOADS["infer"].needs
    # an earlier version's top-level key goes to each component of the sweep that has the setting, from a file
    # or a stored run (which stored every key: one no component of it has is dropped there, refused in a file)
    older = {"models": ["conv6"], "backends": ["onnxruntime", "torchao", "torch-eager"], "calibration_samples": 8}
    assert parse_config(older).backend_settings == {
        "onnxruntime": {"calibration_samples": 8},
        "torchao": {"calibration_samples": 8},
    }
    stored = {**older, "backends": ["torch-eager"], "momentum": 0.5, "optimizer": None, "cudnn_benchmark": False}
    read = SweepConfig.model_validate(stored, context={"stored": True})
    assert read.backend_settings == {"torch-eager": {"cudnn_benchmark": False}} and read.workload_settings == {}
    with pytest.raises(ConfigError, match=r"^momentum: got 0.5; it is a setting of train, train-to-accuracy"):
        parse_config({"models": ["conv6"], "momentum": 0.5})
    with pytest.raises(ConfigError, match=r"^workloads.infer.optimizer: unknown key; allowed keys: none"):
        check(parse_config({"models": ["conv6"], "workloads": {"infer": {"optimizer": "adam"}}}))


def test_a_backend_picked_by_a_flag_keeps_the_suites_settings_for_it() -> None:
    from wattgap.api import sweep_from_options

    cast = {"torch-eager": {"infer_low_precision": "cast"}}  # deep-gap's FP16 is model.half()
    assert sweep_from_options("deep-gap").backend_settings == cast
    picked = sweep_from_options("deep-gap", overrides={"backends": ["torch-eager", "onnxruntime"]})
    assert picked.backends == ["torch-eager", "onnxruntime"] and picked.backend_settings == cast
    assert sweep_from_options("deep-gap", overrides={"backends": ["tensorrt"]}).backend_settings == {}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"backends": {"torch-compile": {"mode": "fast"}}},
            "backends.torch-compile.mode: got 'fast'; allowed: 'default'",
        ),
        (
            {"backends": {"openvino": {"hints": "latency"}}},
            "backends.openvino.hints: unknown key; allowed keys: calibration_samples, calibration_method, "
            "int8_activation_type, hint, int8",
        ),
        ({"backends": {"torch-eager": {"mode": "fast"}}}, "backends.torch-eager.mode: unknown key; allowed keys: "),
        ({"openvino_hint": "throughput"}, "backends.openvino: settings given for openvino, which this sweep does not"),
        ({"backend_settings": {"openvino2": {}}}, "backends.openvino2: got 'openvino2'; allowed: torch-eager"),
        (
            {"max_epochs": 0},
            "workloads.train-to-accuracy.max_epochs: got 0; input should be greater than or equal to 1",
        ),
    ],
)
def test_component_settings_are_checked_by_the_component_on_one_line(fields: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ConfigError) as caught:
        check(parse_config({"models": ["conv6"], **fields}))
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value), str(caught.value)
