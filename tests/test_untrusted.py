"""Files people hand in are untrusted, files wattgap writes are its own, and a run whose database goes
away says so: the sixteen faults of a hostile probe, each planted for real (real files, links, FIFOs,
processes and signals). Part of the fault suite (-m faults); each case failed on the code before its fix."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest
import yaml
from helpers import fast_config, start_slow_sweep, usermodels, wattgap

from wattgap.models.build import ModelOptions
from wattgap.runner import probe
from wattgap.store.sqlite import Store

pytestmark = pytest.mark.faults


def refused(done: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit status 2 and one line on stderr holding ``words``, no traceback."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    for word in words:
        assert word in done.stderr, done.stderr


class _RunsCode:
    """Unpickled, it runs a shell command: what a hostile model file carries."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (self.command,)


# 1. No code runs while loading a model file.


def test_a_torch_export_file_that_would_run_code_is_refused_unrun(tmp_path: Path) -> None:
    import torch

    class Twice(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2

    batch = torch.export.Dim("batch")
    program = torch.export.export(Twice(), (torch.randn(2, 3),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(tmp_path / "good.pt2"))
    marker = tmp_path / "pwned"
    with zipfile.ZipFile(tmp_path / "good.pt2") as good, zipfile.ZipFile(tmp_path / "evil.pt2", "w") as evil:
        for entry in good.infolist():
            content = good.read(entry)
            if entry.filename.endswith("data/sample_inputs/model.pt"):
                content = pickle.dumps(_RunsCode(f"touch {marker}"))
            evil.writestr(entry, content)
    done = wattgap("run", "--model", "evil.pt2", "--dry-run", cwd=tmp_path)
    refused(done, "'evil.pt2'", "torch.export", "weights-only")
    assert not marker.exists()
    assert wattgap("run", "--model", "good.pt2", "--dry-run", cwd=tmp_path).returncode == 0  # weights-only suffices


def test_a_keras_file_holding_python_code_is_refused(tmp_path: Path) -> None:
    import keras

    given = keras.Input((4,))
    keras.Model(given, keras.layers.Lambda(lambda x: x * 2)(given)).save(str(tmp_path / "lambda.keras"))
    done = wattgap("run", "--model", "lambda.keras", "--backend", "tf-eager", "--dry-run", cwd=tmp_path)
    refused(done, "'lambda.keras'", "Keras", "safe mode")


def test_an_hf_folder_asking_to_run_its_own_code_is_refused_unrun(tmp_path: Path) -> None:
    folder, marker = tmp_path / "remote", tmp_path / "pwned"
    folder.mkdir()
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    (folder / "configuration_evil.py").write_text(code)
    (folder / "modeling_evil.py").write_text(code)
    config = {
        "model_type": "evil-remote-model",
        "architectures": ["EvilModel"],
        "auto_map": {"AutoConfig": "configuration_evil.EvilConfig", "AutoModel": "modeling_evil.EvilModel"},
    }
    (folder / "config.json").write_text(json.dumps(config))
    done = wattgap("run", "--model", "hf:remote", "--dry-run", cwd=tmp_path)
    refused(done, "'hf:remote' cannot be loaded", "trust_remote_code")
    assert not marker.exists()


# 2. Paths inside model files stay inside the model's folder.


def _onnx_naming(folder: Path, location: str) -> None:
    """An ONNX graph (y = x + w) whose weight w lies in external data at ``location``."""
    from onnx import TensorProto, helper

    weight = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    for key, value in (("location", location), ("offset", "0"), ("length", "16")):
        weight.external_data.add(key=key, value=value)
    value = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [value("x", TensorProto.FLOAT, ["n", 4])],
        [value("y", TensorProto.FLOAT, ["n", 4])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    (folder / "m.onnx").write_bytes(model.SerializeToString())


@pytest.mark.parametrize("where", ["/dev/zero", "../outside.bin", "absolute", "link.bin", "fifo.bin", "w.bin"])
def test_external_data_outside_the_graphs_folder_is_refused_unread(tmp_path: Path, where: str) -> None:
    """/dev/zero used to be hashed forever; ../ and absolute paths were read before ONNX Runtime refused."""
    folder = tmp_path / "model"
    folder.mkdir()
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"\0" * 16)
    (folder / "w.bin").write_bytes(b"\0" * 16)
    (folder / "link.bin").symlink_to(outside)
    os.mkfifo(folder / "fifo.bin")
    _onnx_naming(folder, str(outside) if where == "absolute" else where)
    done = wattgap("run", "--model", "model/m.onnx", "--backend", "onnxruntime", "--dry-run", cwd=tmp_path, timeout=60)
    if where == "w.bin":  # inside the folder, a regular file: what external data is for
        assert done.returncode == 0, done.stderr
        return
    reason = "not a regular file" if where == "fifo.bin" else "outside the graph's folder"
    refused(done, "'model/m.onnx' names external data at", reason)
    assert list(tmp_path.glob("*.db")) == []


# 3. Dataset images are checked before the run.


@pytest.mark.parametrize("bad", ["corrupt", "truncated", "empty", "a folder", "a FIFO"])
def test_a_bad_image_in_a_dataset_folder_is_refused_before_anything_runs(tmp_path: Path, bad: str) -> None:
    import numpy as np
    from PIL import Image

    root = tmp_path / "data"
    noise = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        for number in range(2):
            Image.fromarray(noise).save(root / label / f"{number}.png")
    image = root / "a" / "x.png"
    whole = (root / "a" / "0.png").read_bytes()
    if bad == "corrupt":
        image.write_bytes(whole[:40] + b"\xff" * (len(whole) - 40))
    elif bad == "truncated":
        image.write_bytes(whole[: len(whole) // 2])
    elif bad == "empty":
        image.write_bytes(b"")
    elif bad == "a folder":
        image.mkdir()
    else:
        os.mkfifo(image)
    args = ("run", "--model", "conv6", "--dataset", "folder", "--dataset-path", "data", "--idle", "0")
    done = wattgap(*args, cwd=tmp_path, timeout=120)
    refused(done, "dataset_path:", str(image.relative_to(tmp_path)))
    assert not (tmp_path / "wattgap.db").exists()


# 4, 5. What wattgap writes is its own.


@pytest.fixture(scope="module")
def one_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    """The bytes of a database holding one finished run, and the run's id."""
    folder = tmp_path_factory.mktemp("one")
    (folder / "sweep.yaml").write_text(yaml.safe_dump(fast_config(energy={"idle_s": 0})))
    done = wattgap("run", "--config", "sweep.yaml", "--quiet", cwd=folder)
    assert done.returncode == 0, done.stderr
    connection = sqlite3.connect(folder / "wattgap.db")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return (folder / "wattgap.db").read_bytes(), done.stdout.strip().splitlines()[-1].removeprefix("run id: ")


def test_a_link_planted_at_a_lock_is_never_written_through(tmp_path: Path, one_run: tuple[bytes, str]) -> None:
    """A link at .DB.locks/RUN.lock made --resume truncate and overwrite its target."""
    content, run_id = one_run
    (tmp_path / "wattgap.db").write_bytes(content)
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    locks = tmp_path / ".wattgap.db.locks"
    locks.mkdir()
    (locks / f"{run_id}.lock").symlink_to(precious)
    refused(wattgap("run", "--resume", run_id, cwd=tmp_path), "the lock file", "is a symbolic link")
    assert precious.read_text() == "keep me"
    (locks / f"{run_id}.lock").unlink()
    locks.rmdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    locks.symlink_to(elsewhere)  # the folder itself a link
    refused(wattgap("run", "--resume", run_id, cwd=tmp_path), "the lock folder", "is a symbolic link")
    assert list(elsewhere.iterdir()) == []


def test_a_link_planted_in_the_reports_folder_is_never_written_through(
    tmp_path: Path, one_run: tuple[bytes, str]
) -> None:
    """A link at X_files/.wattgap-report made report --md overwrite its target."""
    content, run_id = one_run
    (tmp_path / "wattgap.db").write_bytes(content)
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    folder = tmp_path / "r_files"
    folder.mkdir()
    (folder / ".wattgap-report").symlink_to(precious)
    refused(wattgap("report", run_id, "--md", "r.md", cwd=tmp_path), "--md:", "r_files")
    assert precious.read_text() == "keep me" and not (tmp_path / "r.md").exists()
    (folder / ".wattgap-report").unlink()
    folder.rmdir()
    assert wattgap("report", run_id, "--md", "r.md", cwd=tmp_path).returncode == 0
    assert not (tmp_path / "r_files" / ".wattgap-report").is_symlink()


# 6. Control characters never reach output files raw.


def test_control_characters_are_escaped_in_every_file_and_unambiguous_in_the_terminal(tmp_path: Path) -> None:
    name = "evil\x1b[2J\x00\u202eoops\x07"
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(fast_config(name=name, energy={"idle_s": 0})))
    done = wattgap("run", "--config", "sweep.yaml", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "evil\\x1b[2J\\x00\\u202eoops\\x07" in done.stdout  # \u202e, not \x202e (a space then "2e")
    assert wattgap("report", "latest", "--html", "r.html", "--md", "r.md", cwd=tmp_path).returncode == 0
    for fmt in ("csv", "json"):
        exported = wattgap("export", "latest", "--format", fmt, "--output", f"r.{fmt}", cwd=tmp_path)
        assert exported.returncode == 0, exported.stderr
    written = [tmp_path / name for name in ("r.html", "r.md", "r.csv", "r.json")]
    written += list((tmp_path / "r_files").glob("*.svg"))
    for path in written:
        text = path.read_text(encoding="utf-8")
        assert not any(c in text for c in "\x1b\x00\u202e\x07"), path.name
    assert "evil\\x1b[2J\\x00\\u202eoops\\x07" in (tmp_path / "r.html").read_text()
    assert json.loads((tmp_path / "r.json").read_text())["name"] == name  # JSON escapes and reads back exactly


# 7, 8. Nothing finished is lost, and nothing false is said about it.


def test_deleting_a_running_run_is_refused_and_names_its_process(tmp_path: Path) -> None:
    process, run_id = start_slow_sweep(tmp_path)
    try:
        refused(wattgap("delete", run_id, "--yes", cwd=tmp_path), f"wattgap process {process.pid}", "stop that process")
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)
    with Store.open_readonly(tmp_path / "wattgap.db") as store:
        assert len(store.load_run(run_id).results) >= 2  # nothing of it was deleted
    assert wattgap("delete", run_id, "--yes", cwd=tmp_path).returncode == 0  # once stopped, it can be


@pytest.mark.parametrize("how", ["removed", "replaced"])
def test_a_database_that_goes_away_mid_run_keeps_every_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """The run used to exit 0, print '3 cells: 3 ok' and a run id, and leave no file."""
    monkeypatch.setenv("WATTGAP_SPILL_DIR", str(tmp_path / "spill"))
    process, run_id = start_slow_sweep(tmp_path)
    db = tmp_path / "wattgap.db"
    if how == "removed":
        db.unlink()
    else:
        other = tmp_path / "other.db"
        Store.open(other).close()
        os.replace(other, db)
    out, err = process.communicate(timeout=120)
    stderr = err.decode()
    assert process.returncode == 2 and stderr.count("\n") == 1 and "Traceback" not in stderr, out + err
    assert f"was {how}" in stderr and f"wattgap run --resume {run_id} --db" in stderr
    found = re.search(r"are kept in '([^']+)'", stderr)
    assert found, stderr
    copy = Path(found.group(1))
    with Store.open_readonly(copy) as store:
        kept = store.load_run(run_id)
    assert kept.status == "interrupted" and len(kept.results) >= 3  # two stored before, and the one in hand
    resumed = wattgap("run", "--resume", run_id, "--db", str(copy), "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    with Store.open_readonly(copy) as store:
        assert len(store.load_run(run_id).results) == 6


# 9. A damaged row never breaks another run.


DAMAGES = {
    "environment_json": ("UPDATE runs SET environment_json = '{not json' WHERE run_id = ?", "field environment"),
    "config_json": ("UPDATE runs SET config_json = '[1, 2' WHERE run_id = ?", "field config"),
    "tags": ("UPDATE runs SET tags_json = 5 WHERE run_id = ?", "field tags"),
    "name": ("UPDATE runs SET name = x'ff00' WHERE run_id = ?", "its row"),
    "result_json": ("UPDATE results SET result_json = 'garbage' WHERE run_id = ?", "the result of cell"),
    "machine_id": (  # a result naming a machine the file does not hold
        "UPDATE results SET result_json = json_set(result_json, '$.machine_id', 'f00d') WHERE run_id = ?",
        "the result of cell",
    ),
}


def test_a_damaged_run_is_named_and_never_breaks_another(tmp_path: Path, one_run: tuple[bytes, str]) -> None:
    """Each damage in a copy of its own (one database, so that each is read beside the others)."""
    content, good = one_run
    db = tmp_path / "wattgap.db"
    db.write_bytes(content)
    bad = {damage: f"20000101-00000{index}-dead" for index, damage in enumerate(sorted(DAMAGES))}
    connection = sqlite3.connect(db)
    with connection:
        for damage, run_id in bad.items():
            for table in ("runs", "cells", "results"):
                columns = [row[1] for row in connection.execute(f"PRAGMA table_info({table})")]
                chosen = ", ".join("?" if c == "run_id" else c for c in columns)
                connection.execute(f"INSERT INTO {table} SELECT {chosen} FROM {table} WHERE run_id = ?", (run_id, good))
            connection.execute(DAMAGES[damage][0], (run_id,))
    connection.close()
    for index, (damage, run_id) in enumerate(bad.items()):
        # show and export read a run by its two paths (whole, and results one at a time); efficiency and
        # the report read it as show does, so they are asked of the first damage only
        readers = [["show"], ["export", "--format", "json"]] + ([["efficiency"], ["report"]] if not index else [])
        for command in readers:
            refused(wattgap(command[0], run_id, *command[1:], cwd=tmp_path), f"run {run_id}: {DAMAGES[damage][1]}")
    assert wattgap("show", good, cwd=tmp_path).returncode == 0
    listed = wattgap("list", "runs", "--format", "json", cwd=tmp_path)
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    names = [row["run_id"] for row in json.loads(listed.stdout)]
    for damage, run_id in bad.items():
        assert (run_id not in names) == (damage in ("tags", "name")), (damage, names)
        if damage in ("tags", "name"):
            assert f"run {run_id} is not listed" in listed.stderr
    ran = wattgap("run", "--model", "conv6", "--batch-size", "1", "--max-time", "0.2", "--idle", "0.2", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr  # the idle-power reuse reads its neighbours: it passes these over


# 10. SIGTERM before the run exists.


def test_a_stop_before_the_run_exists_says_nothing_was_stored(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "wattgap", "run", "--model", "helpers.usermodels:hangs", "--quiet"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(4)  # planning, then the probe loading the model, which never ends
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, out + err
    assert "stopped by SIGTERM before the run was created; nothing was stored" in out
    assert "--resume" not in out and not (tmp_path / "wattgap.db").exists()


# 11-13. Resource limits hold everywhere.


@pytest.mark.parametrize("fork", [True, False])
def test_the_model_probe_obeys_the_host_memory_cap(fork: bool) -> None:
    """A model holding 1.5 GiB while it was built reached 3.4 GiB in the probe under a 1 GiB cap. The probe
    runs as the cells do: forked from the fork server, or in a fresh interpreter; both describe alike."""
    started = time.monotonic()
    found = probe.describe("helpers.usermodels:large_at_build", ModelOptions(), 0, 60.0, 2**30, fork)
    assert "max_host_memory_gb=1 GiB" in found.get("error", ""), found
    assert time.monotonic() - started < 30  # stopped at the cap, not at the end of its 5 s hold plus more
    options = ModelOptions(input_shape=(3, 8, 8))
    assert probe.describe("helpers.usermodels:tiny", options, 0, 60.0, 2**30, fork) == {
        "described": {
            "framework": "torch",
            "inputs": [{"name": "input", "shape": [3, 8, 8], "dtype": "float32", "range": None}],
            "parameters": sum(p.numel() for p in usermodels.tiny().parameters()),
        }
    }


def test_a_cell_flooding_its_output_costs_the_sweep_a_bounded_tail(tmp_path: Path) -> None:
    (tmp_path / "sweep.yaml").write_text(
        yaml.safe_dump(fast_config(models=["helpers.usermodels:floods_then_crashes"], energy={"idle_s": 0}))
    )
    done = wattgap("run", "--config", "sweep.yaml", "--quiet", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    with Store.open_readonly(tmp_path / "wattgap.db") as store:
        (result,) = store.load_run("latest").results
    assert result.status == "crashed" and "the last words of the cell" in result.reason
    from wattgap.runner.processes import last_lines

    flood = tmp_path / "flood.log"
    with flood.open("wb") as file:
        file.write(b"x" * (300 * 2**20) + b"\nlast\n")
    tracemalloc.start()
    with flood.open("rb") as file:
        assert last_lines(file) == ["last"] or last_lines(file)[-1] == "last"
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 2**20  # a 300 MiB output read as at most its last 64 KiB


def test_a_huge_config_file_is_refused_by_its_size_unread(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    with huge.open("wb") as file:
        file.truncate(2 * 2**30)  # sparse: 2 GiB that cost no disk
    started = time.monotonic()
    refused(wattgap("run", "--config", "huge.yaml", cwd=tmp_path), "--config:", "at most 1048576 bytes")
    assert time.monotonic() - started < 20


# 14-16. Paths, widths and bad input.


@pytest.mark.parametrize(
    "args",
    [
        ["show", "latest", "--db", "{long}.db"],
        ["export", "latest", "--format", "json", "--output", "{long}.json"],
        ["report", "latest", "--html", "{long}.html"],
        ["run", "--config", "{long}.yaml"],
        ["project", "memory", "--data", "{long}.csv"],
        ["run", "--model", "conv6", "--dataset", "folder", "--dataset-path", "{long}", "--dry-run"],
        ["run", "--model", "{long}.onnx", "--dry-run"],
    ],
    ids=lambda args: next(a for a in args if a.startswith("--") and a != "--dry-run"),
)
def test_a_path_the_system_refuses_is_one_line(tmp_path: Path, one_run: tuple[bytes, str], args: list[str]) -> None:
    (tmp_path / "wattgap.db").write_bytes(one_run[0])
    given = [a.format(long="n" * 300) for a in args]
    flag = given[given.index(next(a for a in given if "n" * 300 in a)) - 1]
    refused(wattgap(*given, cwd=tmp_path), f"{flag}:")


@pytest.mark.parametrize("columns", ["0", "5"])
def test_a_tiny_width_prints_at_a_usable_minimum(tmp_path: Path, one_run: tuple[bytes, str], columns: str) -> None:
    """COLUMNS=0 printed nothing (and a run's id was lost)."""
    (tmp_path / "wattgap.db").write_bytes(one_run[0])
    env = {**os.environ, "COLUMNS": columns}
    for args in (["show", "latest"], ["list", "runs"], ["run", "--model", "conv6", "--dry-run"]):
        done = wattgap(*args, cwd=tmp_path, env=env)
        assert done.returncode == 0 and len(done.stdout.splitlines()) >= 3, done.stdout + done.stderr
    assert one_run[1] in wattgap("list", "runs", cwd=tmp_path, env=env).stdout


def test_resuming_a_run_of_a_database_that_does_not_exist_writes_nothing(tmp_path: Path) -> None:
    refused(wattgap("run", "--resume", "no-such-run", "--db", "new.db", cwd=tmp_path), "--db:", "does not exist")
    assert list(tmp_path.iterdir()) == []
