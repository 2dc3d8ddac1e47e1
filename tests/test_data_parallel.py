"""train-ddp: data-parallel training over ranks started by torch.multiprocessing, gloo on this CPU, one
thread per rank: world sizes 1 and 2 measured and stored, the scaling table; a rank that fails fails its
cell with the reason and leaves no process behind."""

from __future__ import annotations

import json
import os
from pathlib import Path

import psutil
import pytest
from helpers import fast_config
from helpers import wattgap as wattgap_cli

import wattgap.api
from wattgap.analysis.scaling import scaling
from wattgap.blocks import DataParallel

pytestmark = pytest.mark.slow


def test_world_sizes_one_and_two_on_gloo_measure_the_groups_throughput_and_its_scaling(tmp_path: Path) -> None:
    config = fast_config(workloads={"train-ddp": {"world_sizes": [1, 2]}}, batch_sizes=[4], energy={"idle_s": 0})
    run = wattgap.api.run(config, db=tmp_path / "w.db")
    assert [(r.status, r.cell.world_size) for r in run.results] == [("ok", 1), ("ok", 2)], run.results
    one, two = run.results
    assert one.cell_id != two.cell_id and two.cell.label.endswith("/t1/w2")
    for result in run.results:
        block, stats = result.block, result.latency
        assert isinstance(block, DataParallel) and stats is not None
        size = result.cell.world_size
        assert block.world_size == size and block.process_group == "gloo" and len(block.rank_peak_rss_bytes) == size
        assert result.samples_per_iteration == 4 * size  # the group's batch
        assert result.throughput_median_sps == pytest.approx(4 * size / stats.median_s)
        assert 0 <= block.allreduce_share < 1 and block.allreduce_s >= 0
        assert all(len(cores) == 1 for cores in block.cores)  # one core per rank, its threads' count
    if len(os.sched_getaffinity(0)) >= 2:
        assert two.block.cores[0] != two.block.cores[1]  # type: ignore[union-attr]  # ranks on cores of their own
    assert two.block.allreduce_s > 0  # type: ignore[union-attr]  # two ranks reduce their gradients
    ((_, points),) = scaling(run.results).items()
    assert [p.world_size for p in points] == [1, 2] and points[0].efficiency is None
    efficiency = points[1].efficiency
    assert efficiency is not None
    assert efficiency.speedup == pytest.approx(one.latency.median_s / two.latency.median_s)  # type: ignore[union-attr]
    assert efficiency.ci_low <= efficiency.speedup <= efficiency.ci_high
    assert wattgap.load_run(tmp_path / "w.db", run.run_id).results == run.results
    shown = wattgap_cli("show", run.run_id, "--db", str(tmp_path / "w.db"), cwd=tmp_path)
    assert shown.returncode == 0 and "data-parallel scaling (train-ddp)" in shown.stdout
    assert f"{efficiency.speedup:.0%} [{efficiency.ci_low:.0%}, {efficiency.ci_high:.0%}]" in shown.stdout
    db = str(tmp_path / "w.db")
    traded = wattgap_cli("tradeoff", run.run_id, "--db", db, "--format", "json", cwd=tmp_path)
    (curve,) = json.loads(traded.stdout)["scaling"].values()
    assert [p["world_size"] for p in curve] == [1, 2] and curve[1]["efficiency"] == pytest.approx(efficiency.speedup)
    reported = wattgap_cli("report", run.run_id, "--db", db, "--html", "r.html", cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr
    html = (tmp_path / "r.html").read_text()
    assert "Data-parallel scaling" in html and html.count("<svg") >= 2  # throughput and efficiency curves


@pytest.mark.parametrize(
    ("failure", "reason"),
    [("raise", "rank 1 of 2 failed: RuntimeError: rank one gives up"), ("exit", "rank 1 of 2 died (exit status 3)")],
)
def test_a_rank_that_fails_fails_its_cell_with_the_reason_and_leaves_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str, reason: str
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("WATTGAP_TEST_PIDS", str(pids))
    monkeypatch.setenv("WATTGAP_TEST_RANK_FAILURE", failure)
    config = fast_config(
        models=["helpers.usermodels:rank_fails"],
        workloads={"train-ddp": {"world_sizes": [2]}},
        batch_sizes=[2],
        energy={"idle_s": 0},
    )
    run = wattgap.api.run(config, db=tmp_path / "w.db")
    (result,) = run.results
    assert result.status == "failed" and reason in result.reason, result.reason
    ranks = [int(path.name) for path in pids.iterdir()]
    assert len(ranks) >= 2  # the probe's process, the cell's ranks
    assert not [pid for pid in ranks if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


def test_world_size_flag_sets_the_workloads_setting_and_is_refused_without_it(tmp_path: Path) -> None:
    planned = wattgap_cli(
        "run", "--model", "conv6", "--workload", "train-ddp", "--world-size", "1,2,4", "--dry-run", cwd=tmp_path
    )
    assert planned.returncode == 0 and "3 cells" in planned.stdout, planned.stdout + planned.stderr
    assert planned.stdout.split("world_size")[1].split()[1:] == ["1", "2", "4"]
    refused = wattgap_cli("run", "--model", "conv6", "--world-size", "2", "--dry-run", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "--world-size: a setting of the train-ddp workload" in refused.stderr
