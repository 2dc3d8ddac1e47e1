"""train-ddp: data-parallel training, the train workload's step run by ``world_size`` ranks under PyTorch's
DistributedDataParallel (gloo on the CPU, each rank pinned to cores of its own; NCCL on CUDA, one GPU per
rank), each rank with the cell's batch and threads.

The ranks are started by ``torch.multiprocessing`` (spawn), not torchrun: they are then children of the
cell's process, so the cell's timeout, memory cap and kill end them with it, its energy and noise windows
see their CPU time, and their results come back through a queue the cell reads; torchrun would put its
own elastic agent between the cell and its ranks, to restart ranks a benchmark must not restart.

Rank 0 runs the protocol (warmup, then the measured window that stops when the median's interval is narrow
enough): before each step it broadcasts "go on" to the other ranks, which step until it says stop, so all
ranks run the same steps. Its latency samples are the cell's; the throughput is the group's."""

from __future__ import annotations

import contextlib
import os
import queue
import socket
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from wattgap.backends.base import Needs, Prepared
from wattgap.blocks import DataParallel
from wattgap.measure import timing
from wattgap.measure.energy import CellEnergy, EnergyWindow, meters_for
from wattgap.measure.flops import Work
from wattgap.measure.noise import NoiseWindow
from wattgap.results import Memory, Phases
from wattgap.workloads import assembly
from wattgap.workloads.base import Events, Known, TrainSettings, Workload

if TYPE_CHECKING:
    from wattgap.backends.base import Backend
    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.devices import Hardware
    from wattgap.results import CellResult

LAUNCHER = "torch.multiprocessing (spawn)"
GROUP_TIMEOUT_S = 300  # a collective that waits this long for a rank that died fails the group
LOOK_S = 0.2  # how often the cell looks at its ranks while it waits for their messages


class DataParallelSettings(TrainSettings):
    """train-ddp's own settings: its optimiser (as train's) and the world sizes it runs (an axis)."""

    world_sizes: list[int] = Field(default_factory=lambda: [1, 2], min_length=1)

    @field_validator("world_sizes")
    @classmethod
    def _sizes(cls, sizes: list[int]) -> list[int]:
        if any(size < 1 or size > 1024 for size in sizes):
            raise ValueError(f"each world size is an integer from 1 to 1024; got {sizes}")
        return list(dict.fromkeys(sizes))


class TrainDataParallel(Workload):
    name = "train-ddp"
    description = "the train step on world_size ranks under DistributedDataParallel (gloo on CPU, NCCL on CUDA)"
    needs = Needs("ddp")
    settings_model = DataParallelSettings

    def axes(self, config: SweepConfig) -> list[dict[str, Any]]:
        own = config.settings("workloads", self.name, DataParallelSettings)
        return [{"world_size": size} for size in own.world_sizes]

    def cell_reason(self, cell: Cell, hardware: Hardware) -> str:
        ranks, gpus = cell.world_size, len(hardware.gpus)
        if cell.device.startswith("cuda") and ranks > gpus:
            return f"{ranks} ranks need {ranks} GPUs (one per rank); this machine has {gpus}"
        if cell.device.startswith("cuda") and ranks > 1 and ":" in cell.device:
            return f"{ranks} ranks take GPUs 0 to {ranks - 1}: name the device cuda, not {cell.device}"
        return ""

    def run(self, cell: Cell, config: SweepConfig, backend: Backend, events: Events, known: Known) -> CellResult:
        import torch.multiprocessing as mp

        context = mp.get_context("spawn")
        inbox: Any = context.Queue()
        job = {"cell": cell.model_dump(), "config": config.model_dump(mode="json"), "work": known.work is not None}
        ranks = mp.start_processes(
            _rank, args=(job, _free_port(), inbox), nprocs=cell.world_size, join=False, start_method="spawn"
        )
        meters = meters_for(cell.device, config.energy)
        window, audit = EnergyWindow(meters), NoiseWindow(config.noise, cell.device)
        report: dict[str, Any] = {}
        per_rank: dict[int, dict[str, Any]] = {}
        with contextlib.ExitStack() as measuring:
            while len(per_rank) < cell.world_size or not report:
                try:
                    message = inbox.get(timeout=LOOK_S)
                except queue.Empty:
                    if _ended(ranks, cell.world_size):
                        raise RuntimeError("the ranks ended without their results") from None
                    continue
                kind = message.pop("kind")
                if kind == "phase":
                    events.phase(message["phase"])
                    if message["phase"] == "measure":  # the group's energy and the machine's quiet, rank 0's window
                        measuring.enter_context(window)
                        measuring.enter_context(audit)
                elif kind == "progress":
                    events.emit({"event": "progress"} | message)
                elif kind == "measured":
                    measuring.close()
                    events.mark("finish")
                    report = message
                else:
                    per_rank[message["rank"]] = message
            _ended(ranks, cell.world_size, wait=True)
        return _result(cell, config, events, known, report, per_rank, window, audit)


def _ended(ranks: Any, world_size: int, wait: bool = False) -> bool:
    """Whether every rank has ended (waiting for them when ``wait``); a rank that failed fails the cell
    with its reason, and torch.multiprocessing ends the others."""
    import torch.multiprocessing as mp

    try:
        return bool(ranks.join(timeout=None if wait else 0))
    except mp.ProcessRaisedException as error:
        lines = [line for line in str(error).strip().splitlines() if line.strip()]
        raise RuntimeError(f"rank {error.error_index} of {world_size} failed: {lines[-1][:300]}") from None
    except mp.ProcessExitedException as error:
        how = f"signal {error.signal_name}" if error.signal_name else f"exit status {error.exit_code}"
        raise RuntimeError(f"rank {error.error_index} of {world_size} died ({how})") from None


def _result(
    cell: Cell,
    config: SweepConfig,
    events: Events,
    known: Known,
    report: dict[str, Any],
    per_rank: dict[int, dict[str, Any]],
    window: EnergyWindow,
    audit: NoiseWindow,
) -> CellResult:
    latencies = report["latencies_s"]
    group_batch = cell.batch_size * cell.world_size
    prepared = Prepared(
        samples_per_step=group_batch,
        parameters=report["parameters"],
        input_shape=tuple(report["input_shape"]),
        settings=report["settings"] | {"launcher": LAUNCHER},
    )
    stats = assembly.statistics(latencies, config)
    samples = group_batch * len(latencies)
    energy = CellEnergy.from_readings(window.readings, samples, known.idle_power, [])
    throughput = samples / report["wall_s"]
    work = known.work or (Work.model_validate(report["work"]) if report.get("work") else Work())
    ranks = [per_rank[index] for index in range(cell.world_size)]
    block = DataParallel(
        world_size=cell.world_size,
        process_group="nccl" if cell.device.startswith("cuda") else "gloo",
        launcher=LAUNCHER,
        allreduce_s=report["allreduce_s"],
        allreduce_share=report["allreduce_s"] / report["wall_s"] if report["wall_s"] > 0 else 0.0,
        rank_peak_rss_bytes=[rank["peak_rss_bytes"] for rank in ranks],
        rank_device_peak_bytes=[rank["device_peak_bytes"] for rank in ranks],
        cores=[rank["cores"] for rank in ranks],
    )
    warnings = []
    pinned = [core for rank in ranks for core in rank["cores"]]
    if len(set(pinned)) < len(pinned):
        warnings.append(
            f"ranks share cores: {cell.world_size} ranks x {cell.threads} threads on {len(set(pinned))} cores "
            "(each rank's step is slowed by the others: the efficiency is the machine's, not the method's)"
        )
    phases = Phases(
        load_s=events.between("start", "prepare"),  # the ranks' start and imports are load time
        prepare_s=events.between("prepare", "warmup"),
        warmup_s=report["warmup_s"],
        measure_s=report["wall_s"],
    )
    return assembly.cell_result(
        cell,
        config,
        events,
        prepared,
        phases,
        stats,
        latencies,
        energy,
        warnings,
        timer=report["timer"],
        warmup_iterations=report["warmup_iterations"],
        iterations=len(latencies),
        stop_reason=report["stop_reason"],
        ci_checks=report["ci_checks"],
        **assembly.rates(cell, work, throughput),
        memory=Memory(
            host_peak_rss_bytes=max((r["peak_rss_bytes"] or 0 for r in ranks), default=None),
            device_peak_allocated_bytes=ranks[0]["device_peak_bytes"],
        ),
        noise=audit.audit,
        block=block,
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _cores(rank: int, threads: int) -> list[int]:
    """The cores rank ``rank`` is pinned to: its own ``threads`` of this process's cores, in order (shared
    round the list when the ranks want more cores than there are)."""
    cores = sorted(os.sched_getaffinity(0))
    return sorted({cores[(rank * threads + k) % len(cores)] for k in range(threads)})


def _rank(index: int, job: dict[str, Any], port: int, outbox: Any) -> None:
    """One rank, in a process of its own: join the group, prepare the cell's train step under DDP with the
    cell's backend, and step (rank 0 under the protocol, the others as long as rank 0 says so)."""
    import torch
    import torch.distributed as dist

    from wattgap.backends import BACKENDS
    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.measure.memory import DeviceMemory, peak_rss_bytes

    cell = Cell.model_validate(job["cell"])
    config = SweepConfig.model_validate(job["config"])
    cuda = cell.device.startswith("cuda")
    cores: list[int] = []
    if not cuda and hasattr(os, "sched_setaffinity"):
        cores = _cores(index, cell.threads or 1)
        os.sched_setaffinity(0, cores)
    here = cell.model_copy(update={"device": f"cuda:{index}"}) if cuda and cell.world_size > 1 else cell
    os.environ |= {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    dist.init_process_group(
        "nccl" if cuda else "gloo",
        rank=index,
        world_size=cell.world_size,
        timeout=timedelta(seconds=GROUP_TIMEOUT_S),
    )
    try:
        from wattgap.workloads import WORKLOADS

        phase = (lambda name: outbox.put({"kind": "phase", "phase": name})) if index == 0 else (lambda name: None)
        prepared = BACKENDS[cell.backend].prepare(here, config, phase, WORKLOADS[cell.workload].needs_for(config))
        assert prepared.step is not None and prepared.communication_s is not None
        device = torch.device(here.device)
        go = torch.zeros(1, dtype=torch.int64, device=device)
        memory = DeviceMemory(here.device)
        if index == 0:
            _lead(here, config, prepared, go, memory, outbox, job["work"])
        else:
            with prepared.context():
                while True:
                    dist.broadcast(go, 0)
                    if not int(go.item()):
                        break
                    prepared.step()
        outbox.put(
            {
                "kind": "rank",
                "rank": index,
                "peak_rss_bytes": peak_rss_bytes(),
                "device_peak_bytes": memory.read().get("device_peak_allocated_bytes"),
                "cores": cores,
            }
        )
    finally:
        dist.destroy_process_group()


def _lead(
    cell: Cell,
    config: SweepConfig,
    prepared: Prepared,
    go: Any,
    memory: Any,
    outbox: Any,
    work_known: bool,
) -> None:
    """Rank 0: count the step's FLOPs (unless an earlier cell did), warm up and measure under the protocol,
    each step announced to the other ranks, then tell them to stop and report."""
    import torch.distributed as dist

    from wattgap.measure.flops import Work

    assert prepared.step is not None and prepared.communication_s is not None
    step_of_rank = prepared.step

    def step() -> None:
        go.fill_(1)
        dist.broadcast(go, 0)
        step_of_rank()

    def progress(name: str) -> Any:
        return lambda fraction: outbox.put({"kind": "progress", "phase": name, "fraction": fraction})

    work = None
    if not work_known and prepared.count_step is not None:
        with prepared.context():
            work = Work.of(prepared.count_step(), prepared.samples_per_step, traffic=False)
    timer = timing.timer_for(cell.device, prepared.host_timer)
    protocol = config.protocol
    with prepared.context():
        outbox.put({"kind": "phase", "phase": "warmup"})
        warmup_iterations, warmup_s = timing.warm_up(step, timer, protocol, progress("warmup"))
        memory.reset_peak()
        outbox.put({"kind": "phase", "phase": "measure"})
        spent = prepared.communication_s()
        measured = timing.measure(step, timer, protocol, progress("measure"), seed=config.seed)
        prepared.sync()
        allreduce_s = prepared.communication_s() - spent
        go.fill_(0)
        dist.broadcast(go, 0)
    outbox.put(
        {
            "kind": "measured",
            "latencies_s": measured.latencies_s,
            "wall_s": measured.wall_s,
            "stop_reason": measured.stop_reason,
            "ci_checks": measured.ci_checks,
            "timer": timer.name,
            "warmup_iterations": warmup_iterations,
            "allreduce_s": allreduce_s,
            "parameters": prepared.parameters,
            "input_shape": list(prepared.input_shape),
            "settings": prepared.settings,
            "work": work.model_dump() if work is not None else None,
            "warmup_s": warmup_s,
        }
    )
