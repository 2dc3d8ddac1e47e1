"""The backend registry: a new backend is one module plus one line here. Backend modules import their
framework only inside methods, so this registry is cheap to import."""

from __future__ import annotations

from wattgap.backends.base import Backend, Capabilities, Needs, Prepared
from wattgap.backends.onnx_runtime import OnnxRuntime
from wattgap.backends.openvino import OpenVino
from wattgap.backends.tensorrt import TensorRT
from wattgap.backends.tf_keras import TfEager, TfXla
from wattgap.backends.torch_compile import TorchCompile
from wattgap.backends.torch_eager import TorchEager
from wattgap.backends.torchao import TorchAo

BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        TorchEager(),
        TorchCompile(),
        TorchAo(),
        TfEager(),
        TfXla(),
        OnnxRuntime(),
        OpenVino(),
        TensorRT(),
    )
}

__all__ = ["BACKENDS", "Backend", "Capabilities", "Needs", "Prepared"]
