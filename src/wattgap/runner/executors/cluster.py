"""The Ray executor: each cell a Ray task that asks for what the cell needs (CPUs equal to its threads, one
GPU for a CUDA cell) and runs the cell, on whichever node Ray places it, in a fresh process of that node
exactly as the local executor does (runner/isolate.py: its timeout, memory cap and failure statuses). The
task streams the cell's events back as it runs and ends with its result; the driver alone writes the
store. wattgap schedules nothing itself: Ray places the tasks; when a task's worker or node dies, the
driver launches it once more, and Ray places it again (on a live node). This module only keeps as many cells
in flight as the cluster has CPUs, so that the driver's jobs stay lazy (each can use what earlier results
taught it).

Two rules of measurement hold across nodes: the processes of a cell that repeats all run on the node its
first one landed on (their samples are pooled, so they must come from one machine), and a job whose
successor is planned from its result (a batch search's probe) runs alone."""

from __future__ import annotations

import logging
import queue
import socket
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from wattgap.cells import Cell
from wattgap.config import SweepConfig
from wattgap.errors import ConfigError
from wattgap.results import CellResult, Phases, Status
from wattgap.runner.executors.base import HOME, CellJob, Executor, OnEvent

PLACED = "placed"  # the first event of a cell's task: the node Ray placed it on
RESULT = "result"
NODE_EVENT = "node"  # what the driver's progress hears of it: {"event": "node", "node": ...}
TRIES = 2  # a cell whose worker or node died runs once more
WAIT_S = 1.0  # how long the driver waits for any task's next event before it looks again
CONNECT_S = 5.0  # how long the driver tries to open a connection to the cluster's address


class RayExecutor(Executor):
    """Cells on the Ray cluster at ``address`` (``auto``: the one this machine is part of, as `ray status`
    finds it; ``HOST:PORT``; or ``ray://HOST:PORT`` through Ray Client)."""

    def __init__(self, address: str = "auto") -> None:
        self.address = address
        self._connected = False

    def _ray(self) -> Any:
        import ray

        if not self._connected:
            self._reachable()
            if ray.is_initialized() and self.address not in ("auto", ray.get_runtime_context().gcs_address):
                ray.shutdown()  # this process is connected to another cluster (an earlier run's)
            try:
                ray.init(
                    address=self.address,
                    logging_level=logging.ERROR,
                    log_to_driver=False,  # a cell's output is its own: its stderr tail is in its failure reason
                    ignore_reinit_error=True,  # already connected to this cluster: that connection serves
                )
            except (ConnectionError, RuntimeError, ValueError) as error:
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise ConfigError(
                    f"--address: no Ray cluster could be reached at {self.address!r} ({first}); start one with "
                    "`ray start --head`, or give auto, HOST:PORT or ray://HOST:PORT"
                ) from None
            self._connected = True
        return ray

    def _reachable(self) -> None:
        """Refuse at once an address ``HOST:PORT`` where nothing listens (Ray would retry for a minute)."""
        host, _, port = self.address.removeprefix("ray://").rpartition(":")
        if not host or not port.isdigit():
            return  # auto: Ray finds the cluster this machine is part of, and says at once when there is none
        try:
            socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_S).close()
        except OSError as error:
            raise ConfigError(
                f"--address: no Ray cluster could be reached at {self.address!r} ({error.strerror or error}); "
                "start one with `ray start --head`, or give auto, HOST:PORT or ray://HOST:PORT"
            ) from None

    def _alive(self) -> list[dict[str, Any]]:
        """The cluster's alive nodes that can run a cell (at least one CPU: a head started with
        ``--num-cpus 0`` runs none)."""
        return [node for node in self._ray().nodes() if node["Alive"] and node["Resources"].get("CPU", 0) >= 1]

    def nodes(self, config: SweepConfig) -> list[str]:
        """The alive nodes' ids, the driver's own node first when it is one of them (the run's machine)."""
        ray = self._ray()
        names = sorted(node["NodeID"] for node in self._alive())
        if not names:
            raise ConfigError(f"--address: the Ray cluster at {self.address!r} has no node with a CPU to run cells on")
        try:
            own = ray.get_runtime_context().get_node_id()
        except Exception:  # a Ray Client driver has no node of its own
            own = None
        return sorted(names, key=lambda name: name != own)

    def facts(self, request: dict[str, Any], config: SweepConfig, node: str = HOME) -> dict[str, Any]:
        """What a process on ``node``, started as its cells are, says about that node's machine."""
        ray = self._ray()
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        task = ray.remote(facts_on_node).options(
            num_cpus=1, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)
        )
        try:
            return dict(ray.get(task.remote(request, config)))
        except ray.exceptions.RayError as error:
            what = f"Ray node {node}: its {request['kind']} could not be read"
            raise RuntimeError(f"{what}: {_first_line(error)}") from None

    def submit(self, jobs: Iterable[CellJob], on_event: OnEvent) -> Iterator[CellResult]:
        ray = self._ray()
        alive = self._alive()  # as the sweep starts: Ray itself follows nodes that come and go
        capacity = max(1, int(sum(node["Resources"]["CPU"] for node in alive)))
        source = iter(jobs)
        flights: dict[Any, _Flight] = {}  # by the task's stream of events
        held: list[CellJob] = []  # later processes of a cell whose first has not been placed yet
        homes: dict[str, str] = {}  # a repeated cell's node: where its first process landed
        more = True
        while more or flights or held:
            for waiting in [job for job in held if job.cell.cell_id in homes or not _started(flights, job.cell)]:
                held.remove(waiting)  # its cell's node is known; or its first process ended before it was placed
                flights[self._launch(waiting, homes.get(waiting.cell.cell_id))] = _Flight(waiting)
            alone = any(flight.job.alone for flight in flights.values())
            while more and not alone and len(flights) + len(held) < capacity:
                job = next(source, None)
                if job is None:
                    more = False
                    break
                refused = _infeasible(job.cell, alive)
                if refused is not None:
                    yield _failed(job, "failed", refused)
                    continue
                if job.repeat is not None and job.cell.cell_id not in homes and _started(flights, job.cell):
                    held.append(job)
                    continue
                flights[self._launch(job, homes.get(job.cell.cell_id))] = _Flight(job)
                alone = job.alone
            if not flights:
                continue
            ready, _ = ray.wait(list(flights), num_returns=1, timeout=WAIT_S)
            for stream in ready:
                flight = flights[stream]
                try:
                    item = ray.get(next(stream))
                except StopIteration:
                    del flights[stream]
                    yield _failed(flight.job, "crashed", "its Ray task ended without a result")
                    continue
                except ray.exceptions.RayError as error:
                    del flights[stream]
                    if flight.tries < TRIES and not isinstance(error, ray.exceptions.RayTaskError):
                        # its worker or node died, not the cell (a cell's failures are results): once more,
                        # where Ray places it now (a repeated cell's later process: on the cell's node)
                        retry = self._launch(flight.job, homes.get(flight.job.cell.cell_id))
                        flights[retry] = _Flight(flight.job, tries=flight.tries + 1, lost=_lost(error, flight.node))
                        continue
                    yield _failed(flight.job, "crashed", _lost(error, flight.node, flight.lost))
                    continue
                if item["event"] == PLACED:
                    flight.node = item["node"]
                    if flight.job.repeat is not None:
                        homes.setdefault(flight.job.cell.cell_id, item["node"])
                    on_event({"event": NODE_EVENT, "node": item["node"]} | _key(flight.job))
                elif item["event"] == RESULT:
                    del flights[stream]
                    known = item["node"] in flight.job.nodes  # else it ran nothing (cell_on_node)
                    yield flight.job.ran_on(item["node"], item["result"]) if known else item["result"]
                else:
                    on_event(item)

    def _launch(self, job: CellJob, node: str | None) -> Any:
        """The task of ``job``: on ``node`` when given (a repeated cell's later process), else where Ray
        places it."""
        ray = self._ray()
        # retried by the driver, not by Ray: a retried stream of events would drop those of the new attempt
        # that have the place of ones already read (its node among them)
        cpus, gpus = _needs(job.cell)
        options: dict[str, Any] = {"num_cpus": cpus, "num_gpus": gpus, "max_retries": 0}
        if node is not None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
        return ray.remote(cell_on_node).options(**options).remote(job)


@dataclass
class _Flight:
    job: CellJob
    node: str | None = None  # where Ray placed it, once its task said
    tries: int = 1
    lost: str | None = None  # what ended its earlier try


def _needs(cell: Cell) -> tuple[int, int]:
    """The CPUs and GPUs ``cell`` asks Ray for: its threads for each of its ranks (one rank unless it is a
    data-parallel cell), and a GPU for each rank of a CUDA cell."""
    gpus = cell.world_size if cell.device.startswith("cuda") else 0
    return (cell.threads or 1) * (1 if gpus else cell.world_size), gpus


def _infeasible(cell: Cell, alive: list[dict[str, Any]]) -> str | None:
    """Why no node of ``alive`` can run ``cell`` (too few CPUs or GPUs, or a GPU named by number), or None."""
    if cell.device.startswith("cuda:"):
        return f"on Ray a cell's GPU is the one Ray gives its task: name the device cuda, not {cell.device}"
    cpus, gpus = _needs(cell)
    if any(node["Resources"].get("CPU", 0) >= cpus and node["Resources"].get("GPU", 0) >= gpus for node in alive):
        return None
    need = f"{cpus} CPU{'s' if cpus > 1 else ''}" + (f" and {gpus} GPU{'s' if gpus > 1 else ''}" if gpus else "")
    return f"no node of the Ray cluster has {need} for it"


def _key(job: CellJob) -> dict[str, Any]:
    """What tells one running process from another in the progress display: its cell and repeat."""
    return {"cell_id": job.cell.cell_id, "repeat": job.repeat}


def _started(flights: dict[Any, _Flight], cell: Cell) -> bool:
    return any(flight.job.cell.cell_id == cell.cell_id for flight in flights.values())


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[-1][:400] if text else type(error).__name__


def _lost(error: BaseException, node: str | None, before: str | None = None) -> str:
    """The reason of a cell whose task Ray could not finish, with what ended its earlier try."""
    where = f"on Ray node {node}" if node else "on the Ray cluster"
    reason = f"its task was lost {where} ({type(error).__name__}: {_first_line(error)})"
    return f"{reason}; tried twice, the first {before.removeprefix('its task ')}" if before else reason


def _failed(job: CellJob, status: Status, reason: str) -> CellResult:
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result = CellResult(cell=job.cell, status=status, reason=reason, started_at=now, finished_at=now, phases=Phases())
    result.repeat, result.sequence = job.repeat, job.sequence
    return result


# On a node: the task of one cell.


# The cell-running thread of a Ray worker, made by its first cell, lives as long as the worker: the processes a
# cell starts are tied to the life of the thread that started them (runner/processes.die_with_parent), and the
# fork server among them serves the worker's later cells.
_PUMP: list[ThreadPoolExecutor] = []


def facts_on_node(request: dict[str, Any], config: SweepConfig) -> dict[str, Any]:
    """runner/isolate.node_facts on the node Ray runs this on (a Ray worker imports this module first)."""
    from wattgap.runner.isolate import node_facts

    return node_facts(request, config)


def cell_on_node(job: CellJob) -> Iterator[dict[str, Any]]:
    """Run ``job`` on the node Ray placed this task on, in a fresh process as the local executor does:
    first the node's id, then the cell's events as they come, then its result. A node the run did not
    describe (it joined the cluster after the run started) runs nothing: the cell fails, saying so."""
    import ray

    from wattgap.runner.isolate import run_isolated

    node = ray.get_runtime_context().get_node_id()
    yield {"event": PLACED, "node": node}
    if node not in job.nodes:
        yield {"event": RESULT, "node": node, "result": _failed(job, "failed", _UNKNOWN.format(node=node))}
        return
    if not _PUMP:
        _PUMP.append(ThreadPoolExecutor(1, thread_name_prefix="wattgap-cell"))
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    here = replace(job, nodes={HOME: job.nodes[node]})  # the idle power it subtracts: its own node's
    running = _PUMP[0].submit(run_isolated, here, events.put)
    while not running.done() or not events.empty():
        try:
            yield events.get(timeout=0.2) | _key(job)
        except queue.Empty:
            continue
    yield {"event": RESULT, "node": node, "result": running.result()}


_UNKNOWN = (
    "Ray placed it on node {node}, which joined the cluster after the run started and was not described "
    "(its machine, idle power); `wattgap run --resume` describes the nodes anew and runs it"
)
