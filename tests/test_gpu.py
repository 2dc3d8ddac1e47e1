"""CUDA paths, run with ``pytest -m gpu`` on a machine with an NVIDIA GPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from helpers import fast_config

import wattgap
from wattgap.analysis.speedup import compare

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU with CUDA"),
]


def test_cuda_cells_time_with_events_and_report_device_memory(tmp_path: Path) -> None:
    config = fast_config(
        models=["resnet18"],
        workloads=["infer", "train"],
        devices=["cuda", "cpu"],
        precisions=["fp32", "tf32", "fp16", "bf16"],
        batch_sizes=[8],
        infer_low_precision="cast",
    )
    run = wattgap.run(config, db=tmp_path / "w.db")
    cuda = [r for r in run.results if r.cell.device == "cuda"]
    assert len(cuda) == 8 and {r.status for r in cuda} == {"ok"}, [r.reason for r in cuda]
    for result in cuda:
        assert result.timer == "cuda_events"
        assert result.memory.device_peak_allocated_bytes and result.memory.device_peak_reserved_bytes
        assert result.memory.device_peak_reserved_bytes >= result.memory.device_peak_allocated_bytes
        assert result.settings["allow_tf32"] == (result.cell.precision == "tf32")
        assert result.phases.measure_s >= sum(result.latencies_s) * 0.98  # type: ignore[operator]
        if importlib.util.find_spec("pynvml"):
            assert result.memory.device_used_bytes and result.memory.device_used_bytes >= 2**20
    fp16 = next(r for r in cuda if r.cell.precision == "fp16" and r.cell.workload == "infer")
    assert fp16.settings["precision_applied"] == "cast float16"
    assert fp16.flop_utilisation is None or 0 < fp16.flop_utilisation < 1
    assert run.environment.gpus and run.environment.torch["cuda"]
    speedups = compare(run, run, by="device", baseline="cpu")
    assert len(speedups.pairs) == 3 * 2  # fp32, fp16 and bf16 ran on both devices, for infer and train
    for result in (r for r in cuda if r.cell.workload == "infer"):  # the noise audit read the real GPU
        gpu = result.noise.gpu if result.noise else None
        assert gpu is not None and gpu.samples >= 1 and 0 < gpu.min_sm_clock_share <= 1.5, result.noise


def test_cuda_out_of_memory_is_its_own_status(tmp_path: Path) -> None:
    free, _ = torch.cuda.mem_get_info()
    # VGG16 at 512x512 needs about 0.5 GB of activations per sample in training.
    batch = int(free / 0.4e9) + 64
    config = fast_config(models=["vgg16"], workloads=["train"], devices=["cuda"], batch_sizes=[batch], image_size=512)
    run = wattgap.run(config, db=tmp_path / "w.db")
    assert run.results[0].status == "oom", run.results[0].reason


def test_nvml_counter_and_polled_power_agree_on_a_real_gpu_and_idle_is_measured(tmp_path: Path) -> None:
    """The real NVML path: both modes on the same window of real GPU work (they should agree within 5%),
    and a CUDA cell's energy labelled measured for its GPU."""
    from wattgap.config import EnergySettings
    from wattgap.measure.energy import EnergyWindow, measure_idle
    from wattgap.measure.energy.nvml import NvmlMeter

    uuid = str(torch.cuda.get_device_properties(0).uuid)
    counter, polled = NvmlMeter(uuid, "counter"), NvmlMeter(uuid, "polled", poll_interval_s=0.02)
    a = torch.randn(8192, 8192, device="cuda")
    window = EnergyWindow([counter, polled])
    with window:
        for _ in range(200):
            a = (a @ a).clamp_(-1, 1)
        torch.cuda.synchronize()
    by_meter = {r.meter: r for r in window.readings}
    assert by_meter["nvml-counter"].label == "measured", by_meter["nvml-counter"].detail
    assert by_meter["nvml-counter"].energy_j == pytest.approx(by_meter["nvml-polled"].energy_j, rel=0.05)
    idle = measure_idle(["cuda:0"], EnergySettings(idle_s=2))
    gpu_idle = next(v for k, v in idle.items() if k.startswith("gpu:"))
    assert gpu_idle.label == "measured" and gpu_idle.power_w and gpu_idle.power_w > 0
    run = wattgap.run(fast_config(devices=["cuda"], batch_sizes=[8], energy={"idle_s": 1}), db=tmp_path / "w.db")
    result = run.results[0]
    assert result.energy is not None
    gpu = next(r for r in result.energy.readings if r.domain.startswith("gpu:"))
    assert gpu.label == "measured" and gpu.energy_j and gpu.net_energy_j is not None


def test_every_stack_on_cuda_with_the_guardrail(tmp_path: Path) -> None:
    """onnxruntime (CUDA provider), TensorRT (fp32/fp16/int8 engines) and TensorFlow on the GPU, where the
    installed packages allow; the rest must be skipped with a reason, never fail."""
    config = fast_config(
        models=["resnet18"],
        devices=["cuda"],
        backends=["torch-eager", "torch-compile", "onnxruntime", "tensorrt", "tf-xla"],
        precisions=["fp32", "fp16", "int8"],
        batch_sizes=[8],
        calibration_samples=32,
    )
    run = wattgap.run(config, db=tmp_path / "w.db")
    for result in run.results:
        assert result.status in ("ok", "skipped"), (result.cell.label, result.reason)
        if result.status == "ok" and result.cell.precision in ("fp16", "int8"):
            assert result.agreement is not None, result.cell.label
    built = [r for r in run.results if r.cell.backend == "tensorrt" and r.status == "ok"]
    for result in built:
        assert result.phases.build_s and "TensorrtExecutionProvider" in result.settings["providers"]


@pytest.mark.skipif(importlib.util.find_spec("torchao") is None, reason="needs torchao")
def test_torchao_int8_and_channels_last_on_cuda(tmp_path: Path) -> None:
    """torchao's dynamic int8 on a bfloat16 model, and both PyTorch layouts, on the GPU, against fp16."""
    config = fast_config(
        models=["resnet18"],
        devices=["cuda"],
        backends=["torch-eager", "torchao"],
        precisions=["fp16", "int8"],
        memory_formats=["auto", "contiguous"],
        batch_sizes=[8],
        image_size=64,
    )
    run = wattgap.run(config, db=tmp_path / "w.db")
    done = {(r.cell.backend, r.cell.precision, r.cell.memory_format): r for r in run.results if r.status == "ok"}
    int8 = done[("torchao", "int8", "auto")]
    assert "int8 dynamic (torchao)" in int8.settings["precision_applied"]
    assert "1 linear layer(s)" in int8.settings["precision_applied"] and int8.phases.compile_s
    assert int8.agreement is not None and int8.agreement.max_abs_diff > 0
    assert done[("torch-eager", "fp16", "auto")].settings["memory_format"] == "channels_last (auto)"
    assert done[("torch-eager", "fp16", "contiguous")].settings["memory_format"] == "contiguous"
    skipped = {r.cell.label: r.reason for r in run.results if r.status == "skipped"}
    assert any("PyTorch layout; torchao chooses its own" in reason for reason in skipped.values())


def test_cuda_cells_forked_from_the_fork_server_match_fresh_interpreters(tmp_path: Path) -> None:
    """The fork server imports torch without initialising CUDA (a fork after CUDA's start is unsafe); each
    forked cell starts CUDA itself. Both ways run, with the same answers, and the forked cell starts fast."""
    from wattgap.runner.child import FORKED

    results = {}
    for start in ("forkserver", "exec", "forkserver"):
        config = fast_config(models=["resnet18"], devices=["cuda"], batch_sizes=[8], process_start=start)
        (results[start],) = wattgap.run(config, db=tmp_path / f"{start}.db").results
        assert results[start].status == "ok", results[start].reason
        assert results[start].timer == "cuda_events"
    forked, fresh = results["forkserver"], results["exec"]
    assert forked.settings["process"] == FORKED and fresh.settings["process"] == "a fresh interpreter"
    assert forked.agreement is not None and fresh.agreement is not None
    assert forked.parameters == fresh.parameters and forked.flops_per_sample == fresh.flops_per_sample
    assert forked.phases.startup_s is not None and fresh.phases.startup_s is not None
    assert forked.phases.startup_s < fresh.phases.startup_s  # torch with CUDA was imported once, by the server


def test_train_ddp_runs_on_nccl_with_one_rank_per_gpu(tmp_path: Path) -> None:
    """The NCCL path of train-ddp at world size 1 (and 2 where the machine has two GPUs)."""
    sizes = [1, 2] if torch.cuda.device_count() >= 2 else [1]
    config = fast_config(
        devices=["cuda"], threads=None, workloads={"train-ddp": {"world_sizes": sizes}}, batch_sizes=[8]
    )
    run = wattgap.run(config, db=tmp_path / "w.db")
    assert [r.status for r in run.results] == ["ok"] * len(sizes), [r.reason for r in run.results]
    for result in run.results:
        assert result.block is not None and result.block.process_group == "nccl"  # type: ignore[attr-defined]
        assert result.memory.device_peak_allocated_bytes  # rank 0's GPU memory
