"""What a new user reads: tables that fit 120 columns without wrapping what identifies a row, skipped
cells summarised, exit statuses scripts can rely on, the plan without running, names, tags and deletion,
a regression gate, phases that add up, and models that cannot run refused before anything starts."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import wattgap

from wattgap.machines import Environment
from wattgap.results import Run
from wattgap.store.sqlite import Store

pytestmark = pytest.mark.slow  # real sweeps and stacks: make test runs it, make test-fast does not

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
    shared = next(line for line in lines if line.startswith("every cell:"))
    assert shared.endswith("world_size 1") and "scenario" not in output  # a field with no value is not named
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
        rows = [line for line in shown.stdout.splitlines() if line.startswith("fp32 ")]
        tables = len([line for line in shown.stdout.splitlines() if line.startswith("precision ")])
        assert tables >= 1 and len(rows) == 2 * tables  # each row whole, once per table the figures need


def test_phases_add_up_to_the_cell_total(stored: tuple[Path, str, str]) -> None:
    db, run_id, _ = stored
    with Store.open_readonly(db) as store:
        run = store.load_run(run_id)
    finished = [r for r in run.results if r.status == "ok"]
    assert finished  # not vacuously
    for result in finished:
        p = result.phases
        named = [p.startup_s, p.load_s, p.prepare_s, p.warmup_s, p.measure_s, p.finish_s, p.exit_s]
        assert None not in named and p.total_s is not None and p.other_s is not None
        # timed apart (each phase in the cell's process, the total by its parent): the named phases never
        # exceed the total, and cover most of it (other_s, the remainder, is what no phase accounts for)
        assert sum(named) <= p.total_s * (1 + 1e-6)  # type: ignore[arg-type]
        assert p.other_s <= 0.25 * p.total_s, p
        assert sum(named) + p.other_s == pytest.approx(p.total_s, rel=1e-9)  # type: ignore[arg-type]
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


def _store(db: Path, *runs: Run) -> None:
    with Store.open(db) as store:
        for run in runs:
            store.create_run(run.run_id, run.config, run.environment, run.cells, {}, "test")
            store.store_result(run.run_id, run.results[0])
            store.set_run_status(run.run_id, "complete")


def _processes(median_s: float, drift: list[float], seed: int) -> list[np.ndarray]:
    """One window of samples per process, each process off the median by its ``drift`` share."""
    rng = np.random.default_rng(seed)
    return [rng.normal(median_s * (1 + d), median_s * 0.02, 300) for d in drift]


def test_compare_fail_above_is_a_regression_gate(tmp_path: Path) -> None:
    """B 30% slower per sample than A, each measured in 3 processes: exit 1 above 10%, exit 0 at 40%."""
    from helpers import make_run, repeated_result

    db = tmp_path / "w.db"
    a = make_run("a", [repeated_result(_processes(0.001, [0.0, 0.01, -0.01], 1))])
    b = make_run("b", [repeated_result(_processes(0.0013, [0.0, 0.01, -0.01], 2))])
    _store(db, a, b)
    gate = wattgap("compare", "a", "b", "--by", "device", "--fail-above", "10", "--db", str(db), cwd=tmp_path)
    assert gate.returncode == 1, gate.stderr
    assert "REGRESSION: B resnet18/infer/torch-eager/cpu/fp32/b8/t2 has -23" in gate.stdout
    assert "between 3 processes" not in gate.stdout and "between processes" in gate.stdout
    loose = wattgap("compare", "a", "b", "--by", "device", "--fail-above", "40", "--db", str(db), cwd=tmp_path)
    assert loose.returncode == 0 and "REGRESSION" not in loose.stdout
    bad = wattgap("compare", "a", "b", "--fail-above", "-5", "--db", str(db), cwd=tmp_path)
    assert bad.returncode == 2 and "--fail-above: got -5.0" in bad.stderr


def test_single_process_runs_are_judged_only_against_a_measured_spread(tmp_path: Path) -> None:
    """Two single-process runs of the same cell 2% apart (the drift between processes on a shared VM,
    inside each window's own narrow interval) used to fail an A/A gate at 1%. Without a spread measured
    on the machine they are not judged; with one (a repeated run of this machine in the database, 3%
    between its processes) the difference is within it; a real 30% regression is still caught."""
    from helpers import make_run, repeated_result, result

    machine = {"cpu": {"model": "Test CPU"}, "gpus": [], "libraries": {"torch": "2.13.0"}}
    rng = np.random.default_rng(5)

    def single(run_id: str, median_s: float) -> Run:
        run = make_run(run_id, [result(rng.normal(median_s, median_s * 0.01, 500))])
        return run.model_copy(update={"environment": Environment.model_validate(machine)})

    db = tmp_path / "w.db"
    _store(db, single("a", 0.001), single("b", 0.00102), single("c", 0.0013))
    first = wattgap("compare", "a", "b", "--by", "device", "--fail-above", "1", "--db", str(db), cwd=tmp_path)
    assert first.returncode == 0 and "REGRESSION" not in first.stdout, first.stdout
    assert "not judged by --fail-above: 1 of 1 pairs" in first.stdout and "within one process" in first.stdout
    processes = _processes(0.001, [0.0, 0.03, -0.03], 3)
    measured = make_run("m", [repeated_result(processes)])
    with Store.open(db) as store:  # made on the same machine, now: each process stored, then the cell
        store.create_run("m", measured.config, Environment.model_validate(machine), measured.cells, {}, "test")
        for index, samples in enumerate(processes):
            store.store_repeat("m", result(samples).model_copy(update={"repeat": index}))
        store.store_result("m", measured.results[0])
    widened = wattgap("compare", "a", "b", "--by", "device", "--fail-above", "1", "--db", str(db), cwd=tmp_path)
    assert widened.returncode == 0 and "REGRESSION" not in widened.stdout, widened.stdout
    said = " ".join(widened.stdout.split())
    assert re.search(r"widened by this machine's spread between processes, [23]\.\d\d%", said), said
    caught = wattgap("compare", "a", "c", "--by", "device", "--fail-above", "10", "--db", str(db), cwd=tmp_path)
    assert caught.returncode == 1 and "REGRESSION" in caught.stdout, caught.stdout


def test_list_models_reads_as_text(tmp_path: Path) -> None:
    """It printed a Python dict ({'model': 2262602}) and 0 classes for CycleGAN, a generator."""
    listed = wattgap("list", "models", cwd=tmp_path)
    assert listed.returncode == 0 and "{'" not in listed.stdout and "model 2262602" in listed.stdout
    cyclegan = next(line for line in listed.stdout.splitlines() if "cyclegan" in line)
    assert " - " in cyclegan and " 0 " not in cyclegan
    rows = json.loads(wattgap("list", "models", "--format", "json", cwd=tmp_path).stdout)
    assert next(row for row in rows if row["name"] == "cyclegan")["classes"] is None


@pytest.mark.parametrize("width", [120, 80, 60])
def test_a_wide_table_never_cuts_a_number_or_a_word(width: int) -> None:
    """At 120 columns wider sweeps cut numbers and units ('52.6 …', '406 M…') and folded notes lost words
    ('not quie'); the notes column shrank to 1 character with 8 backends."""
    from helpers import make_run, result
    from rich.console import Console

    from wattgap.measure.noise import NoiseAudit
    from wattgap.render.terminal import run_view

    backends = ["torch-eager", "torch-compile", "torchao", "tf-eager", "tf-xla", "onnxruntime", "openvino", "tensorrt"]
    rng = np.random.default_rng(0)
    cells = []
    for index, backend in enumerate(backends):
        cell = result(rng.normal(0.0526 * (index + 1), 0.001, 50), backend=backend, precision="int8")
        audit = NoiseAudit(window_s=1.0, suspect=["other processes used 0.98 cores (over 0.1)"])
        cells.append(cell.model_copy(update={"noise": audit, "throughput_sps": 123456.0}))
    console = Console(width=width, record=True)
    console.print(run_view(make_run("w", cells)))
    text = console.export_text()
    assert "…" not in text and all(len(line) <= width for line in text.splitlines())
    for backend in backends:
        assert backend in text
    assert "the machine was not quiet: other processes used 0.98 cores (over 0.1)" in " ".join(text.split())


def test_a_long_run_shows_its_first_rows_and_says_how_to_see_the_rest() -> None:
    """A 10,000-row table took 20 of `show`'s 25 s and is read by search, not by eye: the table stops at
    ``rows_shown`` cells in sweep order and says how many more there are; 0 shows them all."""
    from helpers import make_run, result
    from rich.console import Console

    from wattgap.render.terminal import run_view

    run = make_run("w", [result(np.full(20, 0.001 * batch), batch_size=batch) for batch in range(1, 6)])

    def shown(rows_shown: int) -> str:
        console = Console(width=200, record=True)
        console.print(run_view(run, rows_shown))
        return console.export_text()

    cut, whole = shown(2), shown(0)
    assert "3 more cells not shown, of 5: `wattgap show w --rows 0` shows every one" in cut
    assert [int(line.split()[0]) for line in cut.splitlines() if line[:1].isdigit()][:2] == [1, 2]
    assert "more cells not shown" not in whole and "more cells not shown" not in shown(5)
    assert "5 cells: 5 ok" in cut and "5 cells: 5 ok" in whole  # the counts and best lines are over all of them


def test_ranked_and_paired_tables_stop_at_their_rows_and_say_so() -> None:
    from helpers import make_run, result
    from rich.console import Console

    from wattgap.analysis.efficiency import EfficiencyParams, efficiency
    from wattgap.analysis.recommend import recommend
    from wattgap.analysis.speedup import compare
    from wattgap.analysis.tradeoff import tradeoff
    from wattgap.render.terminal import comparison_table, efficiency_table, recommendation_view, tradeoff_view

    run = make_run("w", [result(np.full(20, 0.001 * batch), batch_size=batch) for batch in range(1, 7)])

    def text(view: object) -> str:
        console = Console(width=200, record=True)
        console.print(view)
        return console.export_text()

    answer = recommend([run], "throughput")  # the best, the runner-up, and 4 others
    assert "2 more other cells not shown, of 4: --rows 0 shows every one" in text(recommendation_view(answer, 2))
    assert "not shown" not in text(recommendation_view(answer, 0))
    pairs = text(comparison_table(compare(run, run, by="batch_size"), 2))
    assert "3 more pairs not shown, of 5" in pairs and pairs.count("within one process") == 3  # 2 rows + title
    params = EfficiencyParams()
    metric, ranked = efficiency(run, params)
    assert "4 more cells not shown, of 6" in text(efficiency_table(run, metric, ranked, params, rows_shown=2))
    models = [
        result(np.full(20, 0.001 * b), batch_size=b, model=m) for m in ("conv6", "vgg16", "resnet18") for b in (1, 2)
    ]
    curves = tradeoff([make_run("t", models)])  # three curves of two batches each
    assert "2 more curves not shown, of 3: --rows 0 shows every one" in text(tradeoff_view(curves, 3))
    assert "not shown" not in text(tradeoff_view(curves, 0)) and "not shown" not in text(tradeoff_view(curves, 6))
    assert "2 more curves not shown, of 3" in text(tradeoff_view(curves, 1))  # one whole curve, however few rows
