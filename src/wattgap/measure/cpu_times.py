"""CPU time from the kernel's counters, for the CPU energy model and the noise audit: the whole machine's,
and this process tree's."""

from __future__ import annotations

import contextlib


def machine_cpu_s() -> tuple[float, float, float]:
    """Busy, total and stolen CPU seconds of the machine since boot. Idle, I/O wait and steal (time a VM's
    host gave to others) are not busy."""
    import psutil

    times = psutil.cpu_times()
    steal = getattr(times, "steal", 0.0)
    total = sum(times)
    return total - times.idle - getattr(times, "iowait", 0.0) - steal, total, steal


def tree_cpu_s() -> float:
    """CPU seconds of this process and its descendants (live ones, and reaped ones)."""
    import psutil

    process = psutil.Process()
    spent = sum(process.cpu_times()[:4])
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            spent += sum(child.cpu_times()[:2])
    return spent
