from __future__ import annotations

from pathlib import Path

import pytest

from wattgap.config import load_config, load_suite_data, parse_config, suite_names
from wattgap.errors import ConfigError


def test_defaults() -> None:
    config = parse_config({"models": ["resnet18"]})
    assert config.workloads == ["infer"] and config.backends == ["torch-eager"]
    assert config.devices == ["auto"] and config.precisions == ["fp32"]
    assert config.protocol.min_iters == 30 and config.protocol.ci_rel_halfwidth == 0.02


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"models": ["resnet17"]}, "models[0]: got 'resnet17'; allowed: conv6, vgg16"),
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
