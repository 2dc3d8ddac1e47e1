"""Export a run as CSV (one flat row per cell, no raw samples) or JSON (everything, raw samples and the
environment included). Files are written whole or not at all."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from wattgap.errors import StoreError
from wattgap.results import Run

FORMATS = ("csv", "json")


def render(run: Run, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(run.model_dump(mode="json"), indent=2)
    rows = [{"run_id": run.run_id, **result.flat()} for result in run.results]
    buffer = io.StringIO()
    if rows:
        columns = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def write_atomically(text: str, path: str | Path) -> None:
    target = Path(path)
    if not target.parent.is_dir():
        raise StoreError(f"--output: folder {str(target.parent)!r} does not exist")
    if target.is_dir():
        raise StoreError(f"--output: {str(target)!r} is a folder; give a file path")
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
