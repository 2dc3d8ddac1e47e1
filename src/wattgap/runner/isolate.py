"""Run one cell in its own subprocess with a timeout. Whatever happens to it (an exception, a crash, a
kill, a hang) comes back as a CellResult with a status and a reason; nothing is raised to the sweep."""

from __future__ import annotations

import json
import os
import selectors
import signal
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from wattgap.cells import Cell
from wattgap.config import SweepConfig
from wattgap.measure.flops import Work
from wattgap.results import CellResult, Memory, Phases
from wattgap.runner.child import FORK_SERVER_USABLE, start
from wattgap.runner.executors.base import HOME, CellJob
from wattgap.runner.forkserver import fork_server
from wattgap.runner.processes import (
    MEMORY_LOOK_S,
    descendants,
    end_new_descendants,
    last_lines,
    tree_rss_bytes,
)
from wattgap.text import number

OnEvent = Callable[[dict[str, Any]], None]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _stderr_tail(file: Any) -> str:
    return " | ".join(last_lines(file))


def _signal_reason(returncode: int) -> str:
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    if number == signal.SIGKILL:
        return f"killed by {name} (often the kernel's out-of-memory killer)"
    return f"killed by {name}"


def run_isolated(job: CellJob, on_event: OnEvent | None = None) -> CellResult:
    """Run ``job`` in a fresh process; its result, whatever happened, carries the job's repeat and
    sequence."""
    result = _run(job.cell, job.config, on_event, job.work, job.nodes[HOME].idle_power)
    result.repeat, result.sequence = job.repeat, job.sequence
    return result


def _run(
    cell: Cell,
    config: SweepConfig,
    on_event: OnEvent | None,
    work: Work | None,
    idle_power: dict[str, Any],
) -> CellResult:
    fork = forks(config)
    job: dict[str, Any] = {
        "cell": cell.model_dump(),
        "config": config.model_dump(mode="json"),
        "work": work.model_dump() if work else None,
        "idle_power": idle_power,
    }
    if fork:
        fork_server()  # started before the snapshot of descendants below: it outlives every cell
    started_at = _now()
    before = descendants()
    begin = time.perf_counter()
    deadline = time.monotonic() + config.cell_timeout_s
    # what the cell writes for itself goes in a folder removed here, when it has ended however it ended
    scratch = tempfile.TemporaryDirectory(prefix="wattgap-cell-", ignore_cleanup_errors=True)
    with scratch, tempfile.TemporaryFile() as stderr:
        process = start(job | {"scratch": scratch.name}, fork, stderr)
        final: dict[str, Any] | None = None
        arrived = 0.0  # when the final event came
        timed_out = False
        cap = config.max_host_memory_bytes
        over = 0  # the cell's host memory when it went over the cap
        next_look = 0.0
        with selectors.DefaultSelector() as selector:
            selector.register(process.stream, selectors.EVENT_READ)
            buffer = b""
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                if cap is not None and time.monotonic() >= next_look:
                    next_look = time.monotonic() + MEMORY_LOOK_S
                    held = tree_rss_bytes(process.pid)
                    if held > cap:
                        over = held
                        break
                if not selector.select(timeout=min(remaining, MEMORY_LOOK_S if cap is not None else 1.0)):
                    continue
                chunk = os.read(process.stream, 65536)
                if not chunk:
                    break
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                if len(buffer) > MAX_EVENT_BYTES:  # no event is this long: a flood, dropped as it comes
                    buffer = b""
                for line in lines:
                    event = _parse(line)
                    if event is None:
                        continue
                    if event.get("event") in ("result", "error"):
                        final = event
                        arrived = time.perf_counter()
                    elif on_event is not None:
                        on_event(event)
                if final is not None:
                    break  # taken when it arrives: a child of the cell holding the pipe cannot hold the sweep
        if timed_out or over:
            process.kill()
        returncode = process.wait(EXIT_GRACE_S)
        if returncode is None:
            process.kill()
            returncode = process.wait(None)
        assert returncode is not None  # a blocking wait returns its status
        process.close()
        ended = time.perf_counter()
        end_new_descendants(before)
        total_s = ended - begin
        if final is not None and final["event"] == "result":
            result = CellResult.model_validate(final["result"])
            result.phases.close(total_s, exit_s=ended - arrived)
            peak = result.memory.host_peak_rss_bytes
            if cap is not None and peak is not None and peak > cap and result.status == "ok":
                result.status = "oom"
                result.reason = f"its peak host memory, {number(peak / 2**30)} GiB, is over {_cap_text(config)}"
            return result
        if over:
            status, reason = "oom", f"killed at {number(over / 2**30)} GiB of host memory, over {_cap_text(config)}"
        elif timed_out:
            status, reason = "timeout", f"no result within cell_timeout_s={config.cell_timeout_s:g}"
        elif final is not None:
            status, reason = final["status"], final["reason"]
        elif returncode < 0:
            status, reason = "crashed", _signal_reason(returncode)
        else:
            status, reason = "crashed", f"exited with status {returncode} without a result"
        tail = _stderr_tail(stderr) if status in ("crashed", "timeout") else ""
        if tail:
            reason += f"; stderr: {tail[-400:]}"
    return CellResult(
        cell=cell,
        status=status,
        reason=reason,
        started_at=started_at,
        finished_at=_now(),
        phases=Phases(total_s=total_s),
        memory=Memory(host_peak_rss_bytes=over or None),
    )


NODE_TIMEOUT_S = 300.0  # a node describing itself takes seconds (the roofline of several thread counts, more)


def node_facts(request: dict[str, Any], config: SweepConfig) -> dict[str, Any]:
    """What a process started as the cells of ``config`` are (forked from the fork server, or a fresh
    interpreter) answers to ``request`` about this machine (runner/machine.py). Its failure is an error:
    a run cannot say where it ran without it."""
    deadline = time.monotonic() + NODE_TIMEOUT_S
    with tempfile.TemporaryFile() as stderr:
        process = start(request, forks(config), stderr)
        received = b""
        with selectors.DefaultSelector() as selector:
            selector.register(process.stream, selectors.EVENT_READ)
            while time.monotonic() < deadline:
                if selector.select(timeout=1.0):
                    chunk = os.read(process.stream, 65536)
                    if not chunk:
                        break
                    received += chunk
        if process.wait(EXIT_GRACE_S) is None:
            process.kill()
            process.wait(None)
        process.close()
        for line in received.split(b"\n"):
            event = _parse(line)
            if event is not None and event.get("event") == "facts":
                return dict(event["facts"])
        raise RuntimeError(f"this machine's {request['kind']} could not be read: {_stderr_tail(stderr) or 'no output'}")


def _cap_text(config: SweepConfig) -> str:
    return f"max_host_memory_gb={config.max_host_memory_gb:g} GiB"


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        event = json.loads(line)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


MAX_EVENT_BYTES = 256 * 2**20  # the longest event line read: a result with a million raw samples is ~25 MiB
EXIT_GRACE_S = 10.0  # a worker that sent its result and is still not gone after this is killed


def forks(config: SweepConfig) -> bool:
    """Whether the cells of ``config`` are forked from the fork server (else: a fresh interpreter each)."""
    return config.process_start == "forkserver" or (config.process_start == "auto" and FORK_SERVER_USABLE)
