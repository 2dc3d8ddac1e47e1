from __future__ import annotations

import pytest
import torch

from wattgap.errors import ConfigError
from wattgap.models import MODELS
from wattgap.models.build import ModelOptions, build_model, count_parameters
from wattgap.models.sources import check_model_name


@pytest.mark.parametrize("name", ["conv6", "vgg16", "resnet18", "resnet50", "resnet101"])
def test_classifier_parameter_counts_match_references(name: str) -> None:
    spec = MODELS[name]
    model = spec.build_torch(spec.reference_image_size, spec.reference_num_classes)
    assert count_parameters(model) == spec.reference_params["model"]


def test_cyclegan_components_match_references() -> None:
    spec = MODELS["cyclegan"]
    model = spec.build_torch(256)
    assert count_parameters(model.g_ab) == count_parameters(model.g_ba) == 11_378_179
    assert count_parameters(model.d_a) == count_parameters(model.d_b) == 2_764_737


def test_reference_counts_are_the_design_numbers() -> None:
    expected = {
        "resnet18": 11_689_512,
        "resnet50": 25_557_032,
        "resnet101": 44_549_160,
        "vgg16": 138_357_544,
        "conv6": 2_262_602,
    }
    assert {n: MODELS[n].reference_params["model"] for n in expected} == expected


@pytest.mark.parametrize("name", ["conv6", "vgg16", "resnet18", "resnet50", "resnet101"])
def test_classifiers_run_at_cifar_size(name: str) -> None:
    model = MODELS[name].build_torch(image_size=32, num_classes=10).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)


def test_cyclegan_generator_keeps_shape_and_discriminator_is_patchwise() -> None:
    model = MODELS["cyclegan"].build_torch(image_size=64).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        assert model(x).shape == x.shape
        assert model.d_a(x).shape == (1, 1, 6, 6)


def test_conv6_rejects_sizes_it_cannot_take() -> None:
    with pytest.raises(ValueError, match="divisible by 8"):
        MODELS["conv6"].build_torch(image_size=30)


def test_custom_model_names_are_checked_without_importing() -> None:
    check_model_name("helpers.usermodels:tiny")
    with pytest.raises(ConfigError, match="cannot be found"):
        check_model_name("no_such_package.mod:build")
    with pytest.raises(ConfigError, match="models: got 'resnet17'"):
        check_model_name("resnet17")


def test_custom_model_declares_its_input_shape() -> None:
    _, inputs, classes = build_model("helpers.usermodels:tiny", ModelOptions())
    assert [(spec.name, spec.shape, spec.dtype) for spec in inputs] == [("input", [3, 8, 8], "float32")]
    assert classes is None
    with pytest.raises(ConfigError, match="does not declare its inputs; give input_shape"):
        build_model("helpers.usermodels:no_shape", ModelOptions())
