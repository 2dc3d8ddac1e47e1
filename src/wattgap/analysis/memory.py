"""Peak memory against batch size: a polynomial least-squares fit per configuration, its degree chosen by
leave-one-out cross-validation (one-standard-error rule), prediction intervals, and the largest batch
predicted to fit a budget.

Memory is the device's peak allocation on GPUs and the cell process's peak RSS elsewhere (which includes
the framework's own footprint: the fit's constant term). The largest batch within the budget is read off
the upper prediction bound (the conservative answer) and off the fitted curve. Out-of-memory cells of
the run are set against the prediction. A run whose batch was searched (``batch_sizes: max``) also says
per configuration the largest batch that ran, and why the search ended. Pure: stored results in, typed
results out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wattgap.analysis.regression import Fit, fit_polynomial, prediction_interval
from wattgap.cells import curve_key
from wattgap.config import MAX_BATCH_SIZE
from wattgap.errors import ConfigError, field_error
from wattgap.machines import Machine
from wattgap.plan import next_probe
from wattgap.results import CellResult, Run
from wattgap.text import number

SEARCH_LIMIT = MAX_BATCH_SIZE  # the largest batch a sweep may ask for


@dataclass(frozen=True)
class BatchLimit:
    """What a batch search found for one configuration."""

    key: dict[str, object]
    largest_batch: int | None  # the largest probe that ran; None when batch 1 did not
    smallest_failed: int | None  # the smallest probe that ran out of memory
    exact: bool  # largest_batch is the limit: the next batch ran out of memory, or the sweep's maximum ran
    probes: list[tuple[int, str]]  # (batch, status) in the order they ran
    ended: str  # why the search ended, in words


@dataclass(frozen=True)
class MemoryPoint:
    batch_size: int
    measured_bytes: float | None  # None for a cell that ran out of memory
    predicted_bytes: float
    interval_bytes: tuple[float, float] | None  # the prediction interval; None without residual freedom
    status: str


@dataclass(frozen=True)
class MemoryCurve:
    key: dict[str, object]
    source: str  # "device peak allocated" or "host peak RSS"
    fit: Fit | None  # None with fewer than two measured batch sizes
    points: list[MemoryPoint]
    budget_bytes: float | None
    largest_batch: int | None  # by the upper prediction bound (or the fit when there is no interval)
    largest_batch_fit: int | None  # by the fitted curve
    notes: list[str] = field(default_factory=list)
    search: BatchLimit | None = None  # the batch search's outcome, in a run that searched


def memory_of(result: CellResult) -> tuple[float | None, str]:
    if result.memory.device_peak_allocated_bytes:
        return float(result.memory.device_peak_allocated_bytes), "device peak allocated"
    rss = result.memory.host_peak_rss_bytes
    return (float(rss) if rss else None), "host peak RSS"


def _largest(values: np.ndarray, budget: float) -> int | None:
    """The largest batch b such that every batch up to b stays within the budget (values[i] is batch
    i + 1); None when batch 1 does not."""
    over = np.nonzero(values > budget)[0]
    if over.size == 0:
        return len(values)
    return int(over[0]) if over[0] > 0 else None


def memory_curves(run: Run, budget_bytes: float | None = None, confidence: float = 0.95) -> list[MemoryCurve]:
    """A fit per configuration of ``run`` (cells that differ only in batch size), with the budget: the
    one given, else the device's memory (the GPU's on CUDA cells, the host's otherwise) from the run's
    recorded environment."""
    if budget_bytes is not None and not budget_bytes > 0:
        raise field_error("--budget-gb", budget_bytes / 2**30, "a positive number of GiB")
    groups: dict[tuple[tuple[str, object], ...], list[CellResult]] = {}
    for result in run.results:
        if result.status in ("ok", "oom"):
            groups.setdefault(curve_key(result.cell), []).append(result)
    if not groups:
        raise ConfigError(f"memory: run {run.run_id} holds no finished or out-of-memory cells")
    searches = {tuple(limit.key.items()): limit for limit in batch_limits(run)}
    return [
        _curve(dict(key), results, run, budget_bytes, confidence, searches.get(key)) for key, results in groups.items()
    ]


def batch_limits(run: Run) -> list[BatchLimit]:
    """Per configuration of a run that searched its batch (``batch_sizes: max``), the largest batch that
    ran and why the search ended; nothing for a run with a fixed list of batch sizes."""
    if not run.config.batch_search:
        return []
    groups: dict[tuple[tuple[str, object], ...], list[CellResult]] = {}
    for cell in run.cells:  # a configuration whose first probe has no result yet is one too
        groups.setdefault(curve_key(cell), [])
    for result in run.results:
        groups[curve_key(result.cell)].append(result)
    return [_limit(dict(key), results) for key, results in groups.items()]


def _limit(key: dict[str, object], results: list[CellResult]) -> BatchLimit:
    statuses = {r.cell.batch_size: r.status for r in results}
    probes: list[tuple[int, str]] = []  # in the order the search made them (its answer was measured last)
    while (batch := next_probe(dict(probes))) in statuses:
        probes.append((batch, statuses.pop(batch)))
    probes += statuses.items()  # none, unless the search was not wattgap's
    unfinished = next_probe(dict(probes)) is not None
    ran = max((b for b, status in probes if status == "ok"), default=None)
    failed = min((b for b, status in probes if status == "oom"), default=None)
    other = next((r for r in results if r.status not in ("ok", "oom")), None)
    exact = False
    if other is not None:
        at_least = f"; the limit is at least {ran}" if ran else ""
        ended = f"batch {other.cell.batch_size} {other.status}: {other.reason}{at_least}"
    elif unfinished:
        ended = "interrupted before its end: `wattgap run --resume RUN_ID` goes on with it"
    elif failed is None:
        exact = ran == SEARCH_LIMIT
        ended = f"batch {ran} ran, the largest a sweep takes"
    elif ran is None:
        ended = f"batch {failed} ran out of memory: nothing fits"
    elif ran > failed:
        ended = f"batch {ran} ran though batch {failed} ran out of memory: memory use is not monotonic here"
    else:
        exact = failed == ran + 1
        ended = f"batch {ran} ran and batch {failed} ran out of memory"
    return BatchLimit(key, ran, failed, exact, probes, ended)


def _device_memory(run: Run, machine: Machine, device: str) -> float | None:
    """The memory a cell on ``device`` of ``machine`` may use: the GPU's, or the host cap of the run, or
    the host's."""
    if device.startswith("cuda"):
        gpu = machine.gpu(device)
        return float(gpu.memory_bytes) if gpu is not None and gpu.memory_bytes else None
    if run.config.max_host_memory_bytes is not None:
        return float(run.config.max_host_memory_bytes)
    return float(machine.memory_bytes) if machine.memory_bytes else None


def _curve(
    key: dict[str, object],
    results: list[CellResult],
    run: Run,
    budget: float | None,
    confidence: float,
    search: BatchLimit | None,
) -> MemoryCurve:
    measured = [(r.cell.batch_size, *memory_of(r)) for r in results if r.status == "ok"]
    measured = [(b, m, s) for b, m, s in measured if m is not None]
    source = measured[0][2] if measured else "host peak RSS"
    notes = []
    if budget is None:  # the machines its cells ran on (several, when an executor spread them): the smallest
        machines = {r.machine_id: run.machine_of(r) for r in results}
        if len(machines) > 1:
            notes.append(f"its cells ran on {len(machines)} machines: the budget is the smallest one's")
        budgets = [_device_memory(run, machine, str(key["device"])) for machine in machines.values()]
        budget = min((b for b in budgets if b is not None), default=None)
    batch = np.array([b for b, _, _ in measured], dtype=float)
    memory = np.array([m for _, m, _ in measured], dtype=float)
    if len(np.unique(batch)) < 2:
        notes.append("fewer than two batch sizes with a memory reading: no fit")
        points = [MemoryPoint(r.cell.batch_size, memory_of(r)[0], float("nan"), None, r.status) for r in results]
        return MemoryCurve(key, source, None, points, budget, None, None, notes, search)
    fit = fit_polynomial(batch, memory)
    at = np.array(sorted({r.cell.batch_size for r in results}), dtype=float)
    bounds = prediction_interval(fit, batch, memory, at, confidence)
    if bounds is None:
        notes.append("as many coefficients as batch sizes: no prediction interval (measure more batch sizes)")
    by_batch = {r.cell.batch_size: r for r in results}
    points = []
    for index, value in enumerate(at):
        result = by_batch[int(value)]
        interval = (float(bounds[0][index]), float(bounds[1][index])) if bounds is not None else None
        points.append(
            MemoryPoint(
                int(value),
                memory_of(result)[0] if result.status == "ok" else None,
                float(fit.predict(value)),
                interval,
                result.status,
            )
        )
    largest = largest_fit = None
    explains = fit.degree >= 1 and fit.r2 is not None and fit.r2 >= MIN_R2
    if budget is not None and not explains:
        r2 = "undefined" if fit.r2 is None else f"{fit.r2:.2f}"
        notes.append(
            f"the fit explains little of how memory grows with batch (degree {fit.degree}, R^2 {r2}): no largest "
            "batch is read off it; measure a wider range of batches"
        )
    if budget is not None and explains:
        grid = np.arange(1, SEARCH_LIMIT + 1, dtype=float)
        largest_fit = _largest(fit.predict(grid), budget)
        upper = prediction_interval(fit, batch, memory, grid, confidence)
        largest = _largest(upper[1], budget) if upper is not None else largest_fit
        if largest_fit == SEARCH_LIMIT:
            notes.append(f"the fit stays within the budget up to batch {SEARCH_LIMIT}, the largest a sweep takes")
        if largest is not None and largest > 4 * batch.max():
            notes.append(
                f"batch {largest} is {largest / batch.max():.0f}x beyond the largest measured: an extrapolation"
            )
    failed = min((point.batch_size for point in points if point.status == "oom"), default=None)
    if failed is not None:  # an observation outranks a fit: nothing at or past a batch that ran out fits
        capped = [value if value is None else min(value, failed - 1) or None for value in (largest, largest_fit)]
        if capped != [largest, largest_fit]:
            notes.append(f"batch {failed} ran out of memory: the answer stays below it, whatever the fit says")
        largest, largest_fit = capped
    for point in points:
        if point.status == "oom" and budget is not None and point.predicted_bytes <= budget:
            why = (
                "the allocator's fragmentation or other processes take the rest"
                if source.startswith("device")
                else "the host cap counts every process of the cell, the framework's own memory included, and "
                "catches peaks between readings that the stored peak of a finished cell does not show"
            )
            notes.append(
                f"batch {point.batch_size} ran out of memory where the fit predicts "
                f"{number(point.predicted_bytes / 2**30)} GiB, within the budget: {why}"
            )
    return MemoryCurve(key, source, fit, points, budget, largest, largest_fit, notes, search)


MIN_R2 = 0.5  # a fit that explains less of memory's variation than this answers nothing
