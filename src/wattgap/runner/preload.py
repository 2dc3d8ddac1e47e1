"""What the fork server imports once, so that the cells forked from it do not (runner/forkserver.py): the
cell runner and PyTorch with the parts every PyTorch cell reaches for (nn, optimisers, the FLOP counter,
the zoo). Imports only: no tensor is made, so no thread pool or device is initialised before a fork
(a fork after OpenMP or CUDA has started is not safe). Other frameworks (TensorFlow, ONNX Runtime,
OpenVINO) are imported by the cells that use them, after the fork."""

from __future__ import annotations

import importlib

MODULES = (
    "torch",
    "torch.nn",
    "torch.optim",
    "torch.utils.flop_counter",
    "torch.utils._python_dispatch",
    "torch._dynamo",  # what the FLOP counter imports on first use (1.4 s on the CI machine)
    "wattgap.runner.worker",
    "wattgap.runner.cell",
    "wattgap.models.torch",
    "wattgap.backends.torch_runtime",
)

for _name in MODULES:
    importlib.import_module(_name)
