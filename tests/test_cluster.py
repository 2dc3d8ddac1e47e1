"""The Ray executor on a real Ray cluster of two nodes on this machine (tests/helpers/cluster.py): cells
spread over both, each result marked with the machine of its node, the driver alone writing the store; a
node killed mid-sweep; a driver killed mid-sweep, then resumed; bad executor options refused."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import fast_config, start_slow_sweep
from helpers import wattgap as wattgap_cli
from helpers.cluster import Cluster, local_cluster

import wattgap.api
from wattgap.render.progress import SilentProgress
from wattgap.results import CellResult
from wattgap.runner.executors.cluster import RayExecutor
from wattgap.store.sqlite import Store

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with local_cluster(tmp_path_factory.mktemp("ray")) as started:
        yield started


class Events(SilentProgress):
    """What the driver tells the progress display, kept; ``on_node(node)`` called when a process is placed."""

    def __init__(self, on_node: Any = None) -> None:
        self.started: list[tuple[str, int | None]] = []
        self.placed: dict[tuple[str, int | None], str] = {}  # the last node each process was placed on
        self.placements: dict[tuple[str, int | None], list[str]] = {}  # every node, a retry's too
        self.finished: list[CellResult] = []
        self.log: list[str] = []  # "start" and "end" of each process, in the order the driver saw them
        self.on_node = on_node

    def cell_started(self, cell: Any, index: int, total: int | None, repeat: int | None = None) -> None:
        self.started.append((cell.cell_id, repeat))
        self.log.append("start")

    def cell_event(self, event: dict[str, Any]) -> None:
        if event.get("event") == "node":
            self.placed[event["cell_id"], event["repeat"]] = event["node"]
            self.placements.setdefault((event["cell_id"], event["repeat"]), []).append(event["node"])
            if self.on_node is not None:
                self.on_node(event["node"])

    def cell_finished(self, result: CellResult) -> None:
        self.finished.append(result)
        if not result.repeats:  # a process, not the combination of a cell's processes
            self.log.append("end")


def _second_node(address: str) -> str:
    import ray

    if ray.is_initialized() and ray.get_runtime_context().gcs_address != address:
        ray.shutdown()  # connected to another test's cluster
    ray.init(address=address, ignore_reinit_error=True, logging_level="ERROR")
    return next(node["NodeID"] for node in ray.nodes() if node["Alive"] and "second" in node["Resources"])


def test_cells_spread_over_the_nodes_each_result_marked_with_its_nodes_machine(
    cluster: Cluster, tmp_path: Path
) -> None:
    db = tmp_path / "w.db"
    events = Events()
    config = fast_config(batch_sizes=[1, 2, 3, 4], threads=[1, 4], energy={"idle_s": 0})
    config["protocol"]["repeats"] = 2
    run = wattgap.api.run(config, db=db, executor=RayExecutor(cluster.address), progress=events)
    assert run.status == "complete"
    by_threads = {1: [], 4: []}  # type: dict[int, list[CellResult]]
    for result in run.results:
        by_threads[result.cell.threads or 0].append(result)
    assert [r.status for r in by_threads[1]] == ["ok"] * 4
    assert {r.reason for r in by_threads[4]} == {"repeat 1 of 2: no node of the Ray cluster has 4 CPUs for it"}
    second = _second_node(cluster.address)
    on_second = {key for key, node in events.placed.items() if node == second}
    assert on_second and len(on_second) < len(events.placed)  # both nodes ran cells
    with Store.open(db) as store:
        parts = store.load_repeats(run.run_id)
        machines = {r.machine_id for r in by_threads[1]} - {None}
        assert machines and set(store.load_machines(run.run_id, machines)) == machines
    for result in by_threads[1]:  # a cell's processes ran on one node: the machine of the cell is theirs
        placed = {events.placed[result.cell_id, repeat] for repeat in (0, 1)}
        assert len(placed) == 1 and (second in placed) == (result.machine_id is not None)
        assert [p.machine_id for p in parts[result.cell_id]] == [result.machine_id] * 2
        assert result.latency is not None and result.latency.repeats == 2


def test_a_node_killed_mid_cell_has_its_cell_retried_or_failed_and_nothing_finished_lost(tmp_path: Path) -> None:
    with local_cluster(tmp_path, head_cpus=1) as own:  # two cells at once: one of them on the second node
        second = _second_node(own.address)
        killed: list[str] = []

        def kill(node: str) -> None:
            if node == second and not killed:
                killed.append(node)
                own.kill_second()

        events = Events(kill)
        config = fast_config(models=["helpers.usermodels:slow"], batch_sizes=[1, 2, 3, 4, 5, 6], energy={"idle_s": 0})
        config["protocol"] |= {"min_iters": 20, "max_time_s": 2.0}
        run = wattgap.api.run(config, db=tmp_path / "w.db", executor=RayExecutor(own.address), progress=events)
    assert killed and run.status == "complete" and len(run.results) == 6
    for result in run.results:
        assert result.status == "ok" or (result.status == "crashed" and "Ray" in result.reason), result.reason
    retried = [nodes for nodes in events.placements.values() if nodes[0] == second and len(nodes) == 2]
    lost = [r for r in run.results if r.status == "crashed" and f"lost on Ray node {second}" in r.reason]
    assert retried or lost  # a cell running on the killed node ran again on the head, or failed saying why
    assert all(nodes[1] != second for nodes in retried)
    assert wattgap.load_run(tmp_path / "w.db", run.run_id).results == run.results


def test_a_driver_killed_mid_sweep_is_resumed_on_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    process, run_id = start_slow_sweep(tmp_path, "--executor", "ray", "--address", cluster.address)
    process.kill()
    process.wait()
    connection = sqlite3.connect(tmp_path / "wattgap.db")
    before = dict(connection.execute("SELECT cell_id, result_json FROM results").fetchall())
    resumed = wattgap_cli("run", "--resume", run_id, "--executor", "ray", "--address", cluster.address, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    after = dict(connection.execute("SELECT cell_id, result_json FROM results").fetchall())
    assert len(after) == 6 and all(after[cell] == text for cell, text in before.items())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--executor", "slurm"], "--executor: got 'slurm'; allowed: local, ray"),
        (
            ["--address", "127.0.0.2:1"],
            "--address: got '127.0.0.2:1'; it names a Ray cluster, and needs --executor ray",
        ),
        (
            ["--executor", "ray", "--address", "127.0.0.2:1"],
            "--address: no Ray cluster could be reached at '127.0.0.2:1'",
        ),
    ],
)
def test_bad_executor_options_are_refused_in_one_line(tmp_path: Path, options: list[str], message: str) -> None:
    refused = wattgap_cli("run", "--model", "conv6", *options, cwd=tmp_path, timeout=120)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert message in refused.stderr and not (tmp_path / "wattgap.db").exists()


def test_a_cell_asks_ray_for_its_threads_and_gpus_per_rank_and_a_numbered_gpu_is_refused() -> None:
    from wattgap.cells import Cell
    from wattgap.runner.executors.cluster import _infeasible, _needs

    cell = Cell(model="conv6", workload="infer", backend="torch-eager", device="cpu", precision="fp32", batch_size=1)
    node = [{"Resources": {"CPU": 4.0, "GPU": 2.0}}]
    assert _needs(cell.model_copy(update={"threads": 2})) == (2, 0)
    ddp = cell.model_copy(update={"workload": "train-ddp", "threads": 2, "world_size": 2})
    assert _needs(ddp) == (4, 0) and _infeasible(ddp, node) is None
    assert _infeasible(ddp.model_copy(update={"world_size": 3}), node) == "no node of the Ray cluster has 6 CPUs for it"
    gpus = ddp.model_copy(update={"device": "cuda", "threads": None, "world_size": 2})
    assert _needs(gpus) == (1, 2) and _infeasible(gpus, node) is None
    assert _infeasible(gpus.model_copy(update={"world_size": 4}), node) == (
        "no node of the Ray cluster has 1 CPU and 4 GPUs for it"
    )
    assert "name the device cuda, not cuda:1" in (_infeasible(cell.model_copy(update={"device": "cuda:1"}), node) or "")


def test_a_batch_search_runs_its_probes_one_at_a_time_on_the_cluster(cluster: Cluster, tmp_path: Path) -> None:
    """Each probe is planned from the last one's outcome: on a cluster with room for three cells at once,
    the search still runs one probe at a time, and finds what it finds locally."""
    from wattgap.analysis.memory import batch_limits
    from wattgap.plan import next_probe

    config = fast_config(models=["helpers.usermodels:grows_with_batch"], batch_sizes="max", max_host_memory_gb=1.0)
    events = Events()
    run = wattgap.api.run(config, db=tmp_path / "w.db", executor=RayExecutor(cluster.address), progress=events)
    assert run.status == "complete"
    (limit,) = batch_limits(run)
    replayed: dict[int, str] = {}
    for batch, status in limit.probes:
        assert next_probe(replayed) == batch
        replayed[batch] = status
    assert limit.exact and limit.largest_batch is not None and limit.smallest_failed == limit.largest_batch + 1
    (answer,) = [r for r in run.results if not r.probe]
    assert answer.cell.batch_size == limit.largest_batch and answer.status == "ok"
    assert events.log == ["start", "end"] * len(events.started)  # each process ended before the next started
