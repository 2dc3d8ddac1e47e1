from __future__ import annotations

import re

import pytest
from pydantic import create_model

from wattgap.cells import Cell, curve_key
from wattgap.config import parse_config
from wattgap.devices import GpuInfo, Hardware
from wattgap.errors import ConfigError
from wattgap.plan import expand, next_probe

CPU_ONLY = Hardware(physical_cores=4, logical_cores=8, cuda_reason="no CUDA here", mps_reason="not a Mac")
AMPERE = Hardware(
    physical_cores=4,
    logical_cores=8,
    gpus=(GpuInfo(0, "NVIDIA A100-SXM4-80GB", 80 * 2**30, "8.0", 108),),
    mps_reason="not a Mac",
)
TURING = Hardware(
    physical_cores=4, logical_cores=8, gpus=(GpuInfo(0, "Tesla T4", 16 * 2**30, "7.5", 40),), mps_reason="no"
)


def test_cell_ids_are_stable_and_distinct() -> None:
    a = Cell(
        model="conv6",
        workload="infer",
        backend="torch-eager",
        device="cpu",
        precision="fp32",
        batch_size=1,
        threads=2,
    )
    b = a.model_copy(update={"batch_size": 2})
    assert a.cell_id == Cell(**a.model_dump()).cell_id
    assert a.cell_id != b.cell_id
    assert len(a.cell_id) == 12


# Ids of cells as wattgap 0.1.0 stored them (computed with that version): databases written then must
# keep resuming and comparing, so these never change.
PINNED_IDS = [
    ({"model": "resnet18", "workload": "infer", "backend": "torch-eager", "device": "cpu", "precision": "fp32",
      "batch_size": 1, "threads": 2}, "b6e7aee0d1a5"),
    ({"model": "resnet50", "workload": "train", "backend": "torch-compile", "device": "cuda", "precision": "bf16",
      "batch_size": 32}, "86a46faf32fc"),
    ({"model": "conv6", "workload": "train-to-accuracy", "backend": "torch-eager", "device": "cuda:1",
      "precision": "fp16", "batch_size": 32, "threads": None}, "a9cde8f11e27"),
    ({"model": "resnet101", "workload": "infer", "backend": "onnxruntime", "device": "cpu", "precision": "int8",
      "batch_size": 8, "threads": 1}, "5739029e3d0d"),
    ({"model": "tests.helpers.usermodels:mlp", "workload": "infer", "backend": "tensorrt", "device": "mps",
      "precision": "tf32", "batch_size": 65536}, "28bec2db319b"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "cell_id"), PINNED_IDS)
def test_cell_ids_of_today_are_pinned(fields: dict[str, object], cell_id: str) -> None:
    assert Cell.model_validate(fields).cell_id == cell_id


def test_a_new_axis_left_at_its_default_keeps_every_id() -> None:
    """What a world size, a scenario or a memory format added to Cell later must respect."""
    wider = create_model("WiderCell", __base__=Cell, world_size=(int, 1), scenario=(str | None, None))
    for fields, cell_id in PINNED_IDS:
        assert wider.model_validate(fields).cell_id == cell_id
        assert wider.model_validate({**fields, "world_size": 2}).cell_id != cell_id
        assert wider.model_validate({**fields, "scenario": "server"}).cell_id != cell_id


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"workloads": ["inference"]}, "workloads[0]: got 'inference'; allowed: infer, train, train-to-accuracy"),
        ({"backends": ["torch-eager", "jax"]}, "backends[1]: got 'jax'; allowed: torch-eager, torch-compile"),
    ],
)
def test_backend_and_workload_names_are_checked_against_the_registries(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        expand(parse_config({"models": ["conv6"], **fields}), CPU_ONLY)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_product_of_axes_with_threads_only_on_cpu() -> None:
    config = parse_config(
        {
            "models": ["conv6", "resnet18"],
            "workloads": ["infer", "train"],
            "devices": ["cpu", "cuda"],
            "batch_sizes": [1, 8],
            "threads": [1, 2],
        }
    )
    plan = expand(config, AMPERE)
    cpu = [c for c in plan.cells if c.device == "cpu"]
    gpu = [c for c in plan.cells if c.device == "cuda"]
    assert len(cpu) == 2 * 2 * 2 * 2 and len(gpu) == 2 * 2 * 2
    assert {c.threads for c in cpu} == {1, 2} and {c.threads for c in gpu} == {None}
    assert not plan.skipped


def test_default_threads_are_the_physical_cores_and_auto_resolves() -> None:
    plan = expand(parse_config({"models": ["conv6"]}), CPU_ONLY)
    assert [(c.device, c.threads) for c in plan.cells] == [("cpu", 4)]
    plan = expand(parse_config({"models": ["conv6"]}), AMPERE)
    assert [(c.device, c.threads) for c in plan.cells] == [("cuda", None)]


def test_cells_that_cannot_run_are_skipped_with_reasons() -> None:
    config = parse_config(
        {
            "models": ["conv6"],
            "devices": ["cpu", "cuda", "mps", "cuda:3"],
            "precisions": ["fp32", "tf32", "bf16"],
        }
    )
    plan = expand(config, CPU_ONLY)
    reasons = {c.label: plan.skipped.get(c.cell_id, "") for c in plan.cells}
    assert reasons["conv6/infer/torch-eager/cpu/fp32/b1/t4"] == ""
    assert reasons["conv6/infer/torch-eager/cpu/bf16/b1/t4"] == ""
    assert "needs a CUDA device" in reasons["conv6/infer/torch-eager/cpu/tf32/b1/t4"]
    assert reasons["conv6/infer/torch-eager/cuda/fp32/b1"] == "no CUDA here"
    assert reasons["conv6/infer/torch-eager/mps/fp32/b1"] == "not a Mac"
    assert len(plan.runnable) == 2


def test_training_a_resnet_down_to_one_value_per_channel_is_skipped_with_the_hint() -> None:
    """It failed every cell with a raw 'ValueError: Expected more than 1 value per channel'."""
    config = parse_config(
        {"models": ["resnet50", "vgg16"], "workloads": ["infer", "train"], "image_size": 32, "batch_sizes": [1, 2]}
    )
    plan = expand(config, CPU_ONLY)
    skipped = {c.label: plan.skipped[c.cell_id] for c in plan.cells if c.cell_id in plan.skipped}
    assert list(skipped) == ["resnet50/train/torch-eager/cpu/fp32/b1/t4"]
    assert "batch norm cannot normalise one value per channel (use --image-size 33 or more" in "".join(skipped.values())
    wider = expand(parse_config({"models": ["resnet50"], "workloads": ["train"], "image_size": 64}), CPU_ONLY)
    assert not wider.skipped  # 2x2 at the last stage


def test_capability_gates_bf16_and_tf32_on_older_gpus() -> None:
    config = parse_config({"models": ["conv6"], "devices": ["cuda", "cuda:1"], "precisions": ["fp16", "bf16", "tf32"]})
    plan = expand(config, TURING)
    reasons = {c.label: plan.skipped.get(c.cell_id, "") for c in plan.cells}
    assert reasons["conv6/infer/torch-eager/cuda/fp16/b1"] == ""
    assert "compute capability 8.0" in reasons["conv6/infer/torch-eager/cuda/bf16/b1"]
    assert "cuda:1 does not exist" in reasons["conv6/infer/torch-eager/cuda:1/fp16/b1"]
    assert not expand(config.model_copy(update={"devices": ["cuda"]}), AMPERE).skipped


def test_default_batch_size_depends_on_the_workload() -> None:
    config = parse_config({"models": ["conv6"], "workloads": ["infer", "train-to-accuracy"], "dataset": "digits"})
    assert [(c.workload, c.batch_size) for c in expand(config, CPU_ONLY).cells] == [
        ("infer", 1),
        ("train-to-accuracy", 32),
    ]
    swept = expand(config.model_copy(update={"batch_sizes": [4]}), CPU_ONLY)
    assert {c.batch_size for c in swept.cells} == {4}


def _search(limit: int, largest_allowed: int = 65_536) -> list[int]:
    """The probes of a search whose batches up to ``limit`` run and larger ones run out of memory."""
    probes: dict[int, str] = {}
    while (batch := next_probe(probes, largest_allowed)) is not None:
        probes[batch] = "ok" if batch <= limit else "oom"
    return list(probes)


@pytest.mark.parametrize(
    ("limit", "probes"),
    [
        (1, [1, 2]),
        (6, [1, 2, 4, 8, 6, 7]),
        (8, [1, 2, 4, 8, 16, 12, 10, 9]),
        (100, [1, 2, 4, 8, 16, 32, 64, 128, 96, 112, 104, 100, 102, 101]),
        (0, [1]),
    ],
)
def test_the_batch_search_doubles_then_bisects_to_neighbours(limit: int, probes: list[int]) -> None:
    assert _search(limit) == probes


def test_the_batch_search_stops_at_the_largest_batch_allowed_and_on_other_failures() -> None:
    assert _search(10_000, largest_allowed=48) == [1, 2, 4, 8, 16, 32, 48]
    assert next_probe({1: "ok", 2: "failed"}) is None  # not memory: a larger batch proves nothing
    assert next_probe({1: "skipped"}) is None
    assert next_probe({1: "ok", 2: "ok", 4: "oom", 3: "ok"}) is None


def test_a_batch_search_expands_to_the_first_probe_of_each_configuration() -> None:
    config = parse_config({"models": ["conv6"], "batch_sizes": "max", "devices": ["cpu"], "threads": [1, 2]})
    assert config.batch_search
    assert [(c.batch_size, c.threads) for c in expand(config, CPU_ONLY).cells] == [(1, 1), (1, 2)]
    first, second = expand(config, CPU_ONLY).cells
    assert curve_key(first) == curve_key(first.model_copy(update={"batch_size": 8})) != curve_key(second)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"batch_sizes": "maximum"}, "batch_sizes: got 'maximum'; allowed: a list of integers from 1 to 65536, or max"),
        ({"batch_sizes": [1, "max"]}, "batch_sizes[1]: got 'max'; allowed: integers from 1 to 65536"),
        ({"batch_sizes": "max", "workloads": ["train-to-accuracy"], "dataset": "digits"}, "batch_sizes: got 'max'"),
        ({"max_host_memory_gb": 0}, "max_host_memory_gb: got 0"),
    ],
)
def test_bad_batch_search_settings_are_one_line(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config({"models": ["conv6"], **fields})


def test_a_batch_search_says_up_front_how_far_it_can_go() -> None:
    from wattgap.plan import search_bound

    unbounded = search_bound(parse_config({"models": ["conv6"], "devices": ["cpu"], "batch_sizes": "max"}))
    assert "up to 65536 (at most 17 probes" in unbounded and "nothing but the machine's memory" in unbounded
    capped = parse_config({"models": ["conv6"], "devices": ["cpu"], "batch_sizes": "max", "max_host_memory_gb": 2})
    assert "on the CPU, --max-host-memory-gb 2" in search_bound(capped)
    assert "on a GPU, its memory" in search_bound(
        parse_config({"models": ["conv6"], "devices": ["cuda"], "batch_sizes": "max"})
    )


def test_train_ddp_world_sizes_are_an_axis_and_need_a_gpu_per_rank_on_cuda() -> None:
    config = parse_config(
        {"models": ["conv6"], "workloads": {"train-ddp": {"world_sizes": [1, 2]}}, "devices": ["cpu", "cuda"]}
    )
    plan = expand(config, AMPERE)
    sizes = {(cell.device, cell.world_size): cell for cell in plan.cells}
    assert set(sizes) == {("cpu", 1), ("cpu", 2), ("cuda", 1), ("cuda", 2)}
    assert sizes["cpu", 1].later_fields() == {} and sizes["cpu", 2].later_fields() == {"world_size": 2}
    assert sizes["cpu", 2].label.endswith("/w2") and not sizes["cpu", 1].label.endswith("/w1")
    assert plan.skipped == {sizes["cuda", 2].cell_id: "2 ranks need 2 GPUs (one per rank); this machine has 1"}
