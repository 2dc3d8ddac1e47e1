"""What a new user reads: tables that fit 120 columns without wrapping what identifies a row, skipped
cells summarised, exit statuses scripts can rely on, the plan without running, names, tags and deletion,
a regression gate, phases that add up, and models that cannot run refused before anything starts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import wattgap

from wattgap.store.sqlite import Store

NAME = "nightly [bold]conv6[/bold]"  # square brackets: text, never markup


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A real run from the CLI: two cells run, two skipped (int8 on torch-eager); its db, id and output."""
    folder = tmp_path_factory.mktemp("out")
    done = wattgap(
        "run", "--model", "conv6", "--batch-size", "1,2", "--precision", "fp32,int8", "--image-size", "32",
        "--threads", "1", "--max-time", "0.3", "--idle", "0", "--quiet", "--name", NAME, "--tag", "ci",
        "--tag", "nightly", cwd=folder, env=_env(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip().splitlines()[-1].removeprefix("run id: ")
    return folder / "wattgap.db", run_id, done.stdout


def _env(**extra: str) -> dict[str, str]:
    """This environment without COLUMNS, with tests/ on the path (for helpers.usermodels), and ``extra``."""
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), env.get("PYTHONPATH")]))
    return env | extra


def test_the_run_table_fits_120_columns_and_summarises_skipped_cells(stored: tuple[Path, str, str]) -> None:
    _, _, output = stored
    lines = output.splitlines()
    assert max(len(line) for line in lines) <= 120, "\n".join(line for line in lines if len(line) > 120)
    assert f"({NAME}; tags: ci, nightly, complete)" in output
    assert "every cell: model conv6, workload infer, backend torch-eager, device cpu, threads 1" in output
    assert "skipped 2 cells before running:" in output
    assert "  2 x torch-eager has no int8" in output
    rows = [line for line in lines if line.startswith(("fp32 ", "int8 "))]
    assert [row.split()[:3] for row in rows] == [["fp32", "1", "ok"], ["fp32", "2", "ok"]]  # skipped: no rows
    header = "\n".join(lines[lines.index(next(line for line in lines if "b/med" in line)) :][:3])
    assert "b/med" in header and "wall" in header
    assert "highest throughput, infer: precision fp32, batch " in output and "samples/s (batch / median)" in output


def test_show_follows_columns_and_wraps_no_identifier(stored: tuple[Path, str, str]) -> None:
    db, run_id, _ = stored
    for width in (100, 120, 160):
        shown = wattgap("show", run_id, "--db", str(db), cwd=db.parent, env=_env(COLUMNS=str(width)))
        assert shown.returncode == 0, shown.stderr
        assert max(len(line) for line in shown.stdout.splitlines()) <= width
        assert len([line for line in shown.stdout.splitlines() if line.startswith("fp32 ")]) == 2


def test_phases_add_up_to_the_cell_total(stored: tuple[Path, str, str]) -> None:
    db, run_id, _ = stored
    with Store.open_readonly(db) as store:
        run = store.load_run(run_id)
    for result in (r for r in run.results if r.status == "ok"):
        p = result.phases
        tiles = [p.startup_s, p.load_s, p.prepare_s, p.warmup_s, p.measure_s, p.finish_s, p.exit_s, p.other_s]
        assert None not in tiles and p.total_s is not None
        assert sum(tiles) == pytest.approx(p.total_s, rel=1e-9)  # type: ignore[arg-type]
        assert p.load_s > 0 and p.finish_s > 0  # type: ignore[operator]


def test_list_runs_shows_names_and_tags_and_delete_asks_first(stored: tuple[Path, str, str], tmp_path: Path) -> None:
    db, run_id, _ = stored
    listed = wattgap("list", "runs", "--db", str(db), "--format", "json", cwd=tmp_path)
    (row,) = json.loads(listed.stdout)
    assert row["name"] == NAME and row["tags"] == "ci, nightly"
    copy = tmp_path / "copy.db"
    copy.write_bytes(db.read_bytes())
    refused = wattgap("delete", run_id, "--db", str(copy), cwd=tmp_path)
    assert refused.returncode == 2 and "--yes: required to delete run" in refused.stderr
    deleted = wattgap("delete", run_id[:10], "--yes", "--db", str(copy), cwd=tmp_path)
    assert deleted.returncode == 0 and f"deleted run {run_id} and its 4 results" in deleted.stdout
    with Store.open_readonly(copy) as store:
        assert store.run_ids() == []
        assert store.connection.execute("SELECT COUNT(*) FROM cells").fetchone()[0] == 0


def test_exit_status_is_1_when_no_cell_ran(tmp_path: Path) -> None:
    """Every cell skipped (no CUDA here) used to exit 0."""
    done = wattgap("run", "--model", "conv6", "--device", "cuda", "--idle", "0", "--quiet", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "skipped 1 cells before running" in done.stdout


def test_exit_status_is_1_when_a_cell_failed(tmp_path: Path) -> None:
    done = wattgap("run", "--model", "helpers.usermodels:raises", "--idle", "0", "--quiet", cwd=tmp_path, env=_env())
    assert done.returncode == 1, done.stderr
    assert "RuntimeError: this model cannot be built" in done.stdout and "1 failed" in done.stdout


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path: Path) -> None:
    done = wattgap(
        "run", "--model", "conv6,resnet18", "--precision", "fp32,int8", "--threads", "1", "--dry-run", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "plan of cli: 4 cells, 2 to run, 2 skipped" in done.stdout
    assert "2 x torch-eager has no int8" in done.stdout and "resnet18" in done.stdout
    assert list(tmp_path.iterdir()) == []


def test_a_user_model_without_an_input_shape_is_refused_before_the_run(tmp_path: Path) -> None:
    done = wattgap("run", "--model", "helpers.usermodels:no_shape", "--idle", "0", cwd=tmp_path, env=_env())
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count(
        "\n"
    ) == 1 and "models[0]: inputs: 'helpers.usermodels:no_shape' does not declare its inputs" in (done.stderr)
    assert list(tmp_path.iterdir()) == []


def test_compare_fail_above_is_a_regression_gate(tmp_path: Path) -> None:
    """B 30% slower per sample than A, interval clear: exit 1 above 10%, exit 0 at 40%."""
    from test_speedup import make_run, result

    samples = np.random.default_rng(3).normal(0.001, 0.00002, 300)
    db = tmp_path / "w.db"
    with Store.open(db) as store:
        for run in (make_run("a", [result(samples)]), make_run("b", [result(samples * 1.3)])):
            store.create_run(run.run_id, run.config, {}, run.cells, {}, "test")
            store.store_result(run.run_id, run.results[0])
            store.set_run_status(run.run_id, "complete")
    gate = wattgap("compare", "a", "b", "--by", "device", "--fail-above", "10", "--db", str(db), cwd=tmp_path)
    assert gate.returncode == 1, gate.stderr
    assert "REGRESSION: B resnet18/infer/torch-eager/cpu/fp32/b8/t2 has -23.1% throughput per sample" in gate.stdout
    loose = wattgap("compare", "a", "b", "--by", "device", "--fail-above", "40", "--db", str(db), cwd=tmp_path)
    assert loose.returncode == 0 and "REGRESSION" not in loose.stdout
    bad = wattgap("compare", "a", "b", "--fail-above", "-5", "--db", str(db), cwd=tmp_path)
    assert bad.returncode == 2 and "--fail-above: got -5.0" in bad.stderr
