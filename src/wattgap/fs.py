"""What is at a path, said in words, and the folders and files wattgap makes for itself: made without
following a link it did not create, so that a link planted where wattgap writes cannot redirect a write
onto another file. Below every other layer: the store, the report and the datasets use it."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path

from wattgap.errors import WattgapError

KINDS = {
    stat.S_IFLNK: "a symbolic link",
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
    stat.S_IFREG: "a regular file",
}


def kind_of(status: os.stat_result) -> str:
    """What a status describes, in words: "a FIFO", "a symbolic link", ..."""
    return KINDS.get(stat.S_IFMT(status.st_mode), "not a regular file")


def own_folder(path: Path, what: str) -> None:
    """Make ``path`` a folder of wattgap's (created when missing), or raise: a link there, anything but a
    folder, or a folder that another user owns is refused (``what`` names its purpose in the message)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o755)
    status = path.lstat()
    if not stat.S_ISDIR(status.st_mode):
        raise WattgapError(f"{what} {str(path)!r} is {kind_of(status)}, not a folder; remove it and try again")
    if status.st_uid != os.geteuid():
        raise WattgapError(
            f"{what} {str(path)!r} belongs to user id {status.st_uid}, not to this user ({os.geteuid()}); "
            "remove it and try again"
        )


def open_own_file(path: Path, flags: int, what: str) -> int:
    """A descriptor of the regular file at ``path`` (created with ``flags`` & O_CREAT when missing),
    opened without following a link and without blocking on a FIFO; anything else there is refused."""
    try:
        handle = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as error:
        if os.path.islink(path):
            raise WattgapError(
                f"{what} {str(path)!r} is a symbolic link; wattgap writes no file through a link"
            ) from None
        raise WattgapError(f"{what} {str(path)!r}: {error.strerror}") from None
    status = os.fstat(handle)
    if not stat.S_ISREG(status.st_mode):
        os.close(handle)
        raise WattgapError(f"{what} {str(path)!r} is {kind_of(status)}, not a regular file")
    os.set_blocking(handle, True)
    return handle


CELL_SCRATCH = "WATTGAP_CELL_SCRATCH"  # in a cell's process: the folder its runner removes when the cell ends


def scratch_folder(prefix: str) -> Path:
    """A new folder for a cell's intermediate files (an exported graph, a quantized copy): inside the folder
    the cell's runner made for it and removes when the cell has ended, however it ended (a forked cell
    leaves with ``os._exit``, which runs no exit handler, and a killed one runs nothing); outside a cell, a
    temporary folder removed when the process exits."""
    parent = os.environ.get(CELL_SCRATCH)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent or None))
    if not parent:
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder
