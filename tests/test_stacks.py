"""Each stack at its documented best: the int8 scheme chosen by the CPU, the quantized graph that really
has it, PyTorch's memory format as an axis, and the settings a backend cannot take, refused before
anything runs (issue: every stack at its documented best)."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from helpers import fast_config, wattgap

import wattgap as api
from wattgap.backends import onnx_export
from wattgap.backends.settings import QdqSettings
from wattgap.cells import Cell
from wattgap.config import parse_config
from wattgap.devices import GpuInfo, Hardware
from wattgap.errors import ConfigError
from wattgap.plan import check, expand

pytestmark = pytest.mark.slow  # real sweeps and stacks: make test runs it, make test-fast does not

ZEN4 = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni")
SKYLAKE = ("avx2", "fma", "avx512f")
NO_BF16 = Hardware(physical_cores=2, logical_cores=2, cuda_reason="none", mps_reason="none", cpu_flags=SKYLAKE)
WITH_GPU = Hardware(
    physical_cores=2,
    logical_cores=2,
    gpus=(GpuInfo(0, "NVIDIA H100", 80 * 2**30, "9.0", 132),),
    mps_reason="none",
    cpu_flags=ZEN4,
)


@pytest.mark.parametrize(
    ("chosen", "flags", "machine", "activation", "reduce_range"),
    [
        ("auto", ZEN4, "x86_64", "uint8", False),  # U8S8 with VNNI: no saturation, full 8-bit weights
        ("auto", SKYLAKE, "x86_64", "uint8", True),  # U8S8 without VNNI: 7-bit weights against saturation
        ("auto", ("avx2", "fma"), "AMD64", "uint8", True),
        ("auto", (), "aarch64", "int8", False),  # S8S8 outside x86
        ("auto", (), "x86_64", "int8", False),  # an x86 CPU without AVX2 has neither fast path
        ("int8", ZEN4, "x86_64", "int8", False),
        ("uint8", SKYLAKE, "x86_64", "uint8", True),
        ("uint8", (), "arm64", "uint8", False),
    ],
)
def test_the_int8_scheme_follows_the_cpu(
    chosen: str, flags: tuple[str, ...], machine: str, activation: str, reduce_range: bool
) -> None:
    scheme = onnx_export.int8_scheme(chosen, flags, machine)
    assert (scheme.activation, scheme.reduce_range, scheme.symmetric) == (activation, reduce_range, False)
    assert scheme.why.startswith("auto") == (chosen == "auto")


@pytest.mark.parametrize("activation", ["uint8", "int8"])
def test_the_quantized_graph_has_the_activation_type_asked_for(activation: str) -> None:
    own = {"calibration_samples": 4, "calibration_method": "minmax"}
    config = parse_config(fast_config(precisions=["int8"], backends={"onnxruntime": own}))
    cell = Cell(model="conv6", workload="infer", backend="onnxruntime", device="cpu", precision="int8", batch_size=2)
    scheme = onnx_export.int8_scheme(activation, ZEN4, "x86_64")
    settings = config.settings("backends", "onnxruntime", QdqSettings)
    graph = onnx_export.prepare_graph(cell, config, settings, lambda _: None, scheme)
    model = onnx.load(str(graph.path))
    initializers = {i.name: i for i in model.graph.initializer}
    zero_points = [node.input[2] for node in model.graph.node if node.op_type == "QuantizeLinear"]
    activation_types = {initializers[name].data_type for name in zero_points if name in initializers}
    expected = onnx.TensorProto.UINT8 if activation == "uint8" else onnx.TensorProto.INT8
    assert activation_types == {expected}  # every activation quantized to the asked type, and only to it
    weights = [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in initializers]
    assert weights and {initializers[n.input[0]].data_type for n in weights} >= {onnx.TensorProto.INT8}
    assert graph.settings["int8_activation_type"] == f"{activation} (int8_activation_type)"
    assert graph.phase_s["export_s"] > 0 and graph.phase_s["calibration_s"] > 0


def _reasons(config: dict[str, object], hardware: Hardware) -> dict[str, str]:
    plan = expand(parse_config(config), hardware)
    return {c.label: plan.skipped.get(c.cell_id, "") for c in plan.cells}


def test_settings_a_backend_does_not_have_are_skipped_before_running() -> None:
    reasons = _reasons(
        fast_config(
            backends=["torch-eager", "onnxruntime", "openvino", "torchao"],
            precisions=["fp32", "bf16", "int8"],
            memory_formats=["auto", "contiguous"],
            int8_activation_type="int8",  # an earlier version's key: each backend that has the setting takes it
        ),
        NO_BF16,
    )
    assert reasons["conv6/infer/torch-eager/cpu/fp32/b2/t1/contiguous"] == ""
    assert reasons["conv6/infer/onnxruntime/cpu/int8/b2/t1"] == ""
    assert reasons["conv6/infer/onnxruntime/cpu/fp32/b2/t1/contiguous"] == (
        "memory_format contiguous is a PyTorch layout; onnxruntime chooses its own"
    )
    assert reasons["conv6/infer/torchao/cpu/int8/b2/t1"] == ""  # torchao has no such setting: its own type
    assert reasons["conv6/infer/openvino/cpu/bf16/b2/t1"] == (
        "OpenVINO's bf16 needs a CPU with AVX-512 BF16 or AMX; this one has neither"
    )
    assert reasons["conv6/infer/openvino/cpu/int8/b2/t1"] == (
        "int8_activation_type applies to openvino's int8: qdq; NNCF chooses its own activation types"
    )


def test_openvino_runs_on_cpus_only() -> None:
    reasons = _reasons(fast_config(backends=["openvino"], devices=["cuda"], precisions=["fp32", "bf16"]), WITH_GPU)
    assert set(reasons.values()) == {"openvino does not run on cuda (it runs on cpu)"}


def test_int8_settings_without_int8_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^backends.onnxruntime.int8_activation_type: got 'uint8'; allowed: auto \(it applies to int8",
    ):
        check(parse_config(fast_config(backends={"onnxruntime": {"int8_activation_type": "uint8"}})))
    with pytest.raises(ConfigError, match=r"^backends.torchao.int8_activation_type: unknown key; allowed keys: "):
        check(parse_config(fast_config(backends={"torchao": {"int8_activation_type": "uint8"}})))
    with pytest.raises(
        ConfigError, match=r"^int8_activation_type: got 'uint8'; it is a setting of onnxruntime, openvino"
    ):
        parse_config(fast_config(backends=["torch-eager"], int8_activation_type="uint8"))  # owned by none swept
    config = tmp_path / "sweep.yaml"
    config.write_text("models: [conv6]\nbackends: [onnxruntime]\nprecisions: [fp32]\nint8_activation_type: uint8\n")
    result = wattgap("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "wattgap.db").exists()


def test_memory_format_is_an_axis_applied_to_model_and_inputs(tmp_path: Path) -> None:
    config = fast_config(
        models=["conv6", "helpers.usermodels:slow"], memory_formats=["auto", "contiguous", "channels_last"]
    )
    run = api.run(config, db=tmp_path / "w.db")
    by_label = {r.cell.label: r for r in run.results}
    assert len({r.cell_id for r in run.results}) == 6
    assert by_label["conv6/infer/torch-eager/cpu/fp32/b2/t1"].settings["memory_format"] == "channels_last (auto)"
    assert by_label["conv6/infer/torch-eager/cpu/fp32/b2/t1/contiguous"].settings["memory_format"] == "contiguous"
    layouts = [r for r in run.results if r.cell.model == "conv6"]
    assert all(r.status == "ok" for r in layouts), [r.reason for r in layouts]
    assert len({r.flops_per_sample for r in layouts}) == 1  # the same math in each layout
    # a 2-D input has no channels-last layout: auto keeps it contiguous, asking for it explicitly fails
    model = "helpers.usermodels:slow/infer/torch-eager/cpu/fp32/b2/t1"
    assert by_label[model].settings["memory_format"] == "contiguous (auto)"
    failed = by_label[f"{model}/channels_last"]
    assert failed.status == "failed" and "channels_last needs one 4-D input" in failed.reason


def test_openvino_can_run_the_graph_onnxruntime_runs(tmp_path: Path) -> None:
    """openvino's int8: qdq, the QDQ graph calibrated for ONNX Runtime, in the activation type asked for."""
    config = fast_config(
        backends={"openvino": {"int8": "qdq"}, "onnxruntime": None},
        precisions=["int8"],
        int8_activation_type="int8",
        calibration_samples=8,
    )
    openvino, onnxruntime = api.run(config, db=tmp_path / "w.db").results
    assert openvino.status == "ok" and onnxruntime.status == "ok", (openvino.reason, onnxruntime.reason)
    assert openvino.settings["openvino_int8"] == "qdq"
    assert openvino.settings["precision_applied"] == onnxruntime.settings["precision_applied"]
    assert openvino.settings["int8_activation_type"] == "int8 (int8_activation_type)"
