"""Repeats in fresh processes (protocol.repeats), their order, and the hierarchical bootstrap: statistics
on known samples, the schedule as a pure function, and real runs through the API and the CLI."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
from helpers import FAST_PROTOCOL as FAST
from helpers import fast_config, result
from helpers import wattgap as wattgap_cli

import wattgap.api
from wattgap.analysis.speedup import pair
from wattgap.cells import Cell
from wattgap.config import parse_config
from wattgap.errors import ConfigError
from wattgap.measure.stats import bootstrap_medians, median_ci, pooled_quantiles, summarize, summarize_repeats
from wattgap.plan import schedule
from wattgap.render.progress import SilentProgress
from wattgap.results import CellResult
from wattgap.runner.executors import CellJob, LocalExecutor
from wattgap.runner.executors.base import OnEvent
from wattgap.runner.repeats import combine

pytestmark = pytest.mark.slow  # real sweeps and stacks: make test runs it, make test-fast does not


def _windows(medians_ms: list[float], sizes: list[int], seed: int = 0) -> list[np.ndarray]:
    """One window per process: tight samples (0.5% spread) around each process's own median."""
    rng = np.random.default_rng(seed)
    return [m / 1e3 * (1 + 0.005 * rng.standard_normal(n)) for m, n in zip(medians_ms, sizes, strict=True)]


def test_the_hierarchical_interval_covers_the_spread_between_processes() -> None:
    windows = _windows([15.4, 17.4, 25.0], [400, 400, 400])  # the three processes, minutes apart
    pooled = np.concatenate(windows)
    flat_low, flat_high = median_ci(pooled, 0.95, 2000)
    low, high = median_ci(windows, 0.95, 2000)
    assert high - low > 20 * (flat_high - flat_low)  # the flat interval pretends the processes agree
    assert low <= 15.6e-3 and high >= 24.8e-3  # it spans the processes' medians
    stats = summarize_repeats(windows, resamples=2000)
    assert stats.repeats == 3 and stats.n == 1200
    assert stats.repeat_medians_s == pytest.approx([15.4e-3, 17.4e-3, 25.0e-3], rel=0.01)
    assert stats.between_repeat_cv == pytest.approx(
        np.std([15.4, 17.4, 25.0], ddof=1) / np.mean([15.4, 17.4, 25.0]), rel=0.02
    )
    assert stats.within_ci_rel_halfwidth is not None and stats.within_ci_rel_halfwidth < 0.002
    assert stats.median_ci_rel_halfwidth > 0.1 and stats.noisy
    assert any(w.startswith("noisy between processes") and "15.4, 17.4, 25" in w for w in stats.warnings)


def test_every_process_weighs_the_same_whatever_its_sample_count() -> None:
    fast, slow = _windows([10.0, 20.0], [900, 100])  # the fast process fitted 9x the iterations
    assert float(np.median(np.concatenate([fast, slow]))) < 10.2e-3  # pooled plainly, the fast one wins
    weighted = float(pooled_quantiles([fast, slow], 0.5))
    assert 10.0e-3 < weighted <= 20.1e-3 and summarize_repeats([fast, slow]).median_s == weighted
    boots = bootstrap_medians([fast, slow], 4000, seed=1)
    fast_only, slow_only = np.mean(boots < 10.2e-3), np.mean(boots > 19.8e-3)
    assert 0.22 < fast_only < 0.28 and 0.22 < slow_only < 0.28  # each picked twice: 1/4 of the resamples
    assert 0.45 < 1 - fast_only - slow_only < 0.55  # one of each: a median between them, half of them


def test_one_window_is_summarised_as_before() -> None:
    (window,) = _windows([12.0], [300])
    one = summarize(window.tolist(), resamples=500)
    assert one == summarize_repeats([window.tolist()], resamples=500)
    assert one.repeats == 1 and one.repeat_medians_s == [] and one.between_repeat_cv is None
    assert one.median_s == float(np.median(window)) and one.std_s == pytest.approx(float(np.std(window, ddof=1)))
    assert np.array_equal(bootstrap_medians(window, 300, 4), bootstrap_medians([window], 300, 4))
    with pytest.raises(Exception, match=r"repeat 2\), got 1"):
        summarize_repeats([window.tolist(), [0.01]])


def _cells(*models: str, workload: str = "infer") -> list[Cell]:
    return [
        Cell(model=m, workload=workload, backend="torch-eager", device="cpu", precision="fp32", batch_size=1)
        for m in models
    ]


def test_the_schedule_is_rounds_in_sweep_order_or_a_seeded_interleaving() -> None:
    cells = _cells("a", "b", "c")
    rounds = schedule(cells, parse_config({"models": ["conv6"], "protocol": {"repeats": 2, "order": "sweep"}}))
    assert [(c.model, r) for c, r in rounds] == [("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1), ("c", 1)]
    config = parse_config({"models": ["conv6"], "protocol": {"repeats": 4}, "seed": 3})
    assert config.order == "interleaved"
    mixed = schedule(cells, config)
    assert mixed == schedule(cells, config)  # seeded: a resumed run keeps its order
    assert sorted((c.model, r) for c, r in mixed) == [(m, r) for m in "abc" for r in range(4)]
    for model in "abc":  # each cell's repeats numbered as they come
        assert [r for c, r in mixed if c.model == model] == [0, 1, 2, 3]
    assert [c.model for c, _ in mixed] != [
        c.model
        for c, _ in schedule(
            cells, config.model_copy(update={"protocol": config.protocol.model_copy(update={"order": "sweep"})})
        )
    ]
    other = schedule(cells, config.model_copy(update={"seed": 4}))
    assert [c.model for c, _ in other] != [c.model for c, _ in mixed]
    once = parse_config(
        {
            "models": ["conv6"],
            "workloads": ["infer", "train-to-accuracy"],
            "dataset": "digits",
            "protocol": {"repeats": 3},
        }
    )
    trained = schedule(_cells("a") + _cells("a", workload="train-to-accuracy"), once)
    assert sorted((c.workload, r) for c, r in trained) == [
        ("infer", 0),
        ("infer", 1),
        ("infer", 2),
        ("train-to-accuracy", 0),
    ]


def test_order_settings_are_checked() -> None:
    assert parse_config({"models": ["conv6"]}).order == "sweep"
    assert parse_config({"models": ["conv6"], "protocol": {"repeats": 2}, "batch_sizes": "max"}).order == "sweep"
    with pytest.raises(ConfigError, match=r"^protocol.order: got 'interleaved'; allowed: sweep \(a batch search"):
        parse_config({"models": ["conv6"], "protocol": {"order": "interleaved"}, "batch_sizes": "max"})
    with pytest.raises(ConfigError, match=r"protocol.repeats: got 0; input should be greater than or equal to 1"):
        parse_config({"models": ["conv6"], "protocol": {"repeats": 0}})
    with pytest.raises(ConfigError, match=r"protocol.order: got 'random'; allowed: 'sweep' or 'interleaved'"):
        parse_config({"models": ["conv6"], "protocol": {"order": "random"}})


def test_compare_reads_the_spread_between_processes() -> None:
    """Two cells whose pooled samples look alike; the one measured in disagreeing processes gets the wider
    speedup interval."""
    windows = _windows([10.0, 10.5, 12.0], [200, 200, 200], seed=2)
    base = result(np.concatenate(_windows([10.0], [600], seed=3)))
    flat = result(np.concatenate(windows), precision="bf16")
    parts = []
    for index, window in enumerate(windows):
        part = result(window, precision="bf16")
        parts.append(
            part.model_copy(
                update={"repeat": index, "sequence": index, "phases": part.phases.model_copy(update={"measure_s": 1.0})}
            )
        )
    config = parse_config({"models": ["resnet18"], "protocol": {"repeats": 3}})
    repeated = combine(parts, config, {})
    assert repeated.sample_groups() == [w.tolist() for w in windows]
    assert repeated.latencies_s == flat.latencies_s and [r.samples for r in repeated.repeats] == [200, 200, 200]
    narrow = pair(base, flat, {"precision": "bf16"}, 0)
    wide = pair(base, repeated, {"precision": "bf16"}, 0)
    assert (wide.ci_high - wide.ci_low) > 5 * (narrow.ci_high - narrow.ci_low), (wide, narrow)
    assert flat.sample_groups() == [flat.latencies_s]


class _StopAfter(SilentProgress):
    """Ctrl-C once ``count`` processes have ended (combinations of them are not counted)."""

    def __init__(self, count: int) -> None:
        self.left = count

    def cell_finished(self, result: CellResult) -> None:
        if not result.repeats:
            self.left -= 1
            if self.left == 0:
                raise KeyboardInterrupt


def test_each_process_is_stored_as_it_ends_and_an_interrupted_run_resumes_in_its_order(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    config = fast_config(models=["helpers.usermodels:tiny"], batch_sizes=[1, 2, 3], protocol={**FAST, "repeats": 2})
    with contextlib.suppress(KeyboardInterrupt):
        wattgap.api.run(config, db=db, progress=_StopAfter(3))
    (summary,) = wattgap.api.list_runs(db)
    with sqlite3.connect(db) as connection:
        stored = connection.execute("SELECT cell_id, repeat FROM repeats").fetchall()
    assert len(stored) == 3 and summary["status"] == "interrupted"

    run = wattgap.api.resume(db, summary["run_id"])
    assert run.status == "complete" and run.counts()["ok"] == 3
    planned = [(cell.cell_id, repeat) for cell, repeat in schedule(run.cells, run.config)]
    with sqlite3.connect(db) as connection:
        rows = connection.execute("SELECT cell_id, repeat, result_json FROM repeats").fetchall()
    parts = {(cell_id, repeat): CellResult.model_validate_json(text) for cell_id, repeat, text in rows}
    ran = sorted(parts, key=lambda key: parts[key].sequence or 0)
    assert ran == planned and [parts[key].sequence for key in ran] == list(range(6))  # the order, stored
    for cell in run.results:
        own = [parts[(cell.cell_id, repeat)] for repeat in range(2)]
        assert [r.repeat for r in cell.repeats] == [0, 1] and cell.repeat is None
        assert cell.sample_groups() == [part.latencies_s for part in own]  # every sample kept, by process
        assert cell.latency is not None and cell.latency.repeats == 2
        assert cell.latency.repeat_medians_s == [part.latency.median_s for part in own if part.latency]
        assert cell.iterations == sum(len(part.latencies_s) for part in own) == cell.latency.n
        assert cell.phases.measure_s == pytest.approx(sum(part.phases.measure_s or 0 for part in own))
        assert cell.energy is not None and cell.energy.samples == sum(p.energy.samples or 0 for p in own if p.energy)
        assert cell.throughput_sps == pytest.approx(cell.cell.batch_size * cell.iterations / cell.phases.measure_s)


def test_a_cell_that_fails_in_one_process_is_not_run_again_and_keeps_what_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATTGAP_TEST_MARKER_DIR", str(tmp_path))
    model = "helpers.usermodels:fails_after_first_process"
    config = fast_config(models=[model], input_shape=[3, 8, 8], protocol={**FAST, "repeats": 3})
    run = wattgap.api.run(config, db=tmp_path / "w.db")
    (failed,) = run.results
    assert failed.status == "failed" and run.status == "complete"
    assert failed.reason == "repeat 2 of 3: RuntimeError: this model fails in its second process"
    assert [(r.repeat, r.status, r.samples > 0) for r in failed.repeats] == [(0, "ok", True), (1, "failed", False)]
    with sqlite3.connect(tmp_path / "w.db") as connection:
        assert connection.execute("SELECT COUNT(*) FROM repeats").fetchone()[0] == 2  # no third process


def test_the_cli_runs_repeats_and_says_how(tmp_path: Path) -> None:
    args = ["run", "--model", "helpers.usermodels:tiny", "--batch-size", "1", "--threads", "1", "--idle", "0"]
    done = wattgap_cli(*args, "--repeats", "2", "--max-time", "0.2", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "b1/t1 repeat 1  median" in done.stdout and "b1/t1 repeat 2  median" in done.stdout
    text = " ".join(done.stdout.split())  # lines folded at 120 columns, joined
    assert "(2 processes, ±proc" in text and "±CI ±proc" in text
    assert "repeats: each cell measured in 2 fresh processes, in a seeded random order" in text
    for flags, message in [
        (["--repeats", "0"], "protocol.repeats: got 0; input should be greater than or equal to 1"),
        (["--order", "random"], "protocol.order: got 'random'; allowed: 'sweep' or 'interleaved'"),
    ]:
        bad = wattgap_cli(*args, *flags, "--db", "bad.db", cwd=tmp_path)
        assert bad.returncode == 2 and bad.stderr.strip().endswith(message) and "Traceback" not in bad.stderr
        assert not (tmp_path / "bad.db").exists()


def test_a_cooldown_separates_every_two_processes(tmp_path: Path) -> None:
    events: list[tuple[str, float]] = []

    class Timed(LocalExecutor):
        """Notes when each job is taken and when each result is handed back."""

        def submit(self, jobs: Iterable[CellJob], on_event: OnEvent) -> Iterator[CellResult]:
            def taken() -> Iterator[CellJob]:
                for job in jobs:
                    events.append(("job", time.monotonic()))
                    yield job

            for finished in super().submit(taken(), on_event):
                events.append(("result", time.monotonic()))
                yield finished

    config = fast_config(models=["helpers.usermodels:tiny"], protocol={**FAST, "repeats": 2, "cooldown_s": 1.5})
    run = wattgap.api.run(config, db=tmp_path / "w.db", executor=Timed())
    assert run.counts()["ok"] == 1
    assert [kind for kind, _ in events] == ["job", "result", "job", "result"]
    assert events[2][1] - events[1][1] >= 1.5  # from the first process's end to the second's start


def test_a_run_stopped_between_a_cells_last_process_and_its_combination_combines_on_resume(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    config = fast_config(models=["helpers.usermodels:tiny"], protocol={**FAST, "repeats": 2})
    run = wattgap.api.run(config, db=db)
    (before,) = run.results
    with sqlite3.connect(db) as connection:  # as if the sweep died right after storing the last process
        connection.execute("DELETE FROM results WHERE run_id = ?", (run.run_id,))
        connection.execute("UPDATE runs SET status = 'interrupted' WHERE run_id = ?", (run.run_id,))
    resumed = wattgap.api.resume(db, run.run_id)
    (after,) = resumed.results
    assert resumed.status == "complete"
    assert after.sample_groups() == before.sample_groups() and after.latency == before.latency  # no process ran
    with sqlite3.connect(db) as connection:
        assert connection.execute("SELECT COUNT(*) FROM repeats").fetchone()[0] == 2


def test_resuming_a_finished_run_changes_nothing_stored(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    run = wattgap.api.run(fast_config(models=["helpers.usermodels:tiny"], protocol=FAST), db=db)
    with contextlib.closing(sqlite3.connect(db)) as connection, connection:  # a finish time a rewrite would move
        connection.execute("UPDATE runs SET finished_at = '2026-01-02T03:04:05+00:00'")

    def stored() -> list[tuple[object, ...]]:
        with contextlib.closing(sqlite3.connect(db)) as connection:
            return [*connection.execute("SELECT * FROM runs"), *connection.execute("SELECT * FROM results")]

    before = stored()
    resumed = wattgap.api.resume(db, run.run_id)
    assert resumed.status == "complete" and resumed.finished_at == "2026-01-02T03:04:05+00:00"
    assert stored() == before
    done = wattgap_cli("run", "--resume", run.run_id, "--db", str(db), cwd=tmp_path)  # said from the counts
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"run {run.run_id} is complete (1 ok): nothing to run; `wattgap show` shows it"
    assert stored() == before
    failed = wattgap.api.run(fast_config(models=["helpers.usermodels:raises"], protocol=FAST), db=db)
    done = wattgap_cli("run", "--resume", failed.run_id, "--db", str(db), cwd=tmp_path)
    assert done.returncode == 1 and "is complete (1 failed): nothing to run" in done.stdout  # as when it ran
