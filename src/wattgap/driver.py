"""Drives a run: plans it, takes the facts of the machine it runs on (fingerprint, idle power, the CPU's
roofline), stores it, feeds its cells to an executor and stores each result as it arrives (repeats
combined, batch searches probed then measured, a result that cannot be written spilled and recovered),
and resumes a run that stopped. ``api`` is the public facade over it."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from wattgap.analysis.speedup import work_of
from wattgap.cells import Cell, curve_key
from wattgap.config import (
    SweepConfig,
    load_config,
    parse_config,
)
from wattgap.datasets import check
from wattgap.devices import Hardware
from wattgap.errors import ConfigError, StoreError
from wattgap.machines import Environment, Machine
from wattgap.measure import drift as drifts
from wattgap.measure.flops import Work
from wattgap.measure.protocol import PROBE, probe_protocol
from wattgap.models import is_custom
from wattgap.models.sources import FRAMEWORKS, identity, kind_of
from wattgap.plan import Plan, expand, next_probe, schedule
from wattgap.plan import check as check_plan
from wattgap.render.progress import ProgressSink, SilentProgress
from wattgap.results import CellResult, Run, RunState
from wattgap.runner.executors import HOME, CellJob, Executor, LocalExecutor, Node
from wattgap.runner.forkserver import fork_server
from wattgap.runner.isolate import forks
from wattgap.runner.machine import IDLE, MACHINE, ROOFLINE, idle_power
from wattgap.runner.probe import describe, refuse
from wattgap.runner.repeats import combine
from wattgap.store.locks import executing
from wattgap.store.spill import forget, rescued_database, spill, spilled
from wattgap.store.sqlite import DatabaseGone, Store
from wattgap.version import __version__

DEFAULT_DB = "wattgap.db"
OnCreated = Callable[[str, "Plan | None"], None]  # (run id, its plan; None when resuming)


def as_config(config: SweepConfig | dict[str, Any] | str | Path) -> SweepConfig:
    if isinstance(config, SweepConfig):
        return config
    if isinstance(config, dict):
        return parse_config(config)
    return load_config(config)


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


PROBE_TIMEOUT_S = 120.0


def describe_user_models(sweep: SweepConfig) -> dict[str, Any]:
    """Each user model of ``sweep``: its source's identity and, learnt by loading it in a subprocess
    (runner/probe.py), its framework, inputs and parameter count, for the run to store and the planner
    to use. A file or folder that cannot be loaded, or inputs that do not fit the model, are refused here:
    every cell would fail. A callable that fails to build is not (its cells say why, each in its process)."""
    found: dict[str, Any] = {}
    for index, name in enumerate(sweep.models):
        if not is_custom(name):
            continue
        found[name] = identity(name)
        timeout_s = min(sweep.cell_timeout_s, PROBE_TIMEOUT_S)
        kind = kind_of(name)
        # forked from the fork server when PyTorch loads it (a callable's framework is known once built): the
        # server imported PyTorch once; an ONNX or Keras file is loaded sooner by a fresh interpreter
        fork = forks(sweep) and (kind == "callable" or (kind is not None and FRAMEWORKS.get(kind) == "torch"))
        probed = describe(name, sweep.model_options(name), sweep.seed, timeout_s, sweep.max_host_memory_bytes, fork)
        if kind == "callable" and "error" in probed:
            continue  # its cells will say why it does not build
        refuse(f"models[{index}]", name, probed)
        found[name].update(probed["described"])
    return found


def frameworks_of(user_models: dict[str, Any]) -> dict[str, str]:
    return {name: found["framework"] for name, found in user_models.items() if "framework" in found}


def _check_tags(tags: list[str]) -> list[str]:
    for index, tag in enumerate(tags):
        if not tag.strip() or len(tag) > 100 or not tag.isprintable():
            raise ConfigError(f"--tag[{index}]: got {tag!r}; allowed: printable text of 1 to 100 characters")
    return list(dict.fromkeys(tag.strip() for tag in tags))


def run(
    config: SweepConfig | dict[str, Any] | str | Path,
    db: str | Path = DEFAULT_DB,
    progress: ProgressSink | None = None,
    on_created: OnCreated | None = None,
    executor: Executor | None = None,
    tags: list[str] | None = None,
) -> Run:
    """Plan and run a sweep; every result is committed to ``db`` as soon as its cell ends. ``config`` is a
    SweepConfig, a mapping of its fields, or the path of a YAML file. ``on_created(run_id, plan)`` is
    called once the run is stored, before the first cell starts. ``executor``: local subprocesses, one
    cell at a time, unless given. ``tags``: labels stored with the run (listed by ``wattgap list runs``)."""
    sweep = as_config(config)
    labels = _check_tags(tags or [])
    check_plan(sweep)  # a name no registry holds, or settings a component refuses: before any process starts
    Store.check_target(Path(db))  # and a database that cannot be written
    runner = executor or LocalExecutor()
    server = fork_server() if executor is None and forks(sweep) else None  # its imports overlap the planning
    check(sweep)  # before the store is opened: a bad name, or a user model without a shape, writes nothing
    user_models = describe_user_models(sweep)  # each in a process forked as a cell's: a misfit is refused here
    names = runner.nodes(sweep)
    home = runner.facts({"kind": MACHINE}, sweep, names[0])  # its devices and fingerprint, as a process there sees them
    hardware = Hardware.from_dict(home["hardware"])
    planned = expand(sweep, hardware, frameworks_of(user_models))
    run_id = new_run_id()
    with Store.open(db) as store, executing(db, run_id):
        environment = Environment.model_validate(home["environment"] | {"user_models": user_models})
        devices = list(dict.fromkeys(cell.device for cell in planned.runnable))
        if server is not None:
            server.ready()  # no import may run beside the idle measurement
        reused = _recent_idle(store, environment, devices, sweep)
        if reused is not None:
            environment.idle_power = reused["idle_power"]
            environment.idle_power_reused = {key: reused[key] for key in ("run_id", "age_s")}
        else:
            environment.idle_power = _idle(runner, sweep, names[0], devices)
        _describe(runner, sweep, names[0], environment, planned.runnable)
        environment.drift = machine_drift(store, environment)
        nodes = {names[0]: Node(None, environment.idle_power)} | _elsewhere(
            store, runner, sweep, names[1:], planned.runnable
        )
        store.create_run(run_id, sweep, environment, list(planned.cells), planned.skipped, __version__, labels)
        if on_created is not None:
            on_created(run_id, planned)
        _drive(store, store.load_run(run_id), progress or SilentProgress(), nodes, runner)
        return store.load_run(run_id)


def _elsewhere(
    store: Store, runner: Executor, sweep: SweepConfig, names: list[str], cells: Sequence[Cell]
) -> dict[str, Node]:
    """The other nodes ``names`` where the executor runs ``cells``: each one's facts taken there (as the
    run's own machine's are) and its machine stored once, by the hash of its facts."""
    devices = list(dict.fromkeys(cell.device for cell in cells))
    nodes = {}
    for node in names:
        machine = Machine.model_validate(runner.facts({"kind": MACHINE}, sweep, node)["environment"])
        machine.idle_power = _idle(runner, sweep, node, devices)
        _describe(runner, sweep, node, machine, cells)
        nodes[node] = Node(store.add_machine(machine), machine.idle_power)
    return nodes


def _idle(runner: Executor, sweep: SweepConfig, node: str, devices: list[str]) -> dict[str, Any]:
    """The idle power of ``devices`` on ``node``: measured in this process on this machine (HOME, where
    the sweep's own imports are done by now), by a process there elsewhere."""
    if node == HOME:
        return idle_power(devices, sweep.energy)
    request = {"kind": IDLE, "devices": devices, "energy": sweep.energy.model_dump(mode="json")}
    return dict(runner.facts(request, sweep, node)["idle_power"])


def _describe(runner: Executor, sweep: SweepConfig, node: str, machine: Machine, cells: Sequence[Cell]) -> None:
    """What else ``machine`` (of ``node``) keeps: the devices and window of its idle power, and its CPU's
    roofline at the thread counts ``cells`` run when ``cpu_roofline`` asks for it (or why it could not be
    measured: the what-if goes without it)."""
    machine.idle_devices, machine.idle_s = list(dict.fromkeys(cell.device for cell in cells)), sweep.energy.idle_s
    cpu_threads = sorted({cell.threads for cell in cells if cell.device == "cpu" and cell.threads})
    if sweep.cpu_roofline and cpu_threads:
        rates = runner.facts({"kind": ROOFLINE, "threads": cpu_threads}, sweep, node)
        machine.cpu_roofline, machine.cpu_roofline_error = rates.get("cpu_roofline"), rates.get("cpu_roofline_error")


def _recent_idle(store: Store, environment: Machine, devices: list[str], sweep: SweepConfig) -> dict[str, Any] | None:
    """The idle power of the newest run in ``store`` that measured it on this machine, for these devices
    (or more), with the same idle window, within ``energy.idle_reuse_s``, and found the machine quiet:
    its ``idle_power``, ``run_id`` and ``age_s``. None when no run qualifies (this run measures its own)."""
    energy = sweep.energy
    if not energy.enabled or energy.idle_s <= 0 or energy.idle_reuse_s <= 0:
        return None
    now = datetime.now(timezone.utc)
    for run_id, created_at, earlier in store.recent_environments(energy.idle_reuse_s):
        idle = earlier.idle_power
        if (
            earlier.idle_power_reused is not None  # only a measurement is reused, never a reuse: its age would grow
            or not idle
            or any(entry.get("warning") for entry in idle.values())
            or not set(devices) <= set(earlier.idle_devices)
            or earlier.idle_s != energy.idle_s
            or earlier.key() != environment.key()
        ):
            continue
        try:  # a neighbour whose creation time is not what wattgap writes is passed over, never a crash
            age_s = (now - datetime.fromisoformat(created_at)).total_seconds()
        except (TypeError, ValueError):
            continue
        return {"idle_power": idle, "run_id": run_id, "age_s": round(age_s, 1)}
    return None


DRIFT_OBSERVATIONS = 5000  # results read at most (newest runs first): plenty for the drift, and quick at any size


def machine_drift(store: Store, environment: Machine) -> dict[str, dict[str, Any]]:
    """This machine's drift between runs (measure/drift.py), from the newest runs of ``store`` made on it
    (the same CPU, GPUs and torch) within DRIFT_MAX_AGE_S: at most DRIFT_RUNS of them, and no more once
    DRIFT_OBSERVATIONS results are read. Each entry dumped, for the run's environment."""
    key = environment.key()
    created: dict[str, float] = {}
    for run_id, created_at, earlier in store.recent_environments(drifts.DRIFT_MAX_AGE_S):
        try:  # a neighbour whose facts or creation time do not read is passed over
            if earlier.key() == key:
                created[run_id] = datetime.fromisoformat(created_at).timestamp()
        except (TypeError, ValueError):
            continue
        if len(created) >= drifts.DRIFT_RUNS:
            break
    seen: list[drifts.Observation] = []
    for run_id in created:
        if len(seen) >= DRIFT_OBSERVATIONS:
            break
        try:
            work = work_of(store.run_config(run_id))
            summaries = store.latency_summaries(run_id)
        except StoreError:  # a damaged neighbour is no reason for a new run to fail
            continue
        for cell_id, device, latency in summaries:
            observed = drifts.observe(run_id, work, cell_id, device, latency)
            if observed is not None:
                seen.append(observed)
    found = drifts.estimate(seen, created, time.time())
    return {name: drift.model_dump() for name, drift in found.items()}


def widened(result: CellResult, drift: dict[str, drifts.Drift]) -> CellResult:
    """``result`` with its interval of the median widened by the drift its run measured on its machine for
    its device family and kind (measure/drift.py): a result of the run's own machine, measured in full."""
    latency = result.latency
    if result.status != "ok" or latency is None or result.probe or result.machine_id is not None:
        return result
    found = drifts.drift_for(drift, result.cell.device, latency.repeats)
    return result if found is None else result.model_copy(update={"latency": drifts.apply(latency, found)})


def finished(db: str | Path, run_id: str) -> RunState | None:
    """Where ``run_id`` stands when nothing is left for ``resume`` to run (complete, every cell with its
    result), read from its counts without its results; None otherwise. It takes the run's lock as
    ``resume`` does: a run another process executes, or a link planted at its lock, is refused alike."""
    with Store.open(db, create=False) as store, executing(db, store.resolve(run_id)):
        state = store.run_state(run_id)
        return state if state.finished else None


def resume(
    db: str | Path,
    run_id: str,
    progress: ProgressSink | None = None,
    on_created: OnCreated | None = None,
    executor: Executor | None = None,
) -> Run:
    """Run the cells of ``run_id`` that have no stored result yet, on the machine that started it. A run
    that another process is executing is refused (StoreError)."""
    with Store.open(db, create=False) as store, executing(db, store.resolve(run_id)):
        previous = store.load_run(run_id)  # read under the lock: what is pending now
        runner = executor or LocalExecutor()
        names = runner.nodes(previous.config)
        here = Machine.model_validate(runner.facts({"kind": MACHINE}, previous.config, names[0])["environment"]).key()
        there = previous.environment.key()
        if here != there:
            raise ConfigError(f"--resume: run {previous.run_id} was started on {there}, this machine is {here}")
        kept = spilled(previous.run_id)  # finished before a write failed: stored now
        pending = {cell.cell_id for cell in previous.pending}
        stored_repeats = store.load_repeats(previous.run_id)
        for path, result in kept:
            if result.repeat is not None and result.repeat >= len(stored_repeats.get(result.cell_id, [])):
                store.store_repeat(previous.run_id, result)
            elif result.repeat is None and result.cell_id in pending:
                store.store_result(previous.run_id, result)
            forget(path)
        if kept:
            previous = store.load_run(previous.run_id)
        if on_created is not None:
            on_created(previous.run_id, None)
        if previous.state().finished:  # nothing to run: nothing stored changes
            return previous
        nodes = {names[0]: Node(None, previous.environment.idle_power)}  # its other nodes described anew
        nodes |= _elsewhere(store, runner, previous.config, names[1:], previous.pending)
        _drive(store, previous, progress or SilentProgress(), nodes, runner)
        return store.load_run(previous.run_id)


def _drive(
    store: Store,
    stored: Run,
    progress: ProgressSink,
    nodes: dict[str, Node],
    executor: Executor,
) -> None:
    """Run the processes of ``stored`` that have no result yet, in the run's order (plan.schedule), or,
    when its batch is searched, its searches from where they stand; store each result as it arrives. A
    cell that repeats has each process stored as it ends and its combined result stored once the last is
    in (or one failed: its other repeats are then not run). The run is marked complete only when every
    cell has a result; an interruption marks it interrupted (``wattgap run --resume`` finishes it) and is
    re-raised. FLOPs and traffic per sample do not depend on batch, device, precision or threads, so a
    count from one cell is handed to the later cells of its model, workload and backend. ``nodes``: where
    the executor may run them (Executor.nodes), with what the driver took of each."""
    run_id, config = stored.run_id, stored.config
    drift = {name: drifts.Drift.model_validate(entry) for name, entry in stored.environment.drift.items()}
    # the idle power each process subtracts, by the machine that ran it: the nodes now, and the machines of
    # processes stored before a resume (a node described anew is a machine of its own)
    idle_of = {None: stored.environment.idle_power} | {node.machine_id: node.idle_power for node in nodes.values()}
    counted: dict[tuple[str, str, str], Work] = {}
    results = {result.cell_id: result for result in stored.results}
    parts = store.load_repeats(run_id)
    named = {part.machine_id for done in parts.values() for part in done if part.machine_id} - set(idle_of)
    idle_of |= {key: machine.idle_power for key, machine in store.load_machines(run_id, named).items()}
    for cell_id, done in parts.items():  # every process ran, but the run stopped before their combination
        finished = len(done) >= config.repeats_for(done[0].cell.workload) or done[-1].status != "ok"
        if cell_id not in results and finished:
            results[cell_id] = widened(combine(done, config, idle_of.get(done[0].machine_id, {})), drift)
            store.store_result(run_id, results[cell_id])
    slots: Iterator[tuple[Cell, int, int]]  # (cell, repeat, its place in the run's order)
    probes: dict[str, CellResult] = {}  # a batch search's probes: a few iterations each (measure/protocol.py)
    if config.batch_search:
        probes = store.load_probes(run_id)
        ran = sum(len(done) for done in parts.values()) + len(probes)
        ran += sum(1 for r in results.values() if r.status != "skipped" and not r.repeats and not r.probe)
        slots, total = _search(store, stored, results, parts, probes, ran), None
    else:
        runnable = [cell for cell in stored.cells if getattr(results.get(cell.cell_id), "status", "") != "skipped"]
        pending = [
            (cell, repeat, sequence)
            for sequence, (cell, repeat) in enumerate(schedule(runnable, config))
            if cell.cell_id not in results and repeat >= len(parts.get(cell.cell_id, []))
        ]
        slots, total = iter(pending), len(pending)
    probing = config.model_copy(update={"protocol": probe_protocol(config.protocol)})
    probing_ids: set[str] = set()

    def key(cell: Cell) -> tuple[str, str, str]:
        return cell.model, cell.workload, cell.backend

    def jobs() -> Iterator[CellJob]:
        for index, (cell, repeat, sequence) in enumerate(slots):
            if cell.cell_id in results:  # an earlier repeat of it failed: its result is that failure
                continue
            if index and config.protocol.cooldown_s:
                time.sleep(config.protocol.cooldown_s)
            searching = config.batch_search  # each job of a search is planned from the results before it
            if repeat == PROBING:
                progress.cell_started(cell, index, total)
                probing_ids.add(cell.cell_id)
                yield CellJob(cell, probing, counted.get(key(cell)), nodes, None, sequence, alone=searching)
                continue
            process = repeat if config.repeats_for(cell.workload) > 1 else None
            progress.cell_started(cell, index, total, process)
            yield CellJob(cell, config, counted.get(key(cell)), nodes, process, sequence, alone=searching)

    def keep(result: CellResult, write: Callable[[str, CellResult], None]) -> None:
        try:
            write(run_id, result)
        except DatabaseGone as error:  # its file is gone, not its content: copy that out, this result with it
            copy = _rescue(store, run_id, result)
            where = f"kept in {str(copy)!r}" if copy else "could not be kept"
            raise StoreError(
                f"{error}; the run and every result it stored, this cell's included, are {where}: move that file "
                f"where you want it, then `wattgap run --resume {run_id} --db THAT_FILE` runs the rest"
            ) from None
        except StoreError as error:  # the database cannot be written: keep the result, say how to go on
            kept = spill(run_id, result)
            where = f"its result is kept in {str(kept)!r}, " if kept else "its result could not be kept, "
            raise StoreError(
                f"{error}; the cells finished before it are stored, {where}and `wattgap run --resume {run_id}` "
                "stores it and runs the rest once the database can be written"
            ) from None

    try:
        for result in executor.submit(jobs(), progress.cell_event):
            if result.work is not None:
                counted.setdefault(key(result.cell), result.work)
            if result.cell_id in probing_ids:  # a probe: its outcome steers the search, in the probes table
                probing_ids.discard(result.cell_id)
                keep(result, store.store_probe)
                probes[result.cell_id] = result
                progress.cell_finished(result)
                continue
            if result.repeat is not None:
                keep(result, store.store_repeat)
                done = parts.setdefault(result.cell_id, [])
                done.append(result)
                progress.cell_finished(result)
                if result.cell_id in results:  # ran beside a repeat that failed (an executor running several at once)
                    continue
                if result.status == "ok" and len(done) < config.repeats_for(result.cell.workload):
                    continue
                result = combine(done, config, idle_of.get(result.machine_id, {}))
            result = widened(result, drift)
            keep(result, store.store_result)
            results[result.cell_id] = result
            progress.cell_finished(result)
    except BaseException:
        with contextlib.suppress(StoreError):  # the database may be what failed: keep the first error
            store.set_run_status(run_id, "interrupted")
        raise
    store.set_run_status(run_id, "complete")


def _rescue(store: Store, run_id: str, result: CellResult) -> Path | None:
    """A copy of what ``store``'s vanished file holds, ``result`` added, in the spill folder: its path, or
    None when it could not be made."""
    copy = rescued_database(run_id)
    if copy is None:
        return None
    try:
        store.rescue(run_id, copy)
        with Store.open(copy) as rescued:
            (rescued.store_repeat if result.repeat is not None else rescued.store_result)(run_id, result)
    except StoreError:
        return None
    return copy


PROBING = -1  # the repeat that _search gives a probe of a batch search, which runs in one short process


def _search(
    store: Store,
    stored: Run,
    results: dict[str, CellResult],
    parts: dict[str, list[CellResult]],
    probes: dict[str, CellResult],
    ran: int,
) -> Iterator[tuple[Cell, int, int]]:
    """The processes of each batch search of ``stored`` as (cell, repeat, place in the run's order, counted
    on from ``ran``, the processes run before), one configuration after another. A probe (repeat PROBING)
    runs a few iterations that show whether its batch fits (``probes``, which the driver fills in as they
    arrive, steer the search: plan.next_probe); when the search of a configuration is over, its largest
    batch that fit is measured in full (each repeat, back to back; should that run out of memory, the
    search goes on below it), and its other probes become the run's results of their cells as they are
    (stop reason PROBE). A probe not yet among the run's cells is added to it before it runs, so that
    every probe is a stored cell."""
    known = {cell.cell_id for cell in stored.cells}
    firsts: dict[tuple[tuple[str, object], ...], Cell] = {}
    for cell in stored.cells:
        firsts.setdefault(curve_key(cell), cell)
    for group, first in firsts.items():
        while True:
            outcomes = {r.cell.batch_size: r for r in probes.values() if curve_key(r.cell) == group}
            outcomes |= {r.cell.batch_size: r for r in results.values() if curve_key(r.cell) == group}
            batch = next_probe({size: r.status for size, r in outcomes.items()})
            if batch is not None:
                probe = first.model_copy(update={"batch_size": batch})
                if probe.cell_id not in known:
                    store.add_cell(stored.run_id, probe)
                    known.add(probe.cell_id)
                yield probe, PROBING, ran
                ran += 1
                if probe.cell_id not in probes:
                    raise RuntimeError("a batch search plans each probe from the last result; this executor ran ahead")
                continue
            fitted = [size for size, r in outcomes.items() if r.status == "ok"]
            answer = outcomes[max(fitted)].cell if fitted else None
            measured = [r for r in results.values() if curve_key(r.cell) == group and not r.probe]
            if answer is None or answer.cell_id in results or any(r.status not in ("ok", "oom") for r in measured):
                break  # answered; or the answer's measurement failed, for a reason other than memory
            for repeat in range(len(parts.get(answer.cell_id, [])), stored.config.repeats_for(answer.workload)):
                yield answer, repeat, ran
                ran += 1
                if answer.cell_id in results:  # a repeat failed: the cell's result is that failure
                    break
        for outcome in probes.values():  # the search is over: the probes it did not measure in full are results
            if curve_key(outcome.cell) == group and outcome.cell_id not in results:
                results[outcome.cell_id] = outcome.model_copy(update={"stop_reason": PROBE})
                store.store_result(stored.run_id, results[outcome.cell_id])
