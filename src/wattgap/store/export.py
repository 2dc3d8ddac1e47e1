"""Export a run as CSV (one flat row per cell, no raw samples) or JSON (everything, raw samples and the
environment included). Files are written whole or not at all; no control character is written raw."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import tempfile
from pathlib import Path

from wattgap.errors import StoreError
from wattgap.results import Run
from wattgap.store.paths import existing_regular
from wattgap.text import visible


def render(run: Run, fmt: str) -> str:
    if fmt == "json":  # ASCII only: every control or format character is a \u escape, by JSON's own rules
        return json.dumps(run.model_dump(mode="json"), indent=2, ensure_ascii=True)
    rows = [{"run_id": run.run_id, **result.flat()} for result in run.results]
    rows = [{key: visible(v) if isinstance(v, str) else v for key, v in row.items()} for row in rows]
    buffer = io.StringIO()
    if rows:
        columns = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(buffer, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def write_atomically(text: str, path: str | Path, force: bool = False) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file beside it, then a rename). Only a
    new path, or with ``force`` an existing regular file (its permissions kept), is written: a symbolic
    link, a FIFO, a device or a folder is refused, never replaced by a regular file."""
    target = Path(path)
    if not target.parent.is_dir():
        raise StoreError(f"--output: folder {str(target.parent)!r} does not exist")
    existing = existing_regular(target, "--output", follow_links=False)  # a link itself is refused
    if existing is not None and not force:
        raise StoreError(f"--output: {str(target)!r} exists; add --force to replace it")
    umask = os.umask(0)
    os.umask(umask)
    mode = stat.S_IMODE(existing.st_mode) if existing is not None else 0o666 & ~umask
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
