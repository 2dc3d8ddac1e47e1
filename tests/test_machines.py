"""Where a cell ran is the cell's fact: an executor that runs cells on two machines, its run stored,
read, compared, exported and reported; a database written before machines were stored, read and
appended to."""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import FAST_PROTOCOL, fast_config
from helpers import wattgap as cli

import wattgap.api
from wattgap.analysis.speedup import hardware
from wattgap.config import SweepConfig
from wattgap.machines import Environment, Machine
from wattgap.render.progress import SilentProgress
from wattgap.results import CellResult
from wattgap.runner.cell import run_cell
from wattgap.runner.executors import HOME, CellJob, Executor
from wattgap.runner.executors.base import OnEvent
from wattgap.runner.machine import MACHINE
from wattgap.store.migrations import SCHEMA_VERSION
from wattgap.store.sqlite import Store

OTHER = "node-7"
SCHEMA5 = Path(__file__).parent / "data" / "wattgap-0.1.0-schema5.db"  # written by main before machines


class TwoMachines(Executor):
    """Cells alternate between this machine and a second node that describes itself as another host with
    another CPU (its facts, idle power included, are still taken in a process of their own, as a node
    elsewhere would take them). Cells run in this process, by the runner the subprocess worker calls."""

    def nodes(self, config: SweepConfig) -> list[str]:
        return [HOME, OTHER]

    def facts(self, request: dict[str, Any], config: SweepConfig, node: str = HOME) -> dict[str, Any]:
        found = super().facts(request, config, node)
        if node == OTHER and request["kind"] == MACHINE:
            found["environment"] |= {"hostname": OTHER, "cpu": {"model": "Other CPU\x1b[31m", "physical_cores": 64}}
        return found

    def submit(self, jobs: Iterable[CellJob], on_event: OnEvent) -> Iterator[CellResult]:
        for job in jobs:
            node = OTHER if job.cell.batch_size % 2 == 0 else HOME  # every process of a cell on one node
            result = run_cell(job.cell, job.config, on_event, job.work, job.nodes[node].idle_power)
            result.repeat, result.sequence = job.repeat, job.sequence
            yield job.ran_on(node, result)


@pytest.mark.slow  # a real sweep, the CLI in subprocesses
def test_a_database_written_before_machines_reads_and_takes_a_run_of_two_machines(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    shutil.copyfile(SCHEMA5, db)
    with Store.open_readonly(db) as store:
        old = store.load_run("latest")
    assert old.status == "complete" and [r.status for r in old.results] == ["ok", "ok"]
    assert all(r.machine_id is None for r in old.results) and old.machines == {}  # each ran on the run's own
    assert old.environment.cpu.model and old.environment.idle_power and old.environment.libraries["torch"]
    assert list(old.machines_used().values()) == [old.environment]
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == 5  # reading upgrades nothing

    config = fast_config(batch_sizes=[1, 2, 3], protocol={**FAST_PROTOCOL, "repeats": 2})
    run = wattgap.api.run(config, db=db, executor=TwoMachines())
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    assert [r.status for r in run.results] == ["ok"] * 3
    here, there, again = (run.machine_of(r) for r in run.results)
    assert here == again == run.environment and here.hostname == socket.gethostname()
    assert there.hostname == OTHER and there.cpu.model == "Other CPU\x1b[31m" and there.idle_devices == ["cpu"]
    assert there.idle_s == 0.2 and there.libraries == here.libraries  # taken there: idle power and all
    assert run.results[1].machine_id == there.machine_id() and list(run.machines) == [there.machine_id()]
    # both of a cell's processes ran on one node, so its combined result names that machine
    assert run.results[1].repeats and run.results[0].machine_id is None

    with Store.open(db) as store:  # a machine is stored once, however many results and runs name it
        assert store.add_machine(there) == there.machine_id()
        assert store.connection.execute("SELECT COUNT(*) FROM machines").fetchone()[0] == 1
        assert store.load_machines(run.run_id, [there.machine_id(), "f00d"]) == {there.machine_id(): there}
        assert store.load_run(old.run_id).results == old.results
    assert hardware(run)["cpu"] == f"{here.cpu.model} / Other CPU\x1b[31m"

    shown = cli("show", run.run_id, "--db", str(db), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert f"idle power of {OTHER}:" in shown.stdout and f"idle power of {here.hostname}:" in shown.stdout
    compared = cli("compare", old.run_id, run.run_id, "--by", "device", "--db", str(db), cwd=tmp_path)
    assert compared.returncode == 0 and "\x1b" not in compared.stdout, compared.stderr
    exported = cli("export", run.run_id, "--format", "json", "--db", str(db), cwd=tmp_path)
    document = json.loads(exported.stdout)
    assert document["machines"][there.machine_id()]["hostname"] == OTHER
    assert [r["machine_id"] for r in document["results"]] == [None, there.machine_id(), None]
    report = tmp_path / "report.html"
    made = cli("report", run.run_id, "--html", str(report), "--db", str(db), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    page = report.read_text()
    assert f"<td>{OTHER}</td>" in page and "\x1b" not in page  # a row per machine, its text escaped


class _StopAfterFirst(SilentProgress):
    """Ctrl-C once the first cell has finished."""

    def cell_finished(self, result: CellResult) -> None:
        raise KeyboardInterrupt


@pytest.mark.slow  # real runs
def test_a_run_of_two_machines_resumes_with_its_other_node_described_anew(tmp_path: Path) -> None:
    """Resuming checks the first node against the run and takes the other node's facts again (its idle
    power is measured anew, so its machine is a new one): each result still names the machine that ran it."""
    db = tmp_path / "w.db"
    with pytest.raises(KeyboardInterrupt):
        wattgap.api.run(fast_config(batch_sizes=[1, 2, 4]), db=db, executor=TwoMachines(), progress=_StopAfterFirst())
    with Store.open_readonly(db) as store:
        stopped = store.load_run("latest")
    assert stopped.status == "interrupted" and [r.cell.batch_size for r in stopped.results] == [1]
    done = wattgap.api.resume(db, stopped.run_id, executor=TwoMachines())
    assert done.status == "complete" and [r.status for r in done.results] == ["ok"] * 3
    assert done.results[0].machine_id is None and done.results[0] == stopped.results[0]
    there = [done.machine_of(r) for r in done.results[1:]]
    assert [m.hostname for m in there] == [OTHER, OTHER] and there[0] == there[1]
    assert there[0].idle_devices == ["cpu"] and there[0].idle_s == 0.2


def test_a_run_names_only_machines_it_holds() -> None:
    """A result naming a machine the run does not hold is damage, said when the run is read."""
    from helpers import make_run, result

    elsewhere = result(np.full(5, 0.01)).model_copy(update={"machine_id": "0" * 16})
    with pytest.raises(ValueError, match="its results name machines it does not hold: 0000000000000000"):
        make_run("r", [elsewhere])
    assert Machine(hostname="a").machine_id() == Environment(hostname="a", user_models={"x": {}}).machine_id()
