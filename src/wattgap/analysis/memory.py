"""Peak memory against batch size: a polynomial least-squares fit per configuration, its degree chosen by
leave-one-out cross-validation (one-standard-error rule), prediction intervals, and the largest batch
predicted to fit a budget.

Memory is the device's peak allocation on GPUs and the cell process's peak RSS elsewhere (which includes
the framework's own footprint: the fit's constant term). The largest batch within the budget is read off
the upper prediction bound (the conservative answer) and off the fitted curve. Out-of-memory cells of
the run are set against the prediction. Pure: stored results in, typed results out."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from wattgap.cells import CELL_FIELDS
from wattgap.errors import ConfigError, field_error
from wattgap.results import CellResult, Run

MAX_DEGREE = 3
SEARCH_LIMIT = 65_536  # the largest batch a sweep may ask for (config.MAX_BATCH_SIZE)


@dataclass(frozen=True)
class Fit:
    degree: int
    coefficients: list[float]  # bytes, constant term first
    loocv_rmse_bytes: float | None  # None with too few points to leave one out
    r2: float | None
    residual_dof: int

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return np.polynomial.polynomial.polyval(batch, self.coefficients)


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


def memory_of(result: CellResult) -> tuple[float | None, str]:
    if result.memory.device_peak_allocated_bytes:
        return float(result.memory.device_peak_allocated_bytes), "device peak allocated"
    rss = result.memory.host_peak_rss_bytes
    return (float(rss) if rss else None), "host peak RSS"


def _design(batch: np.ndarray, degree: int) -> np.ndarray:
    return np.vander(batch.astype(float), degree + 1, increasing=True)


def _loocv(batch: np.ndarray, memory: np.ndarray, degree: int) -> np.ndarray | None:
    """Squared errors of the leave-one-out predictions; None when a fold would be underdetermined."""
    if len(batch) - 1 < degree + 1:
        return None
    errors = []
    for left in range(len(batch)):
        keep = np.arange(len(batch)) != left
        coefficients, *_ = np.linalg.lstsq(_design(batch[keep], degree), memory[keep], rcond=None)
        errors.append(float((_design(batch[left : left + 1], degree) @ coefficients)[0] - memory[left]) ** 2)
    return np.asarray(errors)


def fit_memory(batch: np.ndarray, memory: np.ndarray) -> Fit:
    """A polynomial of degree 0 to 3 (at most points - 1), chosen by leave-one-out cross-validation with
    the one-standard-error rule: the lowest degree whose mean squared error is within one standard error
    of the lowest (a higher degree must earn its coefficient; noise alone often favours it by a little).
    With points enough for no fold, degree 1 (a line through two points)."""
    distinct = len(np.unique(batch))
    scored = {d: _loocv(batch, memory, d) for d in range(0, min(MAX_DEGREE, distinct - 1) + 1)}
    valid = {d: e for d, e in scored.items() if e is not None}
    if valid:
        best = min(valid, key=lambda d: float(valid[d].mean()))
        limit = valid[best].mean() + valid[best].std(ddof=1) / np.sqrt(len(valid[best]))
        degree = min(d for d, e in valid.items() if e.mean() <= limit)
    else:
        degree = min(1, distinct - 1)
    errors = valid.get(degree)
    rmse = float(np.sqrt(errors.mean())) if errors is not None else None
    coefficients, *_ = np.linalg.lstsq(_design(batch, degree), memory, rcond=None)
    residuals = memory - _design(batch, degree) @ coefficients
    total = float(np.sum(np.square(memory - memory.mean())))
    r2 = 1 - float(np.sum(np.square(residuals))) / total if total > 0 else None
    return Fit(degree, [float(c) for c in coefficients], rmse, r2, len(batch) - degree - 1)


def prediction_interval(
    fit: Fit, batch: np.ndarray, memory: np.ndarray, at: np.ndarray, confidence: float
) -> np.ndarray | None:
    """Lower and upper bounds (2 x len(at)) of the ordinary least-squares prediction interval; None
    without residual degrees of freedom."""
    from scipy import stats

    if fit.residual_dof < 1:
        return None
    design = _design(batch, fit.degree)
    residuals = memory - design @ np.asarray(fit.coefficients)
    sigma2 = float(np.sum(np.square(residuals))) / fit.residual_dof
    inverse = np.linalg.pinv(design.T @ design)
    points = _design(at, fit.degree)
    spread = np.sqrt(sigma2 * (1 + np.einsum("ij,jk,ik->i", points, inverse, points)))
    t = float(stats.t.ppf(0.5 + confidence / 2, fit.residual_dof))
    centre = points @ np.asarray(fit.coefficients)
    return np.vstack([centre - t * spread, centre + t * spread])


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
            key = tuple((name, getattr(result.cell, name)) for name in CELL_FIELDS if name != "batch_size")
            groups.setdefault(key, []).append(result)
    if not groups:
        raise ConfigError(f"memory: run {run.run_id} holds no finished or out-of-memory cells")
    return [_curve(dict(key), results, run, budget_bytes, confidence) for key, results in groups.items()]


def _device_memory(run: Run, device: str) -> float | None:
    environment = run.environment
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        gpus = environment.get("gpus", [])
        return float(gpus[index]["memory_bytes"]) if index < len(gpus) else None
    total = environment.get("memory_bytes")
    return float(total) if total else None


def _curve(
    key: dict[str, object], results: list[CellResult], run: Run, budget: float | None, confidence: float
) -> MemoryCurve:
    measured = [(r.cell.batch_size, *memory_of(r)) for r in results if r.status == "ok"]
    measured = [(b, m, s) for b, m, s in measured if m is not None]
    source = measured[0][2] if measured else "host peak RSS"
    budget = budget if budget is not None else _device_memory(run, str(key["device"]))
    notes = []
    batch = np.array([b for b, _, _ in measured], dtype=float)
    memory = np.array([m for _, m, _ in measured], dtype=float)
    if len(np.unique(batch)) < 2:
        notes.append("fewer than two batch sizes with a memory reading: no fit")
        points = [MemoryPoint(r.cell.batch_size, memory_of(r)[0], float("nan"), None, r.status) for r in results]
        return MemoryCurve(key, source, None, points, budget, None, None, notes)
    fit = fit_memory(batch, memory)
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
    if budget is not None:
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
    for point in points:
        if point.status == "oom" and budget is not None and point.predicted_bytes <= budget:
            notes.append(
                f"batch {point.batch_size} ran out of memory where the fit predicts "
                f"{point.predicted_bytes / 2**30:.3g} GiB, within the budget: the allocator's fragmentation or "
                "other processes take the rest"
            )
    return MemoryCurve(key, source, fit, points, budget, largest, largest_fit, notes)
