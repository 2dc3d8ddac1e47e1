"""The Keras twins of the zoo: exactly the parameter count of each PyTorch model, and with the PyTorch
weights copied in, the same outputs (max abs diff under 1e-4 in fp32, eval mode)."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from wattgap.models import MODELS  # noqa: E402
from wattgap.models.keras import cyclegan  # noqa: E402
from wattgap.models.keras.transfer import copy_torch_weights  # noqa: E402

pytestmark = pytest.mark.slow  # real sweeps and stacks: make test runs it, make test-fast does not


def _trainable(model: object) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)  # type: ignore[attr-defined]


def _calibrate_batch_norm(module: torch.nn.Module, size: int) -> None:
    """Running statistics measured on data (as a trained network has them), so that their copy is tested
    and a deep network's outputs stay O(1) rather than growing through a hundred unnormalised layers."""
    for layer in module.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.momentum = None  # a plain average over the batches below
    module.train()
    with torch.no_grad():
        module(torch.randn(16, 3, size, size, generator=torch.Generator().manual_seed(1)))
        for layer in module.modules():
            if isinstance(layer, torch.nn.BatchNorm2d):  # channels dead on 16 random images would divide
                layer.running_var.clamp_(min=0.25)  # float32 rounding by sqrt(1e-5): not what is tested
    module.eval()


@pytest.mark.parametrize("name", ["conv6", "vgg16", "resnet18", "resnet50", "resnet101"])
def test_classifier_twins_count_and_compute_the_same(name: str) -> None:
    spec = MODELS[name]
    reference = spec.reference_params["model"]
    assert _trainable(spec.build_keras(spec.reference_image_size, spec.reference_num_classes)) == reference
    torch.manual_seed(0)
    size = 32
    source = spec.build_torch(size)
    _calibrate_batch_norm(source, size)
    twin = spec.build_keras(size)
    assert copy_torch_weights(source, twin) > 0
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = source(x).numpy()
    got = np.asarray(twin(x.permute(0, 2, 3, 1).numpy(), training=False))
    assert np.abs(expected - got).max() < 1e-4, (name, np.abs(expected).mean())


@pytest.mark.parametrize("part", ["generator", "discriminator"])
def test_cyclegan_twins_count_and_compute_the_same(part: str) -> None:
    spec = MODELS["cyclegan"]
    full = getattr(cyclegan, part)(spec.reference_image_size)
    assert _trainable(full) == spec.reference_params[part]
    torch.manual_seed(0)
    size = 32
    source = getattr(spec.build_torch(size), "g_ab" if part == "generator" else "d_a").eval()
    twin = getattr(cyclegan, part)(size)
    copy_torch_weights(source, twin)
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = source(x).permute(0, 2, 3, 1).numpy()
    assert np.abs(expected - np.asarray(twin(x.permute(0, 2, 3, 1).numpy()))).max() < 1e-4


def test_mismatched_architectures_are_refused() -> None:
    with pytest.raises(ValueError, match="weighted"):
        copy_torch_weights(MODELS["conv6"].build_torch(32), MODELS["resnet18"].build_keras(32))
