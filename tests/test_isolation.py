"""Each cell in a process of its own, whichever way it starts (forked from the fork server, which imported
PyTorch once; or a fresh interpreter): a crash, a leak or a changed global in one cell does not reach the
next, and the way it started is recorded. The machine a run stores is described by such a process too, or
by the executor's nodes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from helpers import fast_config
from helpers import wattgap as cli
from helpers.usermodels import LEAK_BYTES

import wattgap.api
from wattgap.config import SweepConfig, parse_config
from wattgap.devices import Hardware, detect
from wattgap.machines import Machine
from wattgap.runner.child import FORKED
from wattgap.runner.executors import HOME, LocalExecutor
from wattgap.runner.fingerprint import fingerprint
from wattgap.runner.isolate import node_facts
from wattgap.runner.machine import MACHINE, ROOFLINE, answer

pytestmark = pytest.mark.slow  # real sweeps and stacks: make test runs it, make test-fast does not


@pytest.mark.parametrize("start", ["forkserver", "exec"])
def test_a_crash_a_leak_or_a_changed_global_stays_in_its_cell(tmp_path: Path, start: str) -> None:
    models = ["leaks_into_its_process", "reports_leaks", "segfaults", "tiny"]
    config = fast_config(
        models=[f"helpers.usermodels:{name}" for name in models], input_shape=[3, 8, 8], process_start=start
    )
    run = wattgap.api.run(config, db=tmp_path / "w.db")
    leaking, reporting, crashing, after = run.results
    assert leaking.status == "ok" and leaking.memory.host_peak_rss_bytes is not None
    assert leaking.memory.host_peak_rss_bytes > LEAK_BYTES
    assert reporting.status == "failed"
    assert reporting.reason == "RuntimeError: leaks seen: {'ballast': False, 'float64': False}"
    assert crashing.status == "crashed" and "SIGSEGV" in crashing.reason
    assert after.status == "ok" and after.memory.host_peak_rss_bytes is not None
    assert after.memory.host_peak_rss_bytes < LEAK_BYTES  # the leak went with its process
    expected = FORKED if start == "forkserver" else "a fresh interpreter"
    assert leaking.settings["process"] == after.settings["process"] == expected
    assert after.settings["interop_threads"] == 1 and after.settings["torch_threads"] == 1


def test_a_script_without_a_main_guard_runs_once(tmp_path: Path) -> None:
    """multiprocessing's fork server re-runs the parent's main script in every child that has no
    ``if __name__ == "__main__"`` guard: a script calling wattgap.run at its top level ran again in each
    cell. wattgap's own server re-imports nothing of the parent."""
    script = tmp_path / "bench_it.py"
    config = fast_config(models=["helpers.usermodels:tiny"], batch_sizes=[1, 2], process_start="forkserver")
    script.write_text(
        "import wattgap.api\n"
        "print('script body ran', flush=True)\n"
        f"run = wattgap.api.run({config!r}, db='w.db')\n"
        "print([r.status for r in run.results], [r.settings.get('process', '')[:6] for r in run.results])\n"
    )
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("script body ran") == 1, done.stdout
    assert "['ok', 'ok'] ['forked', 'forked']" in done.stdout


@pytest.mark.parametrize("start", ["forkserver", "exec"])
def test_the_machine_is_described_by_a_process_of_its_own(start: str) -> None:
    """The devices and fingerprint a run stores come from a process started as its cells are, and say
    what this process would have found."""
    config = parse_config(fast_config(process_start=start))
    facts = node_facts({"kind": MACHINE}, config)
    assert Hardware.from_dict(facts["hardware"]) == detect()
    assert Machine.model_validate(facts["environment"]).key() == fingerprint(detect()).key()
    assert facts["environment"]["libraries"]["torch"] == torch.__version__


def test_a_roofline_that_cannot_be_measured_is_said_not_raised() -> None:
    failed = answer({"kind": ROOFLINE, "threads": [0]})
    assert list(failed) == ["cpu_roofline_error"] and failed["cpu_roofline_error"].startswith("RuntimeError")


class _Elsewhere(LocalExecutor):
    """Cells run here, but the machine they run on describes itself as another host (an executor whose
    nodes are other machines answers from there)."""

    def facts(self, request: dict[str, Any], config: SweepConfig, node: str = HOME) -> dict[str, Any]:
        found = super().facts(request, config, node)
        if request["kind"] == MACHINE:
            found["environment"]["hostname"] = "node-7"
        return found


def test_the_run_stores_what_its_executor_says_of_its_machine(tmp_path: Path) -> None:
    run = wattgap.api.run(fast_config(cpu_roofline=True), db=tmp_path / "w.db", executor=_Elsewhere())
    assert run.environment.hostname == "node-7" and run.results[0].status == "ok"
    rates = run.environment.cpu_roofline["1"]  # measured there, at the threads the plan runs
    assert set(rates) == {"fp32_flops_per_s", "bf16_flops_per_s", "bandwidth_bytes_per_s"}
    assert all(rate > 0 for rate in rates.values()) and set(run.environment.cpu_roofline) == {"1"}


def test_what_a_cell_writes_for_itself_is_gone_when_it_ends(tmp_path: Path) -> None:
    """An ONNX cell's exported graph went to a folder removed at exit, which a forked cell (it leaves with
    os._exit) and a killed one never reach: every ONNX cell left its graph in the temporary folder. Now the
    runner makes each cell's folder and removes it when the cell has ended, however it ended."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    config = fast_config(
        models=["conv6", "helpers.usermodels:large_at_build"],  # killed over the cap while it builds
        backends=["onnxruntime", "tf-eager"],  # TensorFlow's autograph writes the code it generates
        input_shape=[3, 8, 8],
        max_host_memory_gb=1,
        process_start="forkserver",
    )
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(config))
    environment = {key: value for key, value in os.environ.items() if key != "COLUMNS"} | {"TMPDIR": str(temporary)}
    done = cli("run", "--config", "sweep.yaml", "--quiet", cwd=tmp_path, env=environment)
    assert done.returncode == 1, done.stderr
    run = wattgap.api.load_run(tmp_path / "wattgap.db", "latest")
    statuses = {(r.cell.model, r.cell.backend): r.status for r in run.results}
    user = "helpers.usermodels:large_at_build"
    assert statuses == {
        ("conv6", "onnxruntime"): "ok",
        ("conv6", "tf-eager"): "ok",
        (user, "onnxruntime"): "oom",
        (user, "tf-eager"): "oom",  # killed building it: no probe could learn it is a PyTorch model
    }, [r.reason for r in run.results]
    assert [
        path.name for path in temporary.iterdir() if path.name.startswith(("wattgap-", "__autograph"))
    ] == []  # PyTorch's caches stay
