"""What a node says about itself, asked in a process of its own like a cell's (runner/isolate.node_facts):
its devices (``Hardware``) and fingerprint, or its CPU's roofline for the thread counts the plan runs.
Taken where the cells run, not in the sweep's process: the sweep never imports PyTorch for them, never
initialises CUDA, and an executor running cells elsewhere asks the same question there."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

MACHINE = "machine"  # the devices and fingerprint
ROOFLINE = "roofline"  # the CPU's roofline at each of ``threads``


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The reply to ``request`` (``{"kind": MACHINE}`` or ``{"kind": ROOFLINE, "threads": [...]}``)."""
    if request["kind"] == MACHINE:
        from wattgap.devices import detect
        from wattgap.runner.fingerprint import fingerprint

        hardware = detect()
        return {"hardware": asdict(hardware), "environment": fingerprint(hardware)}
    from wattgap.measure.roofline import cpu_roofline

    try:
        return {"cpu_roofline": {str(threads): cpu_roofline(threads) for threads in request["threads"]}}
    except Exception as error:  # the what-if goes without it; the run does not
        return {"cpu_roofline_error": f"{type(error).__name__}: {error}"}
