"""The cell subprocess: ``python -m wattgap.runner.worker`` reads one job (JSON) on stdin and writes
events as JSON lines on its original stdout; anything else printing to stdout lands on stderr."""

from __future__ import annotations

import json
import os
import re
import sys
import time
import traceback
from datetime import datetime, timezone
from typing import Any, TextIO

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _classify(error: BaseException) -> tuple[str, str]:
    """Status and one-line reason for an exception raised by a cell (terminal colour codes removed)."""
    message = ANSI.sub("", str(error)).strip()
    text = message.splitlines()[0] if message else ""
    kind = type(error).__name__
    lowered = str(error).lower()
    if kind == "OutOfMemoryError" or "out of memory" in lowered or isinstance(error, MemoryError):
        return "oom", f"{kind}: {text[:500]}"
    if "can't allocate memory" in lowered:
        return "oom", f"{kind}: {text[:500]}"
    return "failed", f"{kind}: {text[:500]}" if text else kind


def run_job(job: dict[str, Any], protocol_out: TextIO, started: float) -> int:
    """Run one job, writing its events as JSON lines to ``protocol_out``; the process's exit status.
    ``started``: when the process began (perf_counter), for the startup phase."""

    def emit(event: dict[str, Any]) -> None:
        protocol_out.write(json.dumps(event) + "\n")
        protocol_out.flush()

    if "scratch" in job:  # the folder the runner removes when this process has ended (fs.scratch_folder)
        from wattgap.fs import CELL_SCRATCH

        os.environ[CELL_SCRATCH] = job["scratch"]
    if job.get("kind") == "probe":  # what a user's model is, before the run (runner/probe.py)
        from wattgap.runner.probe import answer as describe

        describe(job)
        return 0
    if "kind" in job:  # a question about this node, not a cell (runner/machine.py)
        from wattgap.runner.machine import answer

        emit({"event": "facts", "facts": answer(job)})
        return 0
    threads = job["cell"].get("threads")
    if threads is not None:
        # Must happen before any parallel work: interop threads cannot change afterwards.
        import torch

        torch.set_num_interop_threads(1)
    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.measure.flops import Work
    from wattgap.runner.cell import run_cell

    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    startup_s = time.perf_counter() - started
    try:  # the cell is read here: on another node, its user model may not be on the Python path
        cell = Cell.model_validate(job["cell"])
        config = SweepConfig.model_validate(job["config"])
        work = Work.model_validate(job["work"]) if job.get("work") else None
        result = run_cell(cell, config, emit, work, job.get("idle_power"))
    except BaseException as error:  # every failure of the cell is reported, then the process ends
        status, reason = _classify(error)
        emit({"event": "error", "status": status, "reason": reason, "traceback": traceback.format_exc()})
        return 1
    result.started_at = started_at
    result.finished_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result.phases.startup_s = startup_s
    result.settings["process"] = job.get("process", "a fresh interpreter")
    import torch

    result.settings["interop_threads"] = torch.get_num_interop_threads()
    emit({"event": "result", "result": result.model_dump(mode="json")})
    return 0


def main() -> int:
    """A fresh interpreter's cell: the job on stdin, events on the original stdout."""
    started = time.perf_counter()
    protocol_out: TextIO = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints from models or libraries go to stderr, not into the protocol
    return run_job(json.loads(sys.stdin.read()), protocol_out, started)


if __name__ == "__main__":
    sys.exit(main())
