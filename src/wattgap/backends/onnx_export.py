"""The PyTorch model as ONNX, shared by every ONNX-based backend (onnxruntime, tensorrt, and the coming
openvino): the export with a dynamic batch axis, int8 calibration data and static QDQ quantization, and
the float16 conversion. Each returns the path of the graph it wrote into the cell's scratch folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from wattgap.config import SweepConfig

INPUT, OUTPUT = "input", "output"


def export_onnx(model: Any, input_shape: tuple[int, ...], path: Path) -> Path:
    """The model as ONNX with a dynamic batch axis. A model the exporter cannot handle raises its
    message: the cell fails with it and the sweep goes on."""
    import torch

    example = torch.randn(2, *input_shape)  # batch 2: torch.export specialises a batch of 1
    torch.onnx.export(
        model,
        (example,),
        str(path),
        dynamo=True,
        input_names=[INPUT],
        output_names=[OUTPUT],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        verbose=False,
        external_data=False,
    )
    return path


def opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def calibration_batches(config: SweepConfig, input_shape: tuple[int, ...]) -> list[np.ndarray]:
    """``calibration_samples`` inputs in batches of up to 16: N(0,1) by default (seeded), else the
    dataset's training images as the model sees them."""
    import numpy as np

    count = config.calibration_samples
    if config.dataset is not None:
        from wattgap.datasets import load, model_input, standardise

        data = load(config, input_shape[-1])
        train = model_input(data.x_train, input_shape[0], input_shape[-1])
        samples = standardise(train)[0][:count]
    else:
        samples = np.random.default_rng(config.seed + 2).standard_normal((count, *input_shape), dtype=np.float32)
    return [samples[first : first + 16] for first in range(0, len(samples), 16)]


def quantize_int8(
    path: Path, folder: Path, batches: list[np.ndarray], config: SweepConfig, symmetric: bool = False
) -> Path:
    """Static QDQ quantization; ``symmetric`` (zero points of 0) is what TensorRT's int8 accepts."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items: Iterator[np.ndarray] = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.items, None)
            return None if batch is None else {INPUT: batch}

    prepared = folder / "model.pre.onnx"
    quant_pre_process(str(path), str(prepared))
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[config.calibration_method]
    output = folder / "model.int8.onnx"
    quantize_static(
        str(prepared),
        str(output),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        calibrate_method=method,
        extra_options={"ActivationSymmetric": symmetric, "WeightSymmetric": True},
    )
    return output


def convert_fp16(path: Path, folder: Path) -> Path:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    converted = convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    output = folder / "model.fp16.onnx"
    onnx.save(converted, str(output))
    return output
