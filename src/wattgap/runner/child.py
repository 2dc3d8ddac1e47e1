"""A process of its own for one job, started as the sweep's cells are: forked from wattgap's fork server
(runner/forkserver.py), which imported PyTorch once, or a fresh interpreter running runner/worker.py. A cell
(runner/isolate.py), a question about the node (runner/machine.py) or a model's probe (runner/probe.py)
each runs in one, and the sweep sees it as a ``Child``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from abc import ABC, abstractmethod
from typing import Any

from wattgap.runner.forkserver import fork_server
from wattgap.runner.processes import die_with_parent

FORKED = "forked from wattgap's fork server, which had imported PyTorch (runner/forkserver.py)"
FORK_SERVER_USABLE = sys.platform.startswith("linux")


def start(job: dict[str, Any], fork: bool, log: Any) -> Child:
    """A process of its own running ``job`` (a cell, or a question for runner/worker.run_job): forked from
    the fork server, which takes from the sweep's process its environment, working directory and
    ``sys.path`` (its own are older), or a fresh interpreter. Its output goes to the file ``log``."""
    if fork:
        forked = {"process": FORKED, "environment": dict(os.environ), "cwd": os.getcwd(), "sys_path": list(sys.path)}
        return _Forked(job | forked, log)
    return _Exec(json.dumps(job), log)


class Child(ABC):
    """A job's process as the sweep sees it: its pid, the pipe its events come on, its exit status."""

    pid: int
    stream: int  # the read end of the events pipe

    @abstractmethod
    def wait(self, timeout: float | None) -> int | None:
        """The exit status (minus the signal's number when killed by one), or None while it runs."""

    def kill(self) -> None:
        """Kill the cell's whole process group (it may have spawned helpers)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    @abstractmethod
    def close(self) -> None: ...


class _Exec(Child):
    """A fresh interpreter (``python -m wattgap.runner.worker``): the job on its stdin."""

    def __init__(self, job: str, stderr: Any) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wattgap.runner.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(job.encode())
        self.process.stdin.close()
        self.pid, self.stream = self.process.pid, self.process.stdout.fileno()

    def wait(self, timeout: float | None) -> int | None:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def close(self) -> None:
        assert self.process.stdout is not None
        self.process.stdout.close()


class _Forked(Child):
    """A process forked from wattgap's fork server (runner/forkserver.py), which imported PyTorch once."""

    def __init__(self, job: dict[str, Any], log: Any) -> None:
        self.server = fork_server()
        self.stream, write_end = os.pipe()
        try:
            self.pid = self.server.fork(job, write_end, log.fileno())
        finally:
            os.close(write_end)  # the child holds the write end: the pipe ends when it does

    def wait(self, timeout: float | None) -> int | None:
        return self.server.wait(self.pid, timeout)

    def kill(self) -> None:
        super().kill()  # its group, once it made its own session
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)  # and itself, should that not have happened yet

    def close(self) -> None:
        os.close(self.stream)
