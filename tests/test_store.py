from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from wattgap.errors import StoreError
from wattgap.store.sqlite import SCHEMA_VERSION, Store


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
    from wattgap.plan import Cell
    from wattgap.results import CellResult

    cell = Cell(model="conv6", workload="infer", backend="torch-eager", device="cpu", precision="fp32", batch_size=1)
    written = CellResult(cell=cell, status="ok", throughput_sps=10.0).model_dump(mode="json")
    for field in ("energy", "accuracy_top1", "training"):
        del written[field]
    written["schema_version"] = 1
    old = CellResult.model_validate(written)
    assert old.schema_version == 1 and old.energy is None and old.training is None
    assert old.flat()["energy_j"] is None and old.flat()["energy_label"] is None
