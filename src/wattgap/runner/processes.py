"""Process hygiene for the sweep and its cells (Linux; no-ops elsewhere): a cell's process dies with the
sweep, and orphans of a cell's processes come back to the sweep to be ended with the cell. Light: the CLI
calls it before anything heavy is imported."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from typing import Any

MEMORY_LOOK_S = 0.1  # how often a cell's (or the model probe's) host memory is read when a cap is set


def die_with_parent(parent: int | None = None) -> Callable[[], None] | None:
    """What a cell's process calls to be killed by the kernel when ``parent`` (default: this process)
    dies (Linux): between fork and exec, from before its interpreter starts (set later, a SIGKILL of the
    sweep in the first second or two left the worker alive); or first thing in a process forked from the
    fork server, whose death then ends it. libc is loaded here, so that the call is the only work left."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None
    parent = os.getpid() if parent is None else parent

    def arm() -> None:
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the sweep died before the call: nobody would send the signal
            os._exit(1)

    return arm


def become_subreaper() -> None:
    """Make this process (the sweep) adopt its descendants' orphans (Linux): a process a cell started
    that outlives the cell, even in a session of its own, is then found among our descendants and ended
    with the cell instead of living on under PID 1."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(36, 1)  # PR_SET_CHILD_SUBREAPER


def descendants() -> set[int]:
    import psutil

    return {child.pid for child in psutil.Process().children(recursive=True)}


def end_new_descendants(before: set[int]) -> None:
    """Kill, and reap, what the finished cell left behind: this process's descendants that were not there
    before the cell started (other children of a program calling wattgap are left alone)."""
    import psutil

    leftovers = [child for child in psutil.Process().children(recursive=True) if child.pid not in before]
    for process in leftovers:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(leftovers, timeout=5)


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and its descendants (0 once it is gone). Pages shared between them
    count once per process: an upper bound, which is what a memory cap needs."""
    import psutil

    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    held = 0
    for process in tree:
        with contextlib.suppress(psutil.Error):
            held += process.memory_info().rss
    return held


TAIL_BYTES = 64 * 1024  # of a process's output, the most that is read back to say why it ended


def last_lines(file: Any, lines: int = 3) -> list[str]:
    """The last ``lines`` non-blank lines of an output file, read from at most its last TAIL_BYTES: a cell
    that wrote a gigabyte costs the sweep 64 KiB."""
    end = file.seek(0, os.SEEK_END)
    file.seek(max(0, end - TAIL_BYTES))
    text = file.read(TAIL_BYTES).decode("utf-8", "replace")
    return [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
