"""What a node says about itself, asked in a process of its own like a cell's (runner/isolate.node_facts):
its devices (``Hardware``) and fingerprint, its idle power, or its CPU's roofline for the thread counts
the plan runs.
Taken where the cells run, not in the sweep's process: the sweep never imports PyTorch for them, never
initialises CUDA, and an executor running cells elsewhere asks the same question there."""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wattgap.measure.energy.settings import EnergySettings

MACHINE = "machine"  # the devices and fingerprint
IDLE = "idle"  # the idle power of the domains of ``devices``, as the sweep's ``energy`` settings measure it
ROOFLINE = "roofline"  # the CPU's roofline at each of ``threads``


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The reply to ``request``: ``{"kind": MACHINE}``, ``{"kind": IDLE, "devices": [...], "energy":
    {...}}`` or ``{"kind": ROOFLINE, "threads": [...]}``."""
    if request["kind"] == MACHINE:
        from wattgap.devices import detect
        from wattgap.runner.fingerprint import fingerprint

        hardware = detect()
        return {"hardware": asdict(hardware), "environment": fingerprint(hardware).model_dump(mode="json")}
    if request["kind"] == IDLE:
        from wattgap.measure.energy.settings import EnergySettings

        return {"idle_power": idle_power(request["devices"], EnergySettings.model_validate(request["energy"]))}
    from wattgap.measure.roofline import cpu_roofline

    try:
        return {"cpu_roofline": {str(threads): cpu_roofline(threads) for threads in request["threads"]}}
    except Exception as error:  # the what-if goes without it; the run does not
        return {"cpu_roofline_error": f"{type(error).__name__}: {error}"}


def idle_power(devices: list[str], settings: EnergySettings) -> dict[str, Any]:
    """The idle power of the domains of ``devices`` measured in this process, as a machine keeps it."""
    from wattgap.measure.energy import measure_idle

    return {domain: power.model_dump() for domain, power in measure_idle(devices, settings).items()}
