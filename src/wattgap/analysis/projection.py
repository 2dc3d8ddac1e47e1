"""Projecting memory needs (Democratizing AI: "projecting requirements through 2025 using polynomial
regression"): the memory of data-centre accelerators and the memory notable models need, by year, each
fitted by a polynomial in the year, and the year the models' curve outgrows one accelerator's.

The fits are on log10(bytes). Both series grow by factors, not by amounts: a linear-scale fit would be
driven by the last few points alone, its residuals would grow with the values (one constant error band
would be wrong at both ends), and it could project negative memory. On the log scale a straight line is
exponential growth, and a quadratic (chosen by leave-one-out cross-validation, as everywhere in wattgap)
says whether that growth speeds up or slows down. The degree stops at 2 here: leave-one-out measures how
well a curve fills gaps between the years, not how it extrapolates, and a cubic's projection turns with
the sign of a leading coefficient a dozen points cannot pin (on the shipped data a cubic wins the
cross-validation for accelerators by 2% and projects 1 GB for 2030).

A model needs ``weight_bytes`` per parameter to hold its weights (2: fp16 or bf16) and
``training_bytes`` per parameter to train with Adam in mixed precision (16: fp16 weights and gradients,
fp32 master weights and Adam's two moments, as the ZeRO paper counts; activations not included)."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from wattgap.analysis.regression import Fit, fit_polynomial, prediction_interval
from wattgap.errors import ConfigError, field_error

COLUMNS = ("kind", "name", "year", "memory_bytes", "parameters", "source")
KINDS = ("accelerator", "model")
YEARS = (1980, 2100)
MAX_DEGREE = 2  # see the module's docstring


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    year: int
    memory_bytes: float | None
    parameters: float | None
    source: str


@dataclass(frozen=True)
class Series:
    name: str  # "accelerator memory", "model weights", "model training"
    years: list[int]  # of the data points
    bytes_: list[float]
    fit: Fit  # of log10(bytes) against the year
    projected: list[tuple[int, float, float | None, float | None]]  # year, bytes, interval low, high


@dataclass(frozen=True)
class Projection:
    source: str
    until: int
    weight_bytes: float
    training_bytes: float
    confidence: float
    series: list[Series]
    outgrows: dict[str, int | None]  # series name -> first year its fit exceeds the accelerators' fit
    notes: list[str] = field(default_factory=list)


def _number(row: dict[str, str], column: str, line: int, source: str) -> float | None:
    text = (row.get(column) or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise field_error(f"{source}: line {line}: {column}", text, "a positive number") from None
    if not value > 0 or not np.isfinite(value):
        raise field_error(f"{source}: line {line}: {column}", text, "a positive number")
    return value


def load_entries(path: str | Path | None = None) -> tuple[list[Entry], str]:
    """The shipped dataset (resources/memory_trends.csv), or a user's CSV in the same columns; every row
    needs its source. Bad rows raise a one-line ConfigError naming the line and the column."""
    if path is None:
        text = resources.files("wattgap.resources").joinpath("memory_trends.csv").read_text(encoding="utf-8")
        source = "the shipped dataset (resources/memory_trends.csv)"
    else:
        file = Path(path)
        if not file.is_file():
            raise ConfigError(f"--data: file {str(path)!r} does not exist")
        text, source = file.read_text(encoding="utf-8", errors="replace"), str(path)
    reader = csv.DictReader(text.splitlines())
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ConfigError(f"--data: {source!r} lacks column(s) {', '.join(missing)}; the columns: {', '.join(COLUMNS)}")
    entries = []
    for line, row in enumerate(reader, start=2):
        where = f"--data: line {line}"
        kind = (row.get("kind") or "").strip()
        if kind not in KINDS:
            raise field_error(f"{where}: kind", kind, KINDS)
        year_text = (row.get("year") or "").strip()
        if not year_text.isdigit() or not YEARS[0] <= int(year_text) <= YEARS[1]:
            raise field_error(f"{where}: year", year_text, f"a year from {YEARS[0]} to {YEARS[1]}")
        if not (row.get("source") or "").strip():
            raise field_error(f"{where}: source", "", "where the figure comes from (every row needs one)")
        needed = "memory_bytes" if kind == "accelerator" else "parameters"
        value = _number(row, needed, line, "--data")
        if value is None:
            raise field_error(f"{where}: {needed}", "", f"a positive number (a {kind} row needs {needed})")
        entries.append(
            Entry(
                kind,
                (row.get("name") or "").strip(),
                int(year_text),
                value if kind == "accelerator" else None,
                value if kind == "model" else None,
                row["source"].strip(),
            )
        )
    return entries, source


def _series(name: str, years: np.ndarray, values: np.ndarray, grid: np.ndarray, confidence: float) -> Series:
    logs = np.log10(values)
    fit = fit_polynomial(years, logs, center=True, max_degree=MAX_DEGREE)
    central = fit.predict(grid)
    bounds = prediction_interval(fit, years, logs, grid, confidence)
    projected = [
        (
            int(year),
            float(10 ** central[i]),
            float(10 ** bounds[0][i]) if bounds is not None else None,
            float(10 ** bounds[1][i]) if bounds is not None else None,
        )
        for i, year in enumerate(grid)
    ]
    return Series(name, [int(y) for y in years], [float(v) for v in values], fit, projected)


def project(
    entries: list[Entry],
    source: str = "",
    until: int = 2030,
    weight_bytes: float = 2.0,
    training_bytes: float = 16.0,
    confidence: float = 0.95,
) -> Projection:
    if not weight_bytes > 0:
        raise field_error("--weight-bytes", weight_bytes, "a positive number of bytes per parameter")
    if not training_bytes > 0:
        raise field_error("--training-bytes", training_bytes, "a positive number of bytes per parameter")
    accelerators = [e for e in entries if e.kind == "accelerator"]
    models = [e for e in entries if e.kind == "model"]
    for kind, rows in (("accelerator", accelerators), ("model", models)):
        if len({e.year for e in rows}) < 2:
            raise ConfigError(f"--data: {kind} rows span fewer than two years; a fit needs at least two")
    first = min(e.year for e in entries)
    if not first < until <= YEARS[1]:
        raise field_error("--until", until, f"a year after the data's first ({first}) and up to {YEARS[1]}")
    grid = np.arange(first, until + 1, dtype=float)
    a_years = np.array([e.year for e in accelerators], dtype=float)
    m_years = np.array([e.year for e in models], dtype=float)
    parameters = np.array([e.parameters for e in models], dtype=float)
    series = [
        _series(
            "accelerator memory", a_years, np.array([e.memory_bytes for e in accelerators], float), grid, confidence
        ),
        _series("model weights", m_years, parameters * weight_bytes, grid, confidence),
        _series("model training", m_years, parameters * training_bytes, grid, confidence),
    ]
    device = series[0].fit.predict(grid)
    outgrows: dict[str, int | None] = {}
    notes = []
    for need in series[1:]:
        above = np.nonzero(need.fit.predict(grid) > device)[0]
        outgrows[need.name] = int(grid[above[0]]) if above.size else None
        if above.size and above[0] == 0:
            notes.append(f"{need.name} is above one accelerator's memory from the first year of the data, {first}")
    return Projection(source, until, weight_bytes, training_bytes, confidence, series, outgrows, notes)
