"""wattgap: how fast, how hungry and how accurate is this deep-learning workload on this hardware?

The public API. Importing wattgap imports no deep-learning framework."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wattgap.version import __version__

if TYPE_CHECKING:
    from wattgap.api import load_run, report, resume, run
    from wattgap.config import SweepConfig
    from wattgap.results import CellResult, Run

__all__ = ["CellResult", "Run", "SweepConfig", "__version__", "load_run", "report", "resume", "run"]

_LOCATIONS = {
    "run": "wattgap.api",
    "resume": "wattgap.api",
    "load_run": "wattgap.api",
    "report": "wattgap.api",
    "SweepConfig": "wattgap.config",
    "CellResult": "wattgap.results",
    "Run": "wattgap.results",
}


def __getattr__(name: str) -> Any:
    if name in _LOCATIONS:
        import importlib

        return getattr(importlib.import_module(_LOCATIONS[name]), name)
    raise AttributeError(f"module 'wattgap' has no attribute {name!r}")
