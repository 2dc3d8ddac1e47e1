"""Results that finished but could not be written to the database (a full disk, a lock held throughout):
kept as JSON files elsewhere (the temporary folder, or WATTGAP_SPILL_DIR) until ``wattgap run --resume``
stores them, so that no finished measurement is lost with its database's disk."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from wattgap.results import CellResult


def _folder(run_id: str) -> Path:
    root = os.environ.get("WATTGAP_SPILL_DIR") or tempfile.gettempdir()
    return Path(root) / "wattgap-unstored" / run_id


def spill(run_id: str, result: CellResult) -> Path | None:
    """Write ``result`` beside the database's disk; its path, or None when that failed too."""
    folder = _folder(run_id)
    path = folder / f"{result.cell_id}.json"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(result.model_dump_json(), encoding="utf-8")
        temporary.replace(path)
    except OSError:
        return None
    return path


def rescued_database(run_id: str) -> Path | None:
    """A new path for a copy of a database whose file went away under ``run_id`` (None: none can be made)."""
    folder = _folder(run_id)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    for number in range(1000):
        path = folder / (f"wattgap-{number}.db" if number else "wattgap.db")
        if not path.exists():
            return path
    return None


def spilled(run_id: str) -> list[tuple[Path, CellResult]]:
    """The results of ``run_id`` waiting to be stored, with their files."""
    folder = _folder(run_id)
    if not folder.is_dir():
        return []
    return [(path, CellResult.model_validate_json(path.read_text("utf-8"))) for path in sorted(folder.glob("*.json"))]


def forget(path: Path) -> None:
    """A spilled result is stored: remove its file (and the run's folder once empty)."""
    path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        path.parent.rmdir()
