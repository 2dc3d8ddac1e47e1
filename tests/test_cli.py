"""The real CLI in real subprocesses: exit codes, one-line errors, and the whole flow."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from helpers import start_slow_sweep, wattgap

import wattgap.api as wattgap_api

pytestmark = pytest.mark.slow  # real sweeps and stacks: make test runs it, make test-fast does not

FAST_FLAGS = ["--device", "cpu", "--threads", "1", "--image-size", "32", "--max-time", "0.3"]


def test_help_imports_no_framework(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "wattgap", "--help"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0 and "run" in result.stdout
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "tensorflow", "onnxruntime", "numpy", "pandas"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["run", "--model", "resnet17"], "models[0]: got 'resnet17'; allowed: a zoo model (conv6, vgg16, resnet18"),
        (
            ["run", "--model", "conv6", "--backend", "jax"],
            "backends[0]: got 'jax'; allowed: torch-eager, torch-compile, torchao, tf-eager, tf-xla, onnxruntime, "
            "openvino, tensorrt",
        ),
        (["run", "--model", "conv6", "--device", "tpu"], "devices[0]: got 'tpu'; allowed: auto, cpu"),
        (
            ["run", "--model", "conv6", "--memory-format", "auto,nhwc"],
            "memory_formats[1]: got 'nhwc'; allowed: 'auto', 'contiguous' or 'channels_last'",
        ),
        (["run", "--model", "conv6", "--precision", "int4"], "precisions[0]: got 'int4'; allowed: 'fp32'"),
        (
            ["run", "--model", "conv6", "--workload", "serving"],
            "workloads[0]: got 'serving'; allowed: infer, train, train-to-accuracy, train-ddp, serve",
        ),
        (
            ["run", "--model", "conv6", "--workload", "train-to-accuracy"],
            "dataset: got None; allowed: digits, cifar10, folder",
        ),
        (["run", "--model", "conv6", "--dataset", "imagenet"], "dataset: got 'imagenet'; allowed: 'digits', 'cifar10'"),
        (
            ["run", "--model", "conv6", "--dataset", "digits", "--target-accuracy", "0"],
            "target_accuracy: got 0.0; input should be greater than 0",
        ),
        (
            ["run", "--model", "conv6", "--dataset", "cifar10", "--dataset-path", "nope.tar.gz"],
            "dataset_path: 'nope.tar.gz' does not exist",
        ),
        (["run", "--model", "conv6", "--idle", "-1"], "energy.idle_s: got -1.0; input should be greater than or equal"),
        (["efficiency", "r1", "--price-per-kwh", "-1"], "--price-per-kwh: got -1.0; input should be greater than or"),
        (["efficiency", "r1", "--gqi-variant", "loose"], "--gqi-variant: got 'loose'; allowed: 'strict' or 'log1p'"),
        (["efficiency", "r1"], "--db: 'wattgap.db' does not exist"),
        (["run", "--model", "conv6", "--batch-size", "0"], "batch_sizes[0]: got 0; allowed: integers from 1"),
        (
            ["run", "--model", "conv6", "--batch-size", "1,x"],
            "--batch-size: got '1,x'; allowed: comma-separated",
        ),
        (["run", "--model", "conv6", "--db", "nowhere/w.db"], "--db: folder 'nowhere' does not exist"),
        (
            ["run", "--suite", "quik"],
            "--suite: got 'quik'; allowed: deep-gap, democratizing-ai, gdev-ai, quick, watt-for-what",
        ),
        (["run", "--config", "missing.yaml"], "--config: file 'missing.yaml' does not exist"),
        (["show", "latest"], "--db: 'wattgap.db' does not exist"),
        (["list", "runs"], "--db: 'wattgap.db' does not exist"),
        (["export", "r1", "--format", "csv"], "--db: 'wattgap.db' does not exist"),
        (["compare", "a", "b"], "--db: 'wattgap.db' does not exist"),
        (["export", "r1", "--format", "xml"], "Invalid value for '--format'"),
        (["run", "--bogus"], "No such option: --bogus"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path: Path, args: list[str], expected: str) -> None:
    result = wattgap(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_config_files(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("models: [conv6\n")
    (tmp_path / "extra.yaml").write_text("models: [conv6]\nbatch: 3\n")
    for name, expected in (("broken.yaml", "not valid YAML at line"), ("extra.yaml", "batch: unknown key")):
        result = wattgap("run", "--config", name, cwd=tmp_path)
        assert result.returncode == 2 and expected in result.stderr and len(result.stderr.splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.yaml", "extra.yaml"]


def test_foreign_database_is_refused_untouched(tmp_path: Path) -> None:
    (tmp_path / "wattgap.db").write_text("my notes")
    for args in (["run", "--model", "conv6"], ["show", "latest"], ["list", "runs"]):
        result = wattgap(*args, cwd=tmp_path)
        assert result.returncode == 2 and "not a wattgap database" in result.stderr
    assert (tmp_path / "wattgap.db").read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wattgap.db"]


def test_run_show_list_export_compare(tmp_path: Path) -> None:
    result = wattgap(
        "run",
        "--model",
        "conv6",
        "--batch-size",
        "2",
        "--threads",
        "1,2",
        *FAST_FLAGS[4:],
        "--device",
        "cpu",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip().splitlines()[-1].removeprefix("run id: ")
    assert "conv6/infer/torch-eager/cpu/fp32/b2/t1" in result.stdout

    runs = json.loads(wattgap("list", "runs", "--format", "json", cwd=tmp_path).stdout)
    assert [r["run_id"] for r in runs] == [run_id] and runs[0]["ok"] == 2 and runs[0]["status"] == "complete"
    models = json.loads(wattgap("list", "models", "--format", "json", cwd=tmp_path).stdout)
    assert {m["name"] for m in models} == {"conv6", "vgg16", "resnet18", "resnet50", "resnet101", "cyclegan"}

    shown = wattgap("show", run_id[:10], cwd=tmp_path)
    assert shown.returncode == 0 and "2 ok" in shown.stdout
    assert "every cell: model conv6, workload infer, backend torch-eager, device cpu, precision fp32, batch 2" in (
        shown.stdout
    )
    assert [line.split()[:2] for line in shown.stdout.splitlines() if line.split()[1:2] == ["ok"]] == [
        ["1", "ok"],
        ["2", "ok"],
    ]  # threads, the one field that varies, is the first column

    wattgap("export", run_id, "--format", "csv", "--output", "out.csv", cwd=tmp_path)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out.csv").read_text())))
    assert [r["threads"] for r in rows] == ["1", "2"] and float(rows[0]["latency_median_s"]) > 0
    exported = json.loads(wattgap("export", "latest", "--format", "json", cwd=tmp_path).stdout)
    assert exported["run_id"] == run_id and len(exported["results"][0]["latencies_s"]) > 1

    compared = wattgap("compare", run_id, run_id, "--by", "threads", "--format", "json", cwd=tmp_path)
    data = json.loads(compared.stdout)
    assert len(data["pairs"]) == 1 and data["pairs"][0]["a"] == "1" and data["pairs"][0]["b"] == "2"
    table = wattgap("compare", run_id, run_id, "--by", "threads", cwd=tmp_path)
    assert "geometric mean speedup over 1 pairs" in table.stdout
    bad_by = wattgap("compare", run_id, run_id, "--by", "colour", cwd=tmp_path)
    assert bad_by.returncode == 2 and "--by: got 'colour'; allowed: model, workload" in bad_by.stderr
    one_value = wattgap("compare", run_id, run_id, "--by", "device", cwd=tmp_path)
    assert one_value.returncode == 2 and "one device value" in one_value.stderr
    missing = wattgap("show", "2099", cwd=tmp_path)
    assert missing.returncode == 2 and f"latest runs: {run_id}" in missing.stderr


def test_sigkill_loses_no_finished_cell_and_resume_completes(tmp_path: Path) -> None:
    process, _ = start_slow_sweep(tmp_path)
    db = tmp_path / "wattgap.db"
    workers = psutil.Process(process.pid).children(recursive=True)
    process.send_signal(signal.SIGKILL)
    process.wait()
    _gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, "cell subprocesses outlived the killed sweep"

    connection = sqlite3.connect(db)
    before = dict(connection.execute("SELECT cell_id, result_json FROM results").fetchall())
    run_id, status = connection.execute("SELECT run_id, status FROM runs").fetchone()
    connection.close()
    assert status == "running" and 2 <= len(before) < 6
    assert all(json.loads(text)["status"] == "ok" for text in before.values())

    resumed = wattgap("run", "--resume", run_id, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    connection = sqlite3.connect(db)
    after = dict(connection.execute("SELECT cell_id, result_json FROM results").fetchall())
    assert len(after) == 6 and all(after[cell] == text for cell, text in before.items())
    assert connection.execute("SELECT status FROM runs").fetchone()[0] == "complete"
    assert {json.loads(t)["status"] for t in after.values()} == {"ok"}


def test_env_lists_every_backend_with_why_not(tmp_path: Path) -> None:
    from wattgap.backends import BACKENDS

    report = wattgap("env", "--format", "json", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    backends = json.loads(report.stdout)["backends"]
    assert set(backends) == set(BACKENDS)
    for name, entry in backends.items():
        assert entry["usable"] or entry["reason"], name
    assert backends["torch-eager"]["usable"] and backends["onnxruntime"]["usable"] and backends["tf-xla"]["usable"]
    table = wattgap("env", cwd=tmp_path)
    unusable = [entry["reason"] for entry in backends.values() if not entry["usable"]]
    for reason in unusable:  # printed whole: "[tensorrt]" is text, not a rich style
        assert reason in " ".join(table.stdout.split()), reason


def test_a_stored_run_reads_back_after_its_user_model_is_gone(tmp_path: Path) -> None:
    """Every reading command and the Python API read a run without importing the user's code again."""
    package = tmp_path / "mine"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "net.py").write_text(
        "from torch import nn\n\ndef build():\n    return nn.Sequential(nn.Flatten(), nn.Linear(12, 4))\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("COLUMNS", None)
    args = ["--model", "mine.net:build", "--batch-size", "1,2", "--threads", "1", "--idle", "0", "--max-time", "0.2"]
    bad = wattgap("run", *args, "--input-shape", "3,x", cwd=tmp_path, env=env)
    assert bad.returncode == 2 and bad.stderr.strip().endswith(
        "--input-shape: got '3,x'; allowed: comma-separated positive integers, e.g. 3,224,224"
    )
    assert not (tmp_path / "wattgap.db").exists()
    done = wattgap("run", *args, "--input-shape", "3,2,2", "--quiet", cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    digest = hashlib.sha256((package / "net.py").read_bytes()).hexdigest()
    shutil.rmtree(package)
    for command in (
        ["show", "latest"],
        ["export", "latest", "--format", "json", "--output", "out.json"],
        ["compare", "latest", "latest", "--by", "batch_size"],
        ["efficiency", "latest"],
        ["tradeoff", "latest"],
        ["report", "latest"],
    ):
        read = wattgap(*command, cwd=tmp_path, env=env)
        assert read.returncode == 0 and "Traceback" not in read.stderr, (command, read.stderr)
    assert json.loads((tmp_path / "out.json").read_text())["config"]["input_shape"] == [3, 2, 2]
    run = wattgap_api.load_run(tmp_path / "wattgap.db", "latest")
    assert [r.status for r in run.results] == ["ok", "ok"] and run.results[0].parameters == 52
    source = run.environment.user_models["mine.net:build"]  # which code was measured, kept with the run
    assert (source["kind"], source["file"], source["sha256"]) == ("callable", str(package / "net.py"), digest)
    assert source["inputs"] == [{"name": "input", "shape": [3, 2, 2], "dtype": "float32", "range": None}]


def test_a_database_of_many_runs_lists_the_newest(tmp_path: Path) -> None:
    from helpers import make_run

    from wattgap.machines import Environment
    from wattgap.store.sqlite import Store

    with Store.open(tmp_path / "wattgap.db") as store:
        for index in range(3):
            run = make_run(f"run-{index}", [])
            store.create_run(run.run_id, run.config, Environment(), [], {}, "test")
    listed = wattgap("list", "runs", "--rows", "2", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "run-0" not in listed.stdout and "run-1" in listed.stdout and "run-2" in listed.stdout
    assert "1 more runs (the oldest) not shown, of 3: --rows 0 shows every one" in listed.stdout
    every = wattgap("list", "runs", "--rows", "0", cwd=tmp_path)
    assert all(f"run-{index}" in every.stdout for index in range(3)) and "not shown" not in every.stdout
