"""Backends other than torch-eager, for real on small shapes: onnxruntime (fp32, int8 QDQ), torch-compile,
TensorFlow, OpenVINO and torchao, the guardrail against the fp32 reference, skip reasons, converter failures
and the comparison by backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import fast_config, wattgap

import wattgap as api
from wattgap.backends import BACKENDS
from wattgap.config import parse_config
from wattgap.devices import cpu_info, detect
from wattgap.measure.guardrail import compare_outputs
from wattgap.plan import expand

pytestmark = pytest.mark.slow  # real sweeps and stacks: make test runs it, make test-fast does not

FLAGS = cpu_info()["flags"]


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, api.Run]:
    folder = tmp_path_factory.mktemp("stacks")
    config = fast_config(
        backends=[
            "torch-eager",
            "onnxruntime",
            "torch-compile",
            "tf-eager",
            "tf-xla",
            "tensorrt",
            "openvino",
            "torchao",
        ],
        precisions=["fp32", "bf16", "int8"],  # fp16's skips are planned below: its cells would add 10 s
        calibration_method="minmax",
        calibration_samples=16,
        guardrail_samples=8,
    )
    return folder, api.run(config, db=folder / "wattgap.db")


def _result(run: api.Run, backend: str, precision: str) -> api.CellResult:
    return next(r for r in run.results if r.cell.backend == backend and r.cell.precision == precision)


def test_onnxruntime_fp32_matches_the_reference_and_times_its_phases(stacks: tuple[Path, api.Run]) -> None:
    _, run = stacks
    fp32 = _result(run, "onnxruntime", "fp32")
    assert fp32.status == "ok", fp32.reason
    assert fp32.phases.export_s and fp32.phases.build_s and fp32.phases.calibration_s is None
    assert fp32.settings["providers"] == ["CPUExecutionProvider"] and fp32.settings["ort_threads"] == 1
    assert fp32.agreement is not None and fp32.agreement.top1 == 1.0 and fp32.agreement.max_abs_diff < 1e-4
    assert fp32.flops_per_sample == _result(run, "torch-eager", "fp32").flops_per_sample
    assert _result(run, "torch-eager", "fp32").agreement is None  # the reference itself


def test_int8_is_calibrated_and_checked_against_fp32(stacks: tuple[Path, api.Run]) -> None:
    _, run = stacks
    int8 = _result(run, "onnxruntime", "int8")
    assert int8.status == "ok", int8.reason
    assert int8.phases.calibration_s and int8.phases.calibration_s > 0
    assert (
        "int8 QDQ static" in int8.settings["precision_applied"]
        and "16 synthetic samples" in int8.settings["precision_applied"]
    )
    agreement = int8.agreement
    assert agreement is not None and agreement.samples == 8 and agreement.max_abs_diff > 0
    assert agreement.degraded == (agreement.top1 is not None and agreement.top1 < 0.99)
    assert any("degraded" in w for w in int8.warnings) == agreement.degraded
    x86 = "avx2" in FLAGS or "avx512f" in FLAGS  # ONNX Runtime's U8S8 kernels; S8S8 elsewhere
    assert int8.settings["int8_activation_type"].startswith("uint8 (auto" if x86 else "int8 (auto")
    assert ("reduce_range" in int8.settings["precision_applied"]) == (x86 and "avx512_vnni" not in FLAGS)
    bf16 = _result(run, "torch-eager", "bf16")
    assert bf16.agreement is not None and 0 < bf16.agreement.max_abs_diff < 0.5


def test_torch_compile_keeps_compilation_out_of_the_window(stacks: tuple[Path, api.Run]) -> None:
    _, run = stacks
    compiled = _result(run, "torch-compile", "fp32")
    assert compiled.status == "ok", compiled.reason
    assert compiled.phases.compile_s and compiled.phases.compile_s > 0
    assert compiled.settings["compile_mode"] == "default" and compiled.settings["inductor_freezing"] is True
    assert compiled.settings["memory_format"] == "channels_last (auto)"  # a 4-D convnet on CPU
    assert compiled.agreement is not None and compiled.agreement.max_abs_diff < 1e-4
    assert compiled.latency is not None and compiled.latency.max_s < compiled.phases.compile_s


@pytest.mark.parametrize("backend", ["tf-eager", "tf-xla"])
def test_tensorflow_runs_the_keras_twin_with_the_same_weights(stacks: tuple[Path, api.Run], backend: str) -> None:
    _, run = stacks
    fp32, bf16 = _result(run, backend, "fp32"), _result(run, backend, "bf16")
    assert fp32.status == "ok" and bf16.status == "ok", (fp32.reason, bf16.reason)
    assert fp32.settings["xla"] == (backend == "tf-xla") and fp32.settings["layout"] == "NHWC"
    # TensorFlow's x86 Linux default since 2.9: oneDNN on where the CPU has AVX512_VNNI, AVX512_BF16 or AMX,
    # off on AVX2-only CPUs; the cell records which it ran with
    assert fp32.settings["onednn"] == ("on" if {"avx512_vnni", "avx512_bf16", "amx_bf16"} & set(FLAGS) else "off")
    assert fp32.phases.compile_s and fp32.phases.compile_s > 0
    assert fp32.parameters == _result(run, "torch-eager", "fp32").parameters
    assert fp32.agreement is not None and fp32.agreement.max_abs_diff < 1e-4 and fp32.agreement.top1 == 1.0
    assert bf16.settings["precision_applied"] == "keras policy mixed_bfloat16"
    assert bf16.agreement is not None and 0 < bf16.agreement.max_abs_diff < 0.5


def test_tensorflow_trains(tmp_path: Path) -> None:
    run = api.run(fast_config(backends=["tf-xla"], workloads=["train"], image_size=16), db=tmp_path / "w.db")
    result = run.results[0]
    assert result.status == "ok", result.reason
    assert result.settings["optimizer"] == "sgd lr=0.01 momentum=0.9" and result.agreement is None
    assert result.latency is not None and result.latency.median_s > 0


def test_what_a_backend_cannot_run_is_skipped_with_its_reason(stacks: tuple[Path, api.Run]) -> None:
    _, run = stacks
    reasons = {(r.cell.backend, r.cell.precision): r.reason for r in run.results if r.status == "skipped"}
    plan = expand(parse_config(fast_config(backends=sorted(BACKENDS), precisions=["fp16"])), detect())
    reasons.update({(c.backend, c.precision): plan.skipped[c.cell_id] for c in plan.cells if c.cell_id in plan.skipped})
    assert "has no int8" in reasons[("torch-eager", "int8")]
    assert "fp16 runs on CUDA" in reasons[("onnxruntime", "fp16")]
    assert "has no bf16" in reasons[("onnxruntime", "bf16")]
    assert "has no int8" in reasons[("torch-compile", "int8")]
    assert "fp16 runs on CUDA" in reasons[("tf-xla", "fp16")]
    assert "has no int8" in reasons[("tf-eager", "int8")]
    assert "NVIDIA GPUs only" in reasons[("tensorrt", "int8")]
    assert "has no fp32" in reasons[("torchao", "fp32")]
    assert "has no fp16" in reasons[("openvino", "fp16")]
    if not {"avx512_bf16", "amx_bf16"} & set(FLAGS):
        assert "AVX-512 BF16 or AMX" in reasons[("openvino", "bf16")]


def test_openvino_runs_the_exported_graph_at_each_precision(stacks: tuple[Path, api.Run]) -> None:
    _, run = stacks
    fp32, int8 = _result(run, "openvino", "fp32"), _result(run, "openvino", "int8")
    assert fp32.status == "ok" and int8.status == "ok", (fp32.reason, int8.reason)
    for result in (fp32, int8):
        assert result.phases.export_s and result.phases.read_s and result.phases.compile_s
        assert result.settings["performance_hint"] == "LATENCY" and result.settings["num_streams"] == 1
        assert result.settings["inference_threads"] == 1 and result.settings["inference_precision"] == "f32"
    assert fp32.agreement is not None and fp32.agreement.max_abs_diff < 1e-3 and fp32.agreement.top1 == 1.0
    assert int8.phases.calibration_s and int8.settings["openvino_int8"] == "nncf"  # OpenVINO's own route
    assert int8.settings["precision_applied"].startswith("int8 NNCF post-training quantization")
    assert int8.agreement is not None and int8.agreement.max_abs_diff > 0
    bf16 = _result(run, "openvino", "bf16")
    if bf16.status == "ok":
        assert bf16.settings["inference_precision"] == "bf16"
        assert bf16.agreement is not None and 0 < bf16.agreement.max_abs_diff < 0.5


def test_torchao_int8_is_exported_calibrated_and_compiled(stacks: tuple[Path, api.Run]) -> None:
    _, run = stacks
    int8 = _result(run, "torchao", "int8")
    assert int8.status == "ok", int8.reason
    assert int8.phases.export_s and int8.phases.calibration_s and int8.phases.compile_s
    assert int8.settings["precision_applied"].startswith("int8 PT2E static, X86InductorQuantizer")
    assert int8.settings["inductor_freezing"] is True and int8.settings["capture"] == "torch.export strict"
    assert int8.agreement is not None and int8.agreement.max_abs_diff > 0
    assert int8.latency is not None and int8.latency.max_s < int8.phases.compile_s
    assert int8.flops_per_sample == _result(run, "torch-eager", "fp32").flops_per_sample


def test_compare_by_backend_and_precision(stacks: tuple[Path, api.Run]) -> None:
    folder, run = stacks
    result = wattgap("compare", run.run_id, run.run_id, "--by", "backend", "--format", "json", cwd=folder)
    assert result.returncode == 0, result.stderr
    pairs = json.loads(result.stdout)["pairs"]
    assert {(p["a"], p["b"]) for p in pairs} >= {("torch-eager", "onnxruntime"), ("torch-eager", "torch-compile")}
    for pair in pairs:
        assert pair["latency_change"] == pytest.approx(1 / pair["speedup"] - 1)
    table = wattgap("compare", run.run_id, run.run_id, "--by", "precision", cwd=folder)
    assert table.returncode == 0 and "int8" in table.stdout and "B latency vs A" in table.stdout


def test_a_model_the_exporter_cannot_trace_is_a_failed_cell(tmp_path: Path) -> None:
    config = fast_config(models=["helpers.usermodels:data_dependent", "conv6"], backends=["onnxruntime"])
    run = api.run(config, db=tmp_path / "w.db")
    failed, fine = run.results
    assert failed.status == "failed" and "export" in failed.reason and "\x1b" not in failed.reason
    assert fine.status == "ok"  # the sweep went on


def test_agreement_statistics() -> None:
    reference = np.array([[1.0, 2.0, 0.0], [3.0, 0.0, 1.0], [0.0, 0.0, 5.0], [1.0, 0.0, 0.0]])
    same = compare_outputs(reference, reference, classifier=True, threshold=0.99)
    assert same.top1 == 1.0 and same.max_abs_diff == 0 and not same.degraded
    flipped = reference.copy()
    flipped[0] = [2.0, 1.0, 0.0]  # one of four argmaxes moves
    changed = compare_outputs(reference, flipped, classifier=True, threshold=0.99)
    assert changed.top1 == 0.75 and changed.degraded and changed.max_abs_diff == 1.0
    assert changed.mean_rel_diff == pytest.approx((2 / 12) / (13 / 12))
    assert compare_outputs(reference, flipped, classifier=True, threshold=0.7).degraded is False
    broken = compare_outputs(reference, np.full_like(reference, np.nan), classifier=False, threshold=0.99)
    assert broken.degraded and broken.top1 is None


def test_outputs_that_are_not_a_classifiers_have_a_threshold_and_a_figure() -> None:
    """int8 cells of a user's regression model said 'outputs with fp32', no number, never degraded."""
    reference = np.array([[1.0, 2.0], [3.0, 4.0]])
    close = compare_outputs(reference, reference * 1.02, classifier=False, threshold=0.99, max_rel_diff=0.10)
    assert not close.degraded and close.text() == "outputs 2.0% from fp32 (mean relative difference; at most 10%)"
    far = compare_outputs(reference, reference * 1.3, classifier=False, threshold=0.99, max_rel_diff=0.10)
    assert far.degraded and "30.0% from fp32" in far.text()


def test_calibration_takes_what_a_smaller_dataset_holds() -> None:
    from wattgap.backends.onnx_export import calibration_batches
    from wattgap.config import parse_config
    from wattgap.models.inputs import image_inputs

    config = parse_config(fast_config(dataset="digits"))
    batches = calibration_batches(config, image_inputs((3, 32, 32)), 5000)  # digits trains on 1437
    sizes = [len(batch["input"]) for batch in batches]
    assert min(sizes) > 0 and sum(sizes) < 5000 and all(size == 16 for size in sizes[:-1])
