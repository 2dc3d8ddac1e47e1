from __future__ import annotations

import csv
import gc
import io
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from helpers import result

from wattgap import api
from wattgap.config import SweepConfig, parse_config
from wattgap.errors import ConfigError, StoreError
from wattgap.machines import Environment
from wattgap.store.migrations import SCHEMA_VERSION
from wattgap.store.sqlite import FREEZE_AT, Store


def test_new_database_is_marked_versioned_and_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    Store.open(path).close()
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA application_id").fetchone()[0] == 0x57475031
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_missing_folder_is_refused_and_nothing_created(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"folder .* does not exist"):
        Store.open(tmp_path / "nope" / "w.db")
    assert not (tmp_path / "nope").exists()


def test_readonly_open_never_creates(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        Store.open_readonly(tmp_path / "w.db")
    assert list(tmp_path.iterdir()) == []


def test_foreign_files_are_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("hello, not a database")
    with pytest.raises(StoreError, match="not a wattgap database"):
        Store.open(text)
    assert text.read_text() == "hello, not a database"
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(StoreError, match="SQLite file but not a wattgap database"):
        Store.open_readonly(other)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    Store.open(path).close()
    connection = sqlite3.connect(path)
    connection.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match="newer than this wattgap reads"):
        Store.open(path)


def test_unknown_run_ids_name_the_latest_runs(tmp_path: Path) -> None:
    path = tmp_path / "w.db"
    Store.open(path).close()
    with Store.open_readonly(path) as store, pytest.raises(StoreError, match="is not in"):
        store.resolve("20990101")


def test_version_1_results_read_with_the_new_fields_unset() -> None:
    from wattgap.cells import Cell
    from wattgap.results import CellResult

    cell = Cell(model="conv6", workload="infer", backend="torch-eager", device="cpu", precision="fp32", batch_size=1)
    written = CellResult(cell=cell, status="ok", throughput_sps=10.0).model_dump(mode="json")
    for field in ("energy", "accuracy_top1", "block"):
        del written[field]
    written["schema_version"] = 1
    old = CellResult.model_validate(written)
    assert old.schema_version == 1 and old.energy is None and old.block is None
    assert old.flat()["energy_j"] is None and old.flat()["energy_label"] is None


RELEASED = Path(__file__).parent / "data" / "wattgap-0.1.0-schema1.db"  # written by wattgap 0.1.0


def test_a_database_written_by_0_1_0_reads_and_takes_new_runs(tmp_path: Path) -> None:
    from helpers import FAST_PROTOCOL, fast_config

    import wattgap

    copy = tmp_path / "old.db"
    shutil.copyfile(RELEASED, copy)
    with Store.open_readonly(copy) as store:
        old = store.load_run("latest")
    assert old.status == "complete" and old.counts()["ok"] == 4 and old.counts()["skipped"] == 4
    assert all(r.latency is not None and r.latency.median_s > 0 for r in old.results if r.status == "ok")
    assert {r.cell_id for r in old.results} == {c.cell_id for c in old.cells}  # ids still match their cells
    assert sqlite3.connect(copy).execute("PRAGMA user_version").fetchone()[0] == 1  # reading upgrades nothing
    repeated = {**FAST_PROTOCOL, "repeats": 2}  # written to the repeats table the upgrade creates
    new = wattgap.run(
        fast_config(memory_formats=["auto", "contiguous"], protocol=repeated), db=copy, tags=["after-upgrade"]
    )
    assert sqlite3.connect(copy).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 6
    assert all(len(result.repeats) == 2 for result in new.results)
    with Store.open_readonly(copy) as store:
        assert store.run_ids() == [old.run_id, new.run_id]
        assert store.load_run(old.run_id).results == old.results and store.load_run(old.run_id).tags == []
        again = store.load_run(new.run_id)
        assert again.tags == ["after-upgrade"]
        # a field added after the first schema (memory_format) is stored and read back with the cell
        assert [c.memory_format for c in again.cells] == ["auto", "contiguous"]
        assert [r.cell_id for r in again.results] == [c.cell_id for c in again.cells]
        assert again.results[1].settings["memory_format"] == "contiguous"
    assert sqlite3.connect(copy).execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_a_stored_result_is_never_replaced(tmp_path: Path) -> None:
    copy = tmp_path / "old.db"
    shutil.copyfile(RELEASED, copy)
    with Store.open_readonly(copy) as store:
        run = store.load_run("latest")
    first = next(r for r in run.results if r.status == "ok")
    again = first.model_copy(update={"throughput_sps": 1.0, "status": "failed"})
    with Store.open(copy) as store:
        with pytest.raises(StoreError, match=r"already has a result for cell .*: ok, stored at .*never replaced"):
            store.store_result(run.run_id, again)
        assert store.load_run(run.run_id).results == run.results


def test_a_run_reads_back_where_its_user_model_and_data_are_not(tmp_path: Path) -> None:
    """A stored run made with a user's model and data folder reads on a machine that has neither (report,
    compare and show read runs from elsewhere); a new sweep naming them is still refused."""
    fields = {"models": ["elsewhere.models:build"], "dataset": "folder", "dataset_path": "/nowhere/images"}
    config = SweepConfig.model_validate(fields, context={"stored": True})
    with Store.open(tmp_path / "w.db") as store:
        store.create_run("r1", config, Environment(), [], {}, "test")
    with Store.open_readonly(tmp_path / "w.db") as store:
        assert store.load_run("r1").config.models == ["elsewhere.models:build"]
    with pytest.raises(ConfigError, match=r"elsewhere\.models"):
        parse_config({"models": fields["models"]})
    with pytest.raises(ConfigError, match="/nowhere/images"):
        parse_config({**fields, "models": ["conv6"]})


def test_train_to_accuracy_fields_stored_before_blocks_read_into_its_block() -> None:
    """Schemas 2-5 kept train-to-accuracy's fields as ``training``; they read into the workload's block,
    which is exported with its kind, and every block's columns are in every flat row."""
    from wattgap.blocks import BLOCKS, COLUMNS, Training
    from wattgap.cells import Cell
    from wattgap.render.views import VIEWS
    from wattgap.results import CellResult

    cell = Cell(
        model="conv6",
        workload="train-to-accuracy",
        backend="torch-eager",
        device="cpu",
        precision="fp32",
        batch_size=32,
    )
    training = {"target_accuracy": 0.5, "max_epochs": 3, "reached": True, "epochs": 2, "time_to_accuracy_s": 1.5}
    training |= {"total_time_s": 1.5, "final_top1": 0.6, "best_top1": 0.6}
    training["curve"] = [{"epoch": 1, "time_s": 1.5, "top1": 0.6}]
    stored = {"schema_version": 5, "cell": cell.model_dump(), "status": "ok", "training": training}
    old = CellResult.model_validate(stored)
    assert isinstance(old.block, Training) and old.block.epochs == 2 and old.block.curve[0].top1 == 0.6
    exported = old.model_dump(mode="json")
    assert "training" not in exported and exported["block"]["kind"] == "train-to-accuracy"
    assert CellResult.model_validate_json(old.model_dump_json()) == old
    assert {name: old.flat()[name] for name in COLUMNS} == {
        "time_to_accuracy_s": 1.5, "energy_to_accuracy_j": None, "epochs": 2, "reached": True,
        "process_group": None, "allreduce_share": None,  # train-ddp's block: not this cell's
        "validity": None, "mlperf_valid": None, "samples_per_s": None, "target_qps": None,  # serve's
        "energy_per_query_j": None,
    }  # fmt: skip
    timed = CellResult(cell=cell.model_copy(update={"workload": "infer"}), status="ok")
    assert timed.block is None and all(timed.flat()[name] is None for name in COLUMNS)
    assert set(VIEWS) == set(BLOCKS)  # a block without a view could not be shown


def test_a_run_state_says_whether_everything_ran() -> None:
    from wattgap.results import STATUSES, RunState

    counts = dict.fromkeys(STATUSES, 0) | {"ok": 3, "oom": 2, "pending": 0}
    assert RunState("r", "complete", counts, batch_search=True).all_ran  # a search ends on out-of-memory cells
    assert not RunState("r", "complete", counts, batch_search=False).all_ran
    assert not RunState("r", "interrupted", counts | {"oom": 0, "pending": 1}, batch_search=False).finished
    assert not RunState("r", "complete", counts | {"ok": 0, "oom": 0}, batch_search=False).all_ran  # nothing ran


def test_an_export_is_read_a_result_at_a_time_and_says_what_the_whole_run_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "old.db"
    shutil.copyfile(RELEASED, copy)
    with Store.open(copy) as store:
        store.create_run("r-empty", parse_config({"models": ["conv6"]}), Environment(), [], {}, "test")
    with Store.open_readonly(copy) as store:
        run_ids = store.run_ids()
        runs = [store.load_run(run_id) for run_id in run_ids]
        assert [list(store.iter_results(run.run_id)) for run in runs] == [run.results for run in runs]
    assert any(run.results for run in runs) and any(not run.results for run in runs)
    for run in runs:
        api.export(copy, run.run_id, "json", tmp_path / f"{run.run_id}.json")
        whole = json.dumps(run.model_dump(mode="json"), indent=2, ensure_ascii=True)
        assert (tmp_path / f"{run.run_id}.json").read_text() == whole
        api.export(copy, run.run_id, "csv")
        rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
        assert [row["cell_id"] for row in rows] == [result.cell_id for result in run.results]
        flat = [{"run_id": run.run_id, **result.flat()} for result in run.results]
        assert (list(rows[0]) if rows else []) == list(dict.fromkeys(key for row in flat for key in row))
    damaged = sqlite3.connect(copy)
    with damaged:
        damaged.execute("UPDATE results SET result_json = 'garbage' WHERE rowid = (SELECT MAX(rowid) FROM results)")
    damaged.close()
    broken = next(run for run in runs if run.results).run_id
    for fmt in ("json", "csv"):
        with pytest.raises(StoreError, match=f"run {broken}: the result of cell"):
            api.export(copy, broken, fmt)
        assert capsys.readouterr().out == ""  # nothing of it reached standard output
        with pytest.raises(StoreError, match=f"run {broken}: the result of cell"):
            api.export(copy, broken, fmt, tmp_path / f"broken.{fmt}")
        assert not (tmp_path / f"broken.{fmt}").exists()


def test_no_block_column_shadows_a_field_of_the_flat_row() -> None:
    """A flat row holds the cell's fields and every block's columns: a block's column named as a cell field
    (train-ddp's world size) would overwrite it with None in every other cell's row."""
    from wattgap.blocks import COLUMNS
    from wattgap.cells import CELL_FIELDS, Cell
    from wattgap.results import CellResult

    assert not set(COLUMNS) & set(CELL_FIELDS)
    cell = Cell(
        model="conv6", workload="train-ddp", backend="torch-eager", device="cpu", precision="fp32", batch_size=2,
        world_size=2,
    )  # fmt: skip
    assert CellResult(cell=cell, status="ok").flat()["world_size"] == 2


@pytest.mark.parametrize("collector", ["on", "off"])
def test_a_big_run_reads_back_whole_with_the_collector_as_it_was(tmp_path: Path, collector: str) -> None:
    """A run of FREEZE_AT results or more is decoded with the cyclic collector off and frozen after
    (sqlite._decoding): it reads back equal to what was stored, its objects are in the permanent
    generation, and the collector is on or off after as it was before; a small run is not frozen."""
    source = result(np.linspace(1e-3, 2e-3, 50), resamples=50)
    results = [
        source.model_copy(update={"cell": source.cell.model_copy(update={"batch_size": n + 1})})
        for n in range(FREEZE_AT)
    ]
    with Store.open(tmp_path / "w.db") as store:
        for run_id, held in (("big", results), ("small", results[:3])):
            store.create_run(
                run_id, parse_config({"models": ["resnet18"]}), Environment(), [r.cell for r in held], {}, "t"
            )
            for stored in held:
                store.store_result(run_id, stored)
    gc.collect()
    gc.unfreeze()
    (gc.enable if collector == "on" else gc.disable)()
    try:
        with Store.open_readonly(tmp_path / "w.db") as store:
            small = store.load_run("small")
            assert gc.get_freeze_count() == 0 and gc.isenabled() == (collector == "on")
            big = store.load_run("big")
            assert gc.get_freeze_count() > FREEZE_AT and gc.isenabled() == (collector == "on")
        assert big.results == results and small.results == results[:3]
    finally:
        gc.unfreeze()
        gc.enable()
