"""A lock on a run while a process executes it, so that a second process (``wattgap run --resume``) cannot
measure the same cells at the same time. An OS file lock (flock) in a hidden folder beside the database:
the kernel releases it when its holder dies, however it dies, so a lock left by a killed process is never
mistaken for a live one."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from wattgap.errors import StoreError
from wattgap.fs import open_own_file, own_folder


def _folder(db: Path) -> Path:
    return db.parent / f".{db.name}.locks"


@contextlib.contextmanager
def executing(db: str | Path, run_id: str, then: str = "resume it once that process has stopped") -> Iterator[None]:
    """Hold the lock of ``run_id`` in ``db`` for the block (a resume, a deletion); a StoreError naming the
    holder if another process holds it, and ``then``, what to do about it."""
    folder = _folder(Path(db))
    own_folder(folder, "the lock folder")
    path = folder / f"{run_id}.lock"
    while True:
        handle = open_own_file(path, os.O_RDWR | os.O_CREAT, "the lock file")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(handle, 200).decode("utf-8", "replace").strip() or "another process"
            os.close(handle)
            raise StoreError(f"run {run_id} is being executed by {holder}; {then}") from None
        try:
            if os.fstat(handle).st_ino == os.stat(path).st_ino:
                break  # the lock is on the file the path names (not one a finishing holder just removed)
        except FileNotFoundError:
            pass
        os.close(handle)
    os.ftruncate(handle, 0)
    os.write(handle, f"wattgap process {os.getpid()} on {socket.gethostname()}".encode())
    try:
        yield
    finally:
        Path(path).unlink(missing_ok=True)
        os.close(handle)
        with contextlib.suppress(OSError):
            folder.rmdir()  # only when no other run's lock is in it
