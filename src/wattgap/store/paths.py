"""Paths wattgap writes or reads as files: a regular file or a new path, nothing else."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from wattgap.errors import StoreError
from wattgap.fs import kind_of


def existing_regular(path: Path, flag: str, follow_links: bool) -> os.stat_result | None:
    """The status of the regular file at ``path``, or None when nothing is there; a StoreError naming
    what is there otherwise (a FIFO, a device, a folder; a symbolic link unless ``follow_links``)."""
    try:
        status = path.stat() if follow_links else path.lstat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(status.st_mode):
        raise StoreError(f"{flag}: {str(path)!r} is {kind_of(status)}; give the path of a regular file or a new one")
    return status
