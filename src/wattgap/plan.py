"""Expand a sweep into cells. Cells the hardware or backend cannot run become skipped cells with their
reason, decided here before anything runs. Backend and workload names are checked here, against the
registries, so that adding either is one module and one registry line (the config stays pure data)."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from wattgap.backends import BACKENDS
from wattgap.backends.base import Backend
from wattgap.cells import Cell
from wattgap.config import MAX_BATCH_SIZE, Axis, SweepConfig
from wattgap.devices import Hardware
from wattgap.errors import ConfigError, field_error
from wattgap.measure.protocol import PROBE_ITERS
from wattgap.models import MODELS
from wattgap.models.sources import FRAMEWORKS, kind_of
from wattgap.workloads import WORKLOADS, Workload


@dataclass(frozen=True)
class Plan:
    cells: tuple[Cell, ...]  # every cell, in sweep order, skipped ones included
    skipped: dict[str, str]  # cell_id -> reason

    @property
    def runnable(self) -> tuple[Cell, ...]:
        return tuple(c for c in self.cells if c.cell_id not in self.skipped)


def _resolve_device(device: str, hardware: Hardware) -> str:
    return hardware.best_device() if device == "auto" else device


def _check_names(field: str, names: Iterable[str], registry: Mapping[str, object]) -> None:
    for index, name in enumerate(names):
        if name not in registry:
            raise field_error(f"{field}[{index}]", name, registry)


COMPONENTS: dict[Axis, Mapping[str, Backend | Workload]] = {"backends": BACKENDS, "workloads": WORKLOADS}


def check(config: SweepConfig) -> None:
    """Raise a one-line ConfigError for a backend or workload that no registry holds, or settings that
    its own settings model refuses, that name no backend or workload of the sweep, or that do not fit the
    rest of the sweep."""
    _check_names("backends", config.backends, BACKENDS)
    _check_names("workloads", config.workloads, WORKLOADS)
    for axis, registry in COMPONENTS.items():
        names: list[str] = getattr(config, axis)
        for name in getattr(config, f"{axis[:-1]}_settings"):
            if name not in registry:
                raise field_error(f"{axis}.{name}", name, registry)
            if name not in names:
                config.settings(axis, name, registry[name].settings_model)  # a setting it lacks is named first
                raise ConfigError(
                    f"{axis}.{name}: settings given for {name}, which this sweep does not run ({axis}: "
                    f"{', '.join(names)})"
                )
        for name in names:
            conflict = config.settings(axis, name, registry[name].settings_model).conflict(config)
            if conflict:
                raise ConfigError(f"{axis}.{name}.{conflict}")


def expand(config: SweepConfig, hardware: Hardware, frameworks: Mapping[str, str] | None = None) -> Plan:
    """The cells of ``config`` on ``hardware``: a pure function of its arguments. ``frameworks``: each
    user model's framework where a probe learnt it (a callable's; a file's is known from its kind)."""
    check(config)
    devices = list(dict.fromkeys(_resolve_device(d, hardware) for d in config.devices))
    cpu_threads = config.threads or [hardware.physical_cores]
    cells: list[Cell] = []
    skipped: dict[str, str] = {}
    seen: set[str] = set()
    own_axes = {workload: WORKLOADS[workload].axes(config) for workload in config.workloads}
    axes = (
        (model, workload, backend, device, precision, batch, memory_format, extra)
        for model, workload, backend, device, precision in itertools.product(
            config.models, config.workloads, config.backends, devices, config.precisions
        )
        for batch in config.batch_sizes_for(workload)
        for memory_format in config.memory_formats
        for extra in own_axes[workload]
    )
    for model, workload, backend, device, precision, batch, memory_format, extra in axes:
        for threads in cpu_threads if device == "cpu" else [None]:
            cell = Cell(
                model=model,
                workload=workload,
                backend=backend,
                device=device,
                precision=precision,
                batch_size=batch,
                threads=threads,
                memory_format=memory_format,
                **extra,
            )
            if cell.cell_id in seen:
                continue
            seen.add(cell.cell_id)
            cells.append(cell)
            chosen = BACKENDS[backend]
            framework = (frameworks or {}).get(model) or FRAMEWORKS.get(kind_of(model) or "")
            reason = (
                hardware.unusable_reason(device)
                or WORKLOADS[workload].cell_reason(cell, hardware)
                or chosen.source_reason(model, framework)
                or chosen.unsupported_reason(cell, hardware, WORKLOADS[cell.workload].needs)
                or chosen.settings_reason(cell, config)
                or _model_reason(cell, config)
            )
            if reason:
                skipped[cell.cell_id] = reason
    return Plan(tuple(cells), skipped)


def _model_reason(cell: Cell, config: SweepConfig) -> str:
    """Why a zoo model cannot run this cell whatever the backend ('' when it can): training a batch-norm
    model where its last stage holds one value per channel."""
    spec = MODELS.get(cell.model)
    if spec is None or WORKLOADS[cell.workload].needs.mode == "infer":
        return ""
    return spec.train_reason(config.image_size, cell.batch_size)


def schedule(cells: Sequence[Cell], config: SweepConfig) -> list[tuple[Cell, int]]:
    """Every process of a run's ``cells`` as (cell, repeat), in the order they run: a pure function of its
    arguments, so an interrupted run resumes in the same order. ``sweep``: round after round, each round
    every cell in sweep order once (a cell's repeats minutes apart, as DEEP-GAP's sweeps); ``interleaved``:
    all of them in one random order seeded by the config's seed, a cell's repeats numbered as they come,
    so that no group of cells owns a quiet or a noisy period of the machine."""
    rounds = max((config.repeats_for(cell.workload) for cell in cells), default=1)
    slots = [cell for repeat in range(rounds) for cell in cells if repeat < config.repeats_for(cell.workload)]
    if config.order == "interleaved":
        random.Random(config.seed).shuffle(slots)
    seen: Counter[str] = Counter()
    ordered = []
    for cell in slots:
        ordered.append((cell, seen[cell.cell_id]))
        seen[cell.cell_id] += 1
    return ordered


def search_bound(config: SweepConfig) -> str:
    """What a batch search of ``config`` will do, said before it starts: how far it can go, what stops it
    on each device, and what each probe costs."""
    doublings = MAX_BATCH_SIZE.bit_length()  # 1, 2, 4, ... up to the limit
    bounds = []
    if any(device != "cpu" for device in config.devices):
        bounds.append("on a GPU, its memory")
    if "cpu" in config.devices or "auto" in config.devices:
        cap = config.max_host_memory_bytes
        bounds.append(
            f"on the CPU, --max-host-memory-gb {cap / 2**30:g}"
            if cap
            else "on the CPU, nothing but the machine's memory (no --max-host-memory-gb: a probe may take minutes "
            "and all of it)"
        )
    return (
        f"batch search: each configuration's probes double from batch 1 up to {MAX_BATCH_SIZE} (at most "
        f"{doublings} probes, then bisection), each 1 warmup and {PROBE_ITERS} timed iterations, until one runs "
        f"out of memory ({'; '.join(bounds)}); the largest batch that fits is then measured in full"
    )


def next_probe(probes: Mapping[int, str], limit: int = MAX_BATCH_SIZE) -> int | None:
    """The next batch size to try in a search for the largest batch that runs, given the statuses of the
    probes so far (batch -> status), or None when the search is over. The batch doubles from 1 until a
    probe runs out of memory (or ``limit`` is reached), then the gap between the largest batch that ran and
    the smallest that did not is bisected down to neighbours. Any other outcome (a failure, a timeout, a
    crash, a skip) ends the search: memory is not what stopped it, so a larger batch proves nothing."""
    if not probes:
        return 1
    if any(status not in ("ok", "oom") for status in probes.values()):
        return None
    ran = max((batch for batch, status in probes.items() if status == "ok"), default=0)
    failed = min((batch for batch, status in probes.items() if status == "oom"), default=None)
    if failed is None:
        return None if ran >= limit else min(2 * ran, limit)
    if failed - ran <= 1:  # neighbours (or batch 1 does not fit, or a larger batch ran than one that did not)
        return None
    return (ran + failed) // 2
