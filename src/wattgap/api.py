"""The Python API. The CLI is a thin layer over these functions."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wattgap.config import SweepConfig, load_config, parse_config
from wattgap.errors import ConfigError
from wattgap.results import Run
from wattgap.runner.executor import ProgressSink, SilentProgress, execute
from wattgap.store.sqlite import Store

if TYPE_CHECKING:
    from wattgap.plan import Plan

DEFAULT_DB = "wattgap.db"
OnCreated = Callable[[str, "Plan | None"], None]  # (run id, its plan; None when resuming)


def _as_config(config: SweepConfig | dict[str, Any] | str | Path) -> SweepConfig:
    if isinstance(config, SweepConfig):
        return config
    if isinstance(config, dict):
        return parse_config(config)
    return load_config(config)


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def run(
    config: SweepConfig | dict[str, Any] | str | Path,
    db: str | Path = DEFAULT_DB,
    progress: ProgressSink | None = None,
    on_created: OnCreated | None = None,
) -> Run:
    """Plan and run a sweep; every result is committed to ``db`` as soon as its cell ends. ``config`` is a
    SweepConfig, a mapping of its fields, or the path of a YAML file. ``on_created(run_id, plan)`` is
    called once the run is stored, before the first cell starts."""
    from wattgap import __version__
    from wattgap.datasets import check
    from wattgap.devices import detect
    from wattgap.measure.energy import measure_idle
    from wattgap.plan import expand
    from wattgap.runner.fingerprint import fingerprint

    sweep = _as_config(config)
    check(sweep)
    with Store.open(db) as store:
        hardware = detect()
        plan = expand(sweep, hardware)
        environment = fingerprint(hardware)
        devices = list(dict.fromkeys(cell.device for cell in plan.runnable))
        idle = {domain: power.model_dump() for domain, power in measure_idle(devices, sweep.energy).items()}
        environment["idle_power"] = idle
        run_id = new_run_id()
        store.create_run(run_id, sweep, environment, list(plan.cells), plan.skipped, __version__)
        if on_created is not None:
            on_created(run_id, plan)
        execute(store, run_id, sweep, list(plan.runnable), progress or SilentProgress(), idle)
        return store.load_run(run_id)


def resume(
    db: str | Path, run_id: str, progress: ProgressSink | None = None, on_created: OnCreated | None = None
) -> Run:
    """Run the cells of ``run_id`` that have no stored result yet, on the machine that started it."""
    from wattgap.devices import detect
    from wattgap.runner.fingerprint import fingerprint, machine_key

    with Store.open_readonly(db) as reader:
        previous = reader.load_run(run_id)
    here = machine_key(fingerprint(detect()))
    there = machine_key(previous.environment)
    if here != there:
        raise ConfigError(f"--resume: run {previous.run_id} was started on {there}, this machine is {here}")
    with Store.open(db) as store:
        if on_created is not None:
            on_created(previous.run_id, None)
        idle = previous.environment.get("idle_power") or {}
        execute(store, previous.run_id, previous.config, previous.pending, progress or SilentProgress(), idle)
        return store.load_run(previous.run_id)


def load_run(db: str | Path, run_id: str) -> Run:
    """A stored run with all its results (``run_id`` may be a unique prefix or ``latest``)."""
    with Store.open_readonly(db) as store:
        return store.load_run(run_id)


def list_runs(db: str | Path) -> list[dict[str, Any]]:
    with Store.open_readonly(db) as store:
        return store.run_summaries()
