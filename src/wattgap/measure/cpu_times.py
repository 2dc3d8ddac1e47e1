"""The whole machine's CPU time from the kernel's counters, for the CPU energy model and the noise audit."""

from __future__ import annotations


def machine_cpu_s() -> tuple[float, float, float]:
    """Busy, total and stolen CPU seconds of the machine since boot. Idle, I/O wait and steal (time a VM's
    host gave to others) are not busy."""
    import psutil

    times = psutil.cpu_times()
    steal = getattr(times, "steal", 0.0)
    total = sum(times)
    return total - times.idle - getattr(times, "iowait", 0.0) - steal, total, steal
