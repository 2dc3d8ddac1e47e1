"""The Python API. The CLI is a thin layer over these functions: it parses flags, calls one of them and
renders what it returns. ``run`` and ``resume`` are the driver's (driver.py: it feeds an executor jobs,
stores each result as it arrives, keeps the FLOP cache and tells the progress display); the rest read
the store and hand results to the analyses and the renderers."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from wattgap.analysis.efficiency import Efficiency, EfficiencyParams
from wattgap.analysis.efficiency import efficiency as rank_cells
from wattgap.analysis.memory import MemoryCurve, memory_curves
from wattgap.analysis.projection import Projection, load_entries
from wattgap.analysis.projection import project as project_of
from wattgap.analysis.recommend import Constraints, Recommendation
from wattgap.analysis.recommend import recommend as recommend_of
from wattgap.analysis.speedup import SPREAD_MAX_AGE_S, Comparison, Spread, single_process, spread_of
from wattgap.analysis.speedup import compare as compare_runs
from wattgap.analysis.studies import StudyTable
from wattgap.analysis.studies import study as study_of
from wattgap.analysis.tradeoff import Tradeoff
from wattgap.analysis.tradeoff import tradeoff as tradeoff_of
from wattgap.analysis.whatif import WhatIf
from wattgap.analysis.whatif import whatif as whatif_of
from wattgap.config import (
    Protocol,
    SweepConfig,
    load_config_data,
    load_suite_data,
    parse_config,
    suite_names,
)
from wattgap.datasets import check
from wattgap.devices import detect
from wattgap.driver import DEFAULT_DB as DEFAULT_DB
from wattgap.driver import as_config, describe_user_models, frameworks_of
from wattgap.driver import finished as finished
from wattgap.driver import resume as resume
from wattgap.driver import run as run
from wattgap.errors import ConfigError, StoreError
from wattgap.machines import Machine
from wattgap.plan import Plan, expand
from wattgap.render.document import build as build_document
from wattgap.render.files import Written
from wattgap.render.files import check as check_report
from wattgap.render.files import write as write_report
from wattgap.results import Run
from wattgap.runner.executors import Executor
from wattgap.runner.fingerprint import fingerprint
from wattgap.store.locks import executing
from wattgap.store.sqlite import Store


def sweep_from_options(
    suite: str | None = None,
    config: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    max_time_s: float | None = None,
    idle_s: float | None = None,
    repeats: int | None = None,
    order: str | None = None,
    world_sizes: list[int] | None = None,
    scenarios: list[str] | None = None,
    find_max_qps: bool = False,
) -> SweepConfig:
    """A sweep from a shipped suite, a YAML file, or (with neither, but models among the overrides) the
    overrides alone, which replace the file's fields (backends and workloads picked by a flag keep the file's
    settings for them). ``max_time_s`` caps each cell's warmup and measured
    window outright, minimums included (fewer iterations then, flagged; ``protocol.hard_max_time``);
    ``idle_s`` sets the idle-power measurement; ``repeats`` and ``order`` replace the protocol's;
    ``world_sizes`` the train-ddp workload's; ``scenarios`` and ``find_max_qps`` the serve workload's."""
    overrides = {key: value for key, value in (overrides or {}).items() if value is not None}
    if suite is not None and config is not None:
        raise ConfigError("--suite and --config: give one of them, not both")
    if config is not None:
        data = load_config_data(config)
    elif suite is not None or "models" not in overrides:
        data = load_suite_data(suite or "quick")
    else:
        data = {"name": "cli"}
    for axis in ("backends", "workloads"):  # a flag picks components; the file's settings of those it keeps stay
        held, picked = data.get(axis), overrides.get(axis)
        if isinstance(held, dict) and isinstance(picked, list):
            overrides[axis] = {name: held.get(name) for name in picked}
    data.update(overrides)
    if world_sizes is not None:
        _set_setting(data, "--world-size", "train-ddp", {"world_sizes": world_sizes})
    if scenarios is not None:
        _set_setting(data, "--scenario", "serve", {"scenarios": scenarios})
    if find_max_qps:
        _set_setting(data, "--find-max-qps", "serve", {"find_max_qps": True})
    protocol = data.get("protocol", {})
    if isinstance(protocol, dict):  # anything else fails validation below
        given: dict[str, Any] = {k: v for k, v in (("repeats", repeats), ("order", order)) if v is not None}
        if max_time_s is not None:
            minimum = protocol.get("min_time_s", Protocol.model_fields["min_time_s"].default)
            lowered = {"min_time_s": max_time_s} if isinstance(minimum, int | float) and minimum > max_time_s else {}
            given.update(max_time_s=max_time_s, hard_max_time=True, **lowered)
        data["protocol"] = {**protocol, **given}
    energy = data.get("energy", {})
    if idle_s is not None and isinstance(energy, dict):
        data["energy"] = {**energy, "idle_s": idle_s}
    return parse_config(data, str(config) if config else "options")


def _set_setting(data: dict[str, Any], flag: str, workload: str, given: dict[str, Any]) -> None:
    """The settings ``given`` (a flag's) as the ``workload``'s in the sweep ``data``, which must run it."""
    workloads = data.get("workloads")
    held = workloads if isinstance(workloads, dict) else dict.fromkeys(workloads if isinstance(workloads, list) else [])
    if workload not in held:
        runs = ", ".join(str(name) for name in held) or "the default workloads"
        raise ConfigError(f"{flag}: a setting of the {workload} workload; this sweep runs {runs} (add it: --workload)")
    data["workloads"] = {**held, workload: {**(held[workload] or {}), **given}}


EXECUTORS = ("local", "ray")


def executor(name: str = "local", address: str | None = None) -> Executor | None:
    """The executor named on the command line: None for ``local`` (the driver's own, one cell at a time
    here), a RayExecutor for ``ray`` at ``address`` (default auto). Ray is imported when it connects."""
    if name not in EXECUTORS:
        raise ConfigError(f"--executor: got {name!r}; allowed: {', '.join(EXECUTORS)}")
    if name == "local":
        if address is not None:
            raise ConfigError(f"--address: got {address!r}; it names a Ray cluster, and needs --executor ray")
        return None
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigError("--executor: got 'ray', and Ray is not installed here; pip install 'wattgap[ray]'")
    from wattgap.runner.executors.cluster import RayExecutor

    return RayExecutor(address or "auto")


def plan(config: SweepConfig | dict[str, Any] | str | Path) -> Plan:
    """The cells a sweep expands to on this machine, and those it skips with the reason; nothing runs
    and nothing is written."""
    sweep = as_config(config)
    check(sweep)
    user_models = describe_user_models(sweep)
    return expand(sweep, detect(), frameworks_of(user_models))


def load_run(db: str | Path, run_id: str) -> Run:
    """A stored run with all its results (``run_id`` may be a unique prefix or ``latest``)."""
    with Store.open_readonly(db) as store:
        return store.load_run(run_id)


def export(db: str | Path, run_id: str, fmt: str, output: str | Path | None = None, force: bool = False) -> None:
    """Write ``run_id`` as CSV or JSON (store/export.py) to ``output``, whole or not at all, or to standard
    output; its results are read one at a time, so memory stays flat whatever the run's size."""
    from wattgap.store.export import chunks, write_atomically

    with Store.open_readonly(db) as store:
        run = store.load_run(run_id, results=False)
        pieces = chunks(run, lambda: store.iter_results(run.run_id), fmt)
        if output is not None:
            write_atomically(pieces, output, force=force)
            return
        for piece in pieces:
            sys.stdout.write(piece)


def load_runs(db: str | Path, run_ids: list[str]) -> list[Run]:
    """Several stored runs, read in one opening of the database."""
    with Store.open_readonly(db) as store:
        return [store.load_run(run_id) for run_id in run_ids]


def delete_run(db: str | Path, run_id: str) -> tuple[str, int]:
    """Remove a run and everything stored with it; its full id and the number of results removed. A run
    that a process is executing is refused (StoreError naming the process): its lock is held throughout."""
    with Store.open(db, create=False) as store:
        full = store.resolve(run_id)
        with executing(db, full, then="stop that process before deleting the run"):
            return store.delete_run(full)


def list_runs(db: str | Path, on_damaged: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """A summary of each run; a run whose row cannot be read is passed over, and ``on_damaged`` told why."""
    with Store.open_readonly(db) as store:
        rows = store.run_summaries()
        for line in store.damaged:
            if on_damaged is not None:
                on_damaged(line)
        return rows


def list_models() -> list[dict[str, Any]]:
    """The zoo: name, task, default input, classes, reference parameter counts, description."""
    from wattgap.models import MODELS

    return [
        {
            "name": s.name,
            "task": s.task,
            "input": "x".join(map(str, s.input_shape())),
            "classes": s.default_num_classes if s.task == "classification" else None,  # a generator has none
            "reference_params": s.reference_params,
            "description": s.description,
        }
        for s in MODELS.values()
    ]


def list_suites() -> list[dict[str, Any]]:
    return [{"name": n, "description": load_suite_data(n).get("description", "")} for n in suite_names()]


def environment() -> Machine:
    """This machine's fingerprint: CPU, memory, GPUs, driver and CUDA, libraries, usable devices and
    backends (and why not)."""
    return fingerprint(detect())


def compare(
    db: str | Path,
    run_a: str,
    run_b: str,
    by: str = "device",
    baseline: str | None = None,
    metric: str = "throughput",
) -> Comparison:
    """B against A for cells that differ only in ``by``: throughput or latency (see analysis.speedup). A
    side measured in one process is widened by the spread between processes that repeated cells of recent
    runs of the same machine in ``db`` measured, when there are some."""
    with Store.open_readonly(db) as store:
        first = store.load_run(run_a)
        second = first if store.resolve(run_b) == first.run_id else store.load_run(run_b)  # A against itself: read once
        single = any(single_process(r) for run in (first, second) for r in run.results if r.status == "ok")
        keys = [[machine.key() for machine in run.machines_used().values()] for run in (first, second)]
        same_machine = len(keys[0]) == 1 and keys[0] == keys[1]  # cells of several machines: no one spread
        spread = machine_spread(store, first) if single and same_machine else None  # widens single-process sides
    return compare_runs(first, second, by=by, baseline=baseline, metric=metric, spread=spread)


def machine_spread(store: Store, run: Run) -> Spread | None:
    """The spread between processes measured on ``run``'s machine by the repeated cells of the runs of
    ``store`` made there within SPREAD_MAX_AGE_S (None: none did)."""
    key = run.environment.key()
    repeated = store.repeated_run_ids()
    created: dict[str, float] = {}
    for run_id, created_at, environment in store.recent_environments(SPREAD_MAX_AGE_S):
        if run_id in repeated:
            try:
                if environment.key() == key:
                    created[run_id] = datetime.fromisoformat(created_at).timestamp()
            except (TypeError, ValueError):  # an unreadable neighbour is passed over
                continue
    runs = []
    for run_id in created:
        with contextlib.suppress(StoreError):
            runs.append(store.load_run(run_id))
    return spread_of(runs, time.time(), created)


def tradeoff(
    db: str | Path,
    run_ids: list[str],
    share: float = 0.9,
    max_latency_s: float | None = None,
    percentile: str = "p99",
) -> Tradeoff:
    """Throughput and latency against batch size per curve, the knee and the best batch under a latency
    bound (see analysis.tradeoff)."""
    return tradeoff_of(load_runs(db, run_ids), share=share, max_latency_s=max_latency_s, percentile=percentile)


def recommend(
    db: str | Path,
    run_ids: list[str],
    objective: str = "throughput",
    constraints: Constraints | None = None,
    params: EfficiencyParams | None = None,
) -> Recommendation:
    """The best stored cell for ``objective`` under ``constraints`` (see analysis.recommend)."""
    return recommend_of(load_runs(db, run_ids), objective, constraints, params)


def study(db: str | Path, name: str, run_ids: list[str]) -> StudyTable:
    """A study's table in its shape from stored runs: gpu-vs-cpu, frameworks or precisions (see
    analysis.studies)."""
    return study_of(name, load_runs(db, run_ids))


def whatif(db: str | Path, run_ids: list[str], targets: list[str]) -> WhatIf:
    """Roofline estimates of the runs' inference cells on devices not owned, and the estimator's error on
    the pairs the runs own (see analysis.whatif)."""
    return whatif_of(load_runs(db, run_ids), targets)


def report(
    db: str | Path,
    run_ids: list[str],
    html: str | Path | None = "report.html",
    markdown: str | Path | None = None,
) -> Written:
    """Write the report of ``run_ids``: one self-contained HTML file and, with ``markdown``, its Markdown
    twin with the plots as SVG files beside it (render/document.py says what is in it). A file is replaced
    only when wattgap wrote it; a target that cannot be written is refused before the report is built."""
    html_path = Path(html) if html is not None else None
    markdown_path = Path(markdown) if markdown is not None else None
    check_report(html_path, markdown_path)
    return write_report(build_document(load_runs(db, run_ids)), html_path, markdown_path)


def memory(db: str | Path, run_id: str, budget_bytes: float | None = None) -> tuple[Run, list[MemoryCurve]]:
    """Peak memory against batch size per configuration, and the largest batch within the budget (see
    analysis.memory)."""
    stored = load_run(db, run_id)
    return stored, memory_curves(stored, budget_bytes)


def project_memory(
    data: str | Path | None = None, until: int = 2030, weight_bytes: float = 2.0, training_bytes: float = 16.0
) -> Projection:
    """Accelerator memory and models' memory needs by year, fitted and projected (see analysis.projection);
    ``data``: a CSV in the shipped dataset's columns, or None for the shipped one."""
    entries, source = load_entries(data)
    return project_of(entries, source, until, weight_bytes, training_bytes)


def efficiency(
    db: str | Path, run_id: str, params: EfficiencyParams, rank: str | None = None
) -> tuple[Run, str, list[Efficiency]]:
    """A run's ok cells ranked by what their energy buys; also the run and the metric ranked by."""
    stored = load_run(db, run_id)
    metric, rows = rank_cells(stored, params, rank)
    return stored, metric, rows
