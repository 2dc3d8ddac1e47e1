"""End to end through the Python API: real models, real subprocesses, a real SQLite file."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from helpers import FAST_PROTOCOL, fast_config
from helpers import wattgap as wattgap_cli

import wattgap
import wattgap.api
from wattgap.analysis.memory import batch_limits
from wattgap.analysis.speedup import compare
from wattgap.measure.protocol import PROBE_ITERS
from wattgap.plan import next_probe
from wattgap.render.progress import SilentProgress
from wattgap.results import CellResult
from wattgap.runner.cell import run_cell
from wattgap.runner.executors import HOME, CellJob, Executor
from wattgap.runner.executors.base import OnEvent
from wattgap.store.sqlite import Store
from wattgap.workloads import WORKLOADS

pytestmark = pytest.mark.slow  # real sweeps and stacks: make test runs it, make test-fast does not


def test_sweep_runs_stores_and_reloads(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    config = fast_config(workloads=["infer", "train"], precisions=["fp32", "bf16", "tf32"])
    run = wattgap.run(config, db=db)
    assert run.status == "complete"
    counts = run.counts()
    assert counts["ok"] == 4 and counts["skipped"] == 2 and counts["pending"] == 0
    for result in run.results:
        if result.status == "skipped":
            assert "CUDA" in result.reason
            continue
        assert result.latency is not None and result.latency.n == len(result.latencies_s) == result.iterations
        assert result.latency.min_s <= result.latency.median_s <= result.latency.max_s
        assert result.phases.measure_s is not None and result.phases.load_s is not None
        assert result.phases.measure_s >= sum(result.latencies_s) * 0.999
        assert math.isclose(result.throughput_sps or 0, 2 * result.iterations / result.phases.measure_s)
        assert math.isclose(result.throughput_median_sps or 0, 2 / result.latency.median_s)
        assert result.flops_per_sample and result.flops_per_sample > 1e6
        assert result.memory.host_peak_rss_bytes and result.memory.host_peak_rss_bytes > 50 * 2**20
        assert result.settings["torch_threads"] == 1 and result.settings["interop_threads"] == 1
        assert result.stop_reason in ("converged", "max_time", "max_iters")
    bf16 = next(r for r in run.results if r.cell.precision == "bf16" and r.status == "ok")
    assert bf16.settings["precision_applied"] == "autocast bfloat16"
    train = next(r for r in run.results if r.cell.workload == "train" and r.status == "ok")
    assert train.settings["optimizer"] == "sgd lr=0.01 momentum=0.9"  # train's default
    sources = [(r.cell.workload, r.cell.precision, r.settings["flops_source"]) for r in run.results if r.status == "ok"]
    assert sources == [
        ("infer", "fp32", "counted"),
        ("infer", "bf16", "reused from an earlier cell of this model and workload"),
        ("train", "fp32", "counted"),
        ("train", "bf16", "reused from an earlier cell of this model and workload"),
    ]
    train = next(r for r in run.results if r.cell.workload == "train" and r.cell.precision == "fp32")
    infer = next(r for r in run.results if r.cell.workload == "infer" and r.cell.precision == "fp32")
    assert train.flops_per_sample > 2.5 * infer.flops_per_sample  # type: ignore[operator]

    again = wattgap.load_run(db, run.run_id)
    assert again == run
    assert run.environment.cpu.physical_cores >= 1
    assert run.environment.libraries["torch"]
    frame = run.to_dataframe()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 6
    assert {"run_id", "cell_id", "latency_median_s", "throughput_wall_sps", "status"} <= set(frame.columns)
    assert {"throughput_median_sps"} <= set(frame.columns) and "throughput_sps" not in frame.columns


def test_cast_precision_and_custom_model(tmp_path: Path) -> None:
    """bf16 runs emulated on a CPU without AVX512_BF16 (CI's may be AVX2 only): small models only."""
    config = fast_config(
        models=["helpers.usermodels:tiny", "conv6"],
        workloads=["infer", "train"],
        precisions=["bf16"],
        infer_low_precision="cast",
    )
    run = wattgap.run(config, db=tmp_path / "w.db")
    assert {r.status for r in run.results} == {"ok"}, [r.reason for r in run.results]
    applied = {(r.cell.model, r.cell.workload): r.settings["precision_applied"] for r in run.results}
    assert applied[("helpers.usermodels:tiny", "infer")] == "cast bfloat16"
    assert applied[("conv6", "train")] == "autocast bfloat16"
    tiny = next(r for r in run.results if r.cell.model.endswith("tiny"))
    assert tiny.input_shape == [3, 8, 8] and tiny.parameters == 3 * 64 * 16 + 16 + 16 * 4 + 4


def test_failures_are_recorded_and_the_sweep_goes_on(tmp_path: Path) -> None:
    models = ["raises", "segfaults", "exhausts_memory", "hangs", "tiny", "chatty"]
    config = fast_config(models=[f"helpers.usermodels:{m}" for m in models], cell_timeout_s=8)
    run = wattgap.run(config, db=tmp_path / "w.db")
    by_model = {r.cell.model.split(":")[1]: r for r in run.results}
    assert by_model["raises"].status == "failed"
    assert "RuntimeError: this model cannot be built" in by_model["raises"].reason
    assert by_model["segfaults"].status == "crashed" and "SIGSEGV" in by_model["segfaults"].reason
    assert by_model["exhausts_memory"].status == "oom"
    assert by_model["hangs"].status == "timeout" and "cell_timeout_s=8" in by_model["hangs"].reason
    assert by_model["tiny"].status == "ok"
    assert by_model["chatty"].status == "ok" and by_model["chatty"].latency is not None
    assert run.status == "complete"


def test_compare_by_threads_within_one_run(tmp_path: Path) -> None:
    run = wattgap.run(fast_config(threads=[1, 2], batch_sizes=[4]), db=tmp_path / "w.db")
    comparison = compare(run, run, by="threads")
    assert comparison.baseline == "1" and len(comparison.pairs) == 1
    pair = comparison.pairs[0]
    assert pair.a.cell.threads == 1 and pair.b.cell.threads == 2
    assert math.isclose(pair.speedup, pair.a.latency.median_s / pair.b.latency.median_s)  # type: ignore[union-attr]
    assert pair.ci_low <= pair.speedup <= pair.ci_high
    assert comparison.geomean is not None and math.isclose(comparison.geomean, pair.speedup)


def test_flops_and_traffic_per_sample_do_not_depend_on_batch_or_precision() -> None:
    """What lets a sweep count FLOPs and traffic once per model and workload."""
    from wattgap.backends.torch_eager import TorchEager
    from wattgap.cells import Cell
    from wattgap.config import parse_config

    config = parse_config(fast_config(models=["resnet18"]))
    per_sample = set()
    traffic = set()
    for workload, batch, precision in (
        ("train", 2, "fp32"),
        ("train", 4, "bf16"),
        ("infer", 3, "fp32"),
        ("infer", 5, "fp32"),
    ):
        cell = Cell(
            model="resnet18",
            workload=workload,
            backend="torch-eager",
            device="cpu",
            precision=precision,
            batch_size=batch,
            threads=1,
        )
        prepared = TorchEager().prepare(cell, config, lambda phase: None, WORKLOADS[cell.workload].needs)
        assert prepared.count_step is not None
        with prepared.context():
            counted = prepared.count_step()
        per_sample.add((workload, counted.flops / batch))
        if workload == "infer":
            traffic.add((counted.weight_elements, counted.activation_elements / batch))
    assert len(per_sample) == 2
    ((weights, activations),) = traffic  # the weights once per step, the rest in proportion to the batch
    assert prepared.parameters is not None
    assert prepared.parameters <= weights < 1.01 * prepared.parameters  # and the batch norms' running statistics
    assert activations > 0
    (_, infer), (_, train) = sorted(per_sample)
    # Backward costs about twice the forward, less the input gradient of the first convolution.
    assert 2.5 * infer < train < 3 * infer


class InProcessExecutor(Executor):
    """A second executor behind the same seam: cells run in this process, by the same cell runner the
    subprocess worker calls. It records what the driver handed it."""

    def __init__(self) -> None:
        self.jobs: list[CellJob] = []

    def submit(self, jobs: Iterable[CellJob], on_event: OnEvent) -> Iterator[CellResult]:
        for job in jobs:
            self.jobs.append(job)
            yield run_cell(job.cell, job.config, on_event, job.work, job.nodes[HOME].idle_power)


def test_any_executor_behind_the_seam_runs_a_sweep_the_driver_stores(tmp_path: Path) -> None:
    executor = InProcessExecutor()
    run = wattgap.api.run(
        fast_config(batch_sizes=[1, 2], energy={"idle_s": 0}), db=tmp_path / "w.db", executor=executor
    )
    assert [r.status for r in run.results] == ["ok", "ok"] and run.status == "complete"
    assert wattgap.load_run(tmp_path / "w.db", run.run_id).results == run.results
    first, second = executor.jobs
    assert first.work is None and second.work == run.results[0].work
    assert [r.settings["flops_source"] for r in run.results] == [
        "counted",
        "reused from an earlier cell of this model and workload",
    ]


class _StopAfter(SilentProgress):
    """Ctrl-C once ``count`` cells have finished (the interruption a user makes, at a known moment)."""

    def __init__(self, count: int) -> None:
        self.left = count

    def cell_finished(self, result: CellResult) -> None:
        self.left -= 1
        if self.left == 0:
            raise KeyboardInterrupt


def test_batch_search_finds_the_largest_batch_under_a_host_memory_cap_and_resumes(tmp_path: Path) -> None:
    db, cap_gib = tmp_path / "w.db", 1.0
    config = fast_config(models=["helpers.usermodels:grows_with_batch"], batch_sizes="max", max_host_memory_gb=cap_gib)
    with contextlib.suppress(KeyboardInterrupt):
        wattgap.api.run(config, db=db, progress=_StopAfter(2))
    (summary,) = wattgap.api.list_runs(db)
    interrupted = wattgap.load_run(db, summary["run_id"])
    with Store.open(db) as store:  # a probe's outcome is kept as it ends; the search's answer is not known yet
        probed = store.load_probes(summary["run_id"])
    assert sorted(r.cell.batch_size for r in probed.values()) == [1, 2] and interrupted.status == "interrupted"
    assert {r.iterations for r in probed.values()} == {PROBE_ITERS} and interrupted.results == []
    assert "interrupted" in batch_limits(interrupted)[0].ended

    run = wattgap.api.resume(db, summary["run_id"])
    assert run.status == "complete" and not run.pending
    (limit,) = batch_limits(run)
    replayed: dict[int, str] = {}
    for batch, status in limit.probes:  # every probe is the one the search plans from those before it
        assert next_probe(replayed) == batch
        replayed[batch] = status
    assert next_probe(replayed) is None
    assert limit.exact and limit.largest_batch is not None and limit.smallest_failed == limit.largest_batch + 1
    (answer,) = [r for r in run.results if not r.probe]  # the largest batch that fit, measured in full
    assert answer.cell.batch_size == limit.largest_batch and answer.status == "ok"
    assert answer.iterations is not None and answer.iterations >= FAST_PROTOCOL["min_iters"] > PROBE_ITERS
    assert all(r.iterations == PROBE_ITERS for r in run.results if r.probe and r.status == "ok")
    cap = cap_gib * 2**30
    for result in run.results:
        peak = result.memory.host_peak_rss_bytes
        assert peak is not None and (peak <= cap) == (result.status == "ok"), result.reason
        if result.status == "oom":
            assert "over max_host_memory_gb=1 GiB" in result.reason
    (curve,) = wattgap.api.memory(db, run.run_id)[1]
    assert curve.search == limit and curve.budget_bytes == cap
    stored = _dump(db)
    again = wattgap_cli("run", "--resume", run.run_id, "--db", str(db), "--quiet", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr  # oom probes are how a search ends, not failures
    assert _dump(db) == stored  # a finished run resumed changes nothing stored, its finished time included
    assert again.stdout.startswith(f"run {run.run_id} is complete (") and " oom): nothing to run" in again.stdout
    shown = wattgap_cli("show", run.run_id, "--db", str(db), cwd=tmp_path)  # the table: `show`, as the line says
    assert f"largest batch that ran: {limit.largest_batch} (the limit); probes 1 ok, 2 ok" in shown.stdout
    assert "fits: a probe of --batch-size max" in shown.stdout and "probe (3 iterations)" in shown.stdout


def test_batch_search_settings_are_checked_before_anything_runs(tmp_path: Path) -> None:
    for args, message in [
        (
            ["--batch-size", "most"],
            "--batch-size: got 'most'; allowed: comma-separated integers from 1 to 65536, or max",
        ),
        (["--max-host-memory-gb", "-1"], "max_host_memory_gb: got -1.0; input should be greater than 0"),
    ]:
        done = wattgap_cli("run", "--model", "conv6", *args, cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.strip().endswith(message), done.stderr
    assert not (tmp_path / "wattgap.db").exists()


def test_a_cells_peak_memory_is_its_own_not_its_parents(tmp_path: Path) -> None:
    """The sweep's own size must not leak into its cells' peak RSS (ru_maxrss survives fork and exec)."""
    held = bytearray(1536 * 2**20)
    held[::4096] = b"\x01" * len(held[::4096])  # every page touched: resident in this process
    run = wattgap.api.run(fast_config(), db=tmp_path / "w.db")
    (result,) = run.results
    peak = result.memory.host_peak_rss_bytes
    assert peak is not None and 50 * 2**20 < peak < 1024 * 2**20, peak
    del held


def _dump(db: Path) -> list[str]:
    import sqlite3

    connection = sqlite3.connect(db)
    try:
        return list(connection.iterdump())
    finally:
        connection.close()
