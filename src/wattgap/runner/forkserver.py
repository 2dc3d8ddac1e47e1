"""wattgap's fork server (Linux): a process that imports what runner/preload.py names once and then forks a
fresh process per cell, instead of each cell starting an interpreter and importing PyTorch again.

Its own, not multiprocessing's: a multiprocessing child re-runs the parent's main script when it has no
``if __name__ == "__main__"`` guard, and a user's script that calls ``wattgap.run`` at its top level
would then run again inside every cell. Here nothing of the parent is re-imported.

The sweep (``ForkServer``) and the server (``serve``, run as ``python -m wattgap.runner.forkserver FD``)
share a Unix socket. A request is one JSON line, the job, sent with two descriptors (SCM_RIGHTS): the
write end of the cell's events pipe and its log file. The server forks; the child (``_cell``) takes its
own session, dies with the server, applies the sweep's current environment, working directory and
``sys.path`` from the job, sends stdout and stderr to the log, runs the job, and leaves with ``os._exit``.
The server answers each request with the child's pid, reaps its children (woken by SIGCHLD, it does no
work while cells run) and reports each exit status; it ends when the socket closes."""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

_MAX_JOB_BYTES = 64 * 2**20


def _send(connection: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode() + b"\n"
    if fds:
        socket.send_fds(connection, [data[:1]], fds)
        data = data[1:]
    connection.sendall(data)


class ForkServer:
    """The sweep's side: start the server, ask it for a cell's process, learn how that process ended."""

    def __init__(self) -> None:
        from wattgap.runner.processes import die_with_parent

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.log = tempfile.TemporaryFile()  # noqa: SIM115  (open as long as the server: its own output)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "wattgap.runner.forkserver", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
            preexec_fn=die_with_parent(),
        )
        theirs.close()
        self.socket = ours
        self.buffer = b""
        self.exits: dict[int, int] = {}
        self.loaded = False

    def ready(self) -> None:
        """Wait until the server has imported what it preloads (it says so once)."""
        while not self.loaded:
            if self._next(None) is None:
                raise self._ended()

    def _ended(self) -> RuntimeError:
        from wattgap.runner.processes import last_lines

        lines = last_lines(self.log)
        return RuntimeError(f"wattgap's fork server ended: {' | '.join(lines) or 'no output'}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def fork(self, job: dict[str, Any], events_fd: int, log_fd: int) -> int:
        """A new process running ``job``; its pid."""
        _send(self.socket, job, [events_fd, log_fd])
        while True:
            message = self._next(None)
            if message is None:
                raise self._ended()
            if "pid" in message:
                return int(message["pid"])

    def wait(self, pid: int, timeout: float | None) -> int | None:
        """``pid``'s exit status (minus the signal's number when a signal ended it), or None when it is
        still running after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while pid not in self.exits:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            if self._next(left) is None and not self.alive():
                raise self._ended()
        return self.exits.pop(pid)

    def _next(self, timeout: float | None) -> dict[str, Any] | None:
        """The next message (exit reports are filed in ``exits`` as they pass), or None at the timeout or
        the socket's end."""
        while b"\n" not in self.buffer:
            self.socket.settimeout(timeout)
            try:
                chunk = self.socket.recv(65536)
            except TimeoutError:
                return None
            if not chunk:
                return None
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        message: dict[str, Any] = json.loads(line)
        self.loaded = self.loaded or "ready" in message
        if "exited" in message:
            self.exits[int(message["exited"])] = int(message["status"])
        return message


_server: ForkServer | None = None


def fork_server() -> ForkServer:
    """This process's fork server, started when there is none (or it died). It ends with this process."""
    global _server
    if _server is None or not _server.alive():
        _server = ForkServer()
    return _server


def _status(raw: int) -> int:
    return -os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)


def _cell(job_text: str, events_fd: int, log_fd: int, started: float) -> None:
    """In the forked child: become the cell's process, run the job, leave."""
    os.setsid()
    for number in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM):
        signal.signal(number, signal.SIG_DFL)
    signal.set_wakeup_fd(-1)
    from wattgap.runner.processes import die_with_parent

    arm = die_with_parent(os.getppid())
    if arm is not None:
        arm()
    job = json.loads(job_text)
    os.environ.clear()
    os.environ.update(job["environment"])
    os.chdir(job["cwd"])
    sys.path[:] = job["sys_path"]
    sys.stdout.flush()
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    from wattgap.runner.worker import run_job

    code = 1
    try:
        with os.fdopen(events_fd, "w", buffering=1) as events:
            code = run_job(job, events, started)
    finally:
        os._exit(code)


def serve(control_fd: int) -> None:
    """The server's loop (``python -m wattgap.runner.forkserver FD``). The sweep going away (the socket
    closed or reset) ends it quietly: that is how it is told to stop."""
    with contextlib.suppress(OSError):
        _serve(control_fd)


def _serve(control_fd: int) -> None:
    import wattgap.runner.preload  # noqa: F401  (what the cells are forked with)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the sweep's to handle; the server ends with it
    control = socket.socket(fileno=control_fd)
    _send(control, {"ready": True})
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    buffer, received = b"", []  # descriptors come with a request's first byte, its line may end later
    with selectors.DefaultSelector() as selector:
        selector.register(control, selectors.EVENT_READ)
        selector.register(wake_r, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select():
                if key.fileobj == wake_r:
                    os.read(wake_r, 4096)
                    continue
                data, fds, _, _ = socket.recv_fds(control, 65536, 2)
                if not data:
                    return
                buffer += data
                received += fds
                while b"\n" in buffer and len(received) >= 2:
                    line, buffer = buffer.split(b"\n", 1)
                    events_fd, log_fd, *received = received
                    _start(control, line.decode(), events_fd, log_fd, (selector, wake_r, wake_w))
                if len(buffer) > _MAX_JOB_BYTES:
                    return
            while True:  # reap every child that ended, and say so
                with contextlib.suppress(ChildProcessError):
                    pid, raw = os.waitpid(-1, os.WNOHANG)
                    if pid:
                        _send(control, {"exited": pid, "status": _status(raw)})
                        continue
                break


def _start(control: socket.socket, job: str, events_fd: int, log_fd: int, own: tuple[Any, int, int]) -> None:
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        selector, wake_r, wake_w = own
        selector.close()
        for fd in (control.fileno(), wake_r, wake_w):
            os.close(fd)
        _cell(job, events_fd, log_fd, started)
    os.close(events_fd)
    os.close(log_fd)
    _send(control, {"pid": pid})


if __name__ == "__main__":
    serve(int(sys.argv[1]))
