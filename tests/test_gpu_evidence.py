"""`make gpu-evidence` rehearsed on the CPU: the same script end to end (bench/gpu_evidence.py), the CUDA steps
skipped with the reason and the rest real, so that its first run on a GPU spends its minutes measuring."""

from __future__ import annotations

import importlib.util
import json
import sqlite3
import subprocess
import sys
import tarfile
import time
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow  # real sweeps and stacks: make test runs it, make test-fast does not

ROOT = Path(__file__).resolve().parent.parent


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_evidence", ROOT / "bench" / "gpu_evidence.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_evidence"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_cpu_rehearsal_runs_the_script_end_to_end_and_packs_what_comes_back(tmp_path: Path) -> None:
    out = tmp_path / "evidence"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_evidence.py"), "--cpu-rehearsal", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    steps = {step["step"]: step for step in json.loads((out / "summary.json").read_text())["steps"]}
    assert [steps[name]["outcome"] for name in ("DEEP-GAP cut", "NVML energy")] == ["skipped", "skipped"]
    assert steps["DEEP-GAP cut"]["detail"] == "needs CUDA (rehearsal on the CPU)"
    for name in ("pytest -m gpu", "Democratizing-AI cut", "report"):
        assert steps[name]["outcome"] == "ran", steps[name]
    assert "preflight: a cell through the fork server: ok" in done.stdout
    files = sorted(path.name for path in out.iterdir())
    assert files == [
        "environment.json",
        "evidence.db",
        "logs-and-exports.tar.gz",
        "report.html",
        "report.md",
        "summary.json",
    ]  # the database is one file: its write-ahead log folded in
    assert all((out / name).stat().st_size <= 16 * 2**20 for name in files)
    connection = sqlite3.connect(out / "evidence.db")
    statuses = connection.execute("SELECT r.name, s.status FROM runs r JOIN results s USING (run_id)").fetchall()
    connection.close()
    assert statuses == [("democratizing-ai", "ok")]
    with tarfile.open(out / "logs-and-exports.tar.gz") as packed:
        names = packed.getnames()
    assert {"logs/preflight.log", "logs/pytest-gpu.log", "logs/democratizing-ai.log"} <= set(names)
    assert any(name.startswith("exports/") and name.endswith(".json") for name in names)
    again = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_evidence.py"), "--cpu-rehearsal", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode != 0 and "is not empty" in again.stderr  # nothing it wrote is overwritten


def test_a_step_whose_share_no_longer_fits_the_budget_is_skipped_with_the_reason(tmp_path: Path) -> None:
    script = _script()
    evidence = script.Evidence(tmp_path, budget_s=100.0, rehearsal=False, environment={}, logs=tmp_path)
    evidence.started = time.monotonic() - 90  # 10 s left
    ran: list[float] = []
    evidence.step("sweep", 0.4, lambda timeout_s: ran.append(timeout_s) or "done")
    evidence.step("check", 0.08, lambda timeout_s: ran.append(timeout_s) or "done")
    assert evidence.steps[0]["outcome"] == "skipped" and "under half of its share" in str(evidence.steps[0]["detail"])
    assert (
        evidence.steps[1]["outcome"] == "ran" and len(ran) == 1 and ran[0] <= 8.0
    )  # its share, capped by what is left
    rehearsal = script.Evidence(tmp_path, budget_s=100.0, rehearsal=True, environment={}, logs=tmp_path)
    rehearsal.step("NVML energy", 0.08, lambda timeout_s: "never", needs_cuda=True)
    assert rehearsal.steps == [
        {"step": "NVML energy", "outcome": "skipped", "detail": "needs CUDA (rehearsal on the CPU)"}
    ]


def test_a_failed_preflight_stops_with_one_line_and_its_log_comes_back(tmp_path: Path) -> None:
    script = _script()
    script.PREFLIGHT = "import sys; print('CUDA is not visible'); sys.exit(3)"
    out = tmp_path / "out"
    out.mkdir()
    evidence = script.Evidence(out, budget_s=60.0, rehearsal=True, environment={})
    with pytest.raises(SystemExit) as stopped:
        script.preflight(evidence)
    message = str(stopped.value)
    assert message.startswith("preflight: CUDA, NVML, wattgap beside torch: exit 3: CUDA is not visible; nothing")
    assert message.endswith(f"(its log: {out / 'preflight.log'})") and "\n" not in message
    assert "CUDA is not visible" in (out / "preflight.log").read_text()  # in what the machine hands back
    assert not evidence.logs.exists()  # nothing left in the temporary folder
