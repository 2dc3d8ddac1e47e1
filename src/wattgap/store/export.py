"""Export a run as CSV (one flat row per cell, no raw samples) or JSON (everything, raw samples and the
environment included). Both are written as the results are read, one at a time, so that memory stays
flat however many cells the run holds; a file is written whole or not at all; no control character is
written raw."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from wattgap.errors import StoreError
from wattgap.results import CellResult, Run
from wattgap.store.paths import existing_regular
from wattgap.text import visible

Results = Callable[[], Iterable[CellResult]]  # the run's results, read again at each call, in cell order

_EMPTY = '"results": []\n}'  # how json.dumps with indent=2 ends a run without results (its last field)


def chunks(run: Run, results: Results, fmt: str) -> Iterator[str]:
    """The export of ``run`` (its fields; its results from ``results``), piece by piece. JSON: the text
    ``json.dumps(run.model_dump(mode="json"), indent=2, ensure_ascii=True)`` gives for the run with those
    results (ASCII only: every control or format character is a \\u escape, by JSON's own rules); CSV: a
    header of every column any result has, in the order first met, then a row per result. The results are
    read twice, the first time whole before anything is given out: a result that cannot be read fails the
    export before a byte of it is written (standard output cannot be taken back)."""
    if fmt == "json":
        for _ in results():
            pass
        head = json.dumps(run.model_copy(update={"results": []}).model_dump(mode="json"), indent=2, ensure_ascii=True)
        yield head[: -len(_EMPTY)]
        first = True
        for result in results():
            text = json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=True)
            yield ('"results": [' if first else ",") + "\n    " + text.replace("\n", "\n    ")
            first = False
        yield _EMPTY if first else "\n  ]\n}"
        return
    columns = list(dict.fromkeys(key for result in results() for key in _row(run, result)))
    if not columns:
        return
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    for result in results():
        writer.writerow(_row(run, result))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _row(run: Run, result: CellResult) -> dict[str, object]:
    row = {"run_id": run.run_id, **result.flat()}
    return {key: visible(v) if isinstance(v, str) else v for key, v in row.items()}


def write_atomically(text: str | Iterable[str], path: str | Path, force: bool = False) -> None:
    """Write ``text`` (or its pieces) to ``path`` whole or not at all (a temporary file beside it, then a
    rename). Only a
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
            file.writelines([text] if isinstance(text, str) else text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
