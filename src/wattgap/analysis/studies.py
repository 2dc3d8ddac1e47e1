"""The three studies' tables, in their shape, from stored results of any runs (a CPU run and a GPU run
from two machines included):

- ``gpu-vs-cpu`` (Democratizing AI): per model and workload, the CPU's and the accelerator's median time
  per iteration and the accelerator's speedup, each with its interval. The CPU side is its fastest
  thread count, so the speedup is over the CPU at its best.
- ``frameworks`` (Democratizing AI, "kernel fusion"): TensorFlow's latency per iteration against
  PyTorch's for the same model, device, precision and batch, eager against eager and XLA against
  torch.compile, and the geometric mean change.
- ``precisions`` (DEEP-GAP): inference throughput per precision and batch on each device (the fastest
  backend for each), and int8's throughput over the CPU's fp32 baseline at the same batch.

Intervals are percentile bootstraps of the raw samples. Where a study picks one of several cells (the
CPU's fastest thread count, a precision's fastest backend) it passes over a SUSPECT cell unless all are,
and a row resting on a SUSPECT or noisy cell carries the flag (``Row.caveats``) and says so in its note
(analysis/plausibility.py). Pure: stored results in, typed tables out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from wattgap.analysis.plausibility import NOISY, SUSPECT, caveats, passed_over, suspects_of
from wattgap.analysis.speedup import Pair, check_same_work, geomean_of, pair
from wattgap.analysis.tradeoff import Estimate, finished_cells, measure_point
from wattgap.cells import CELL_FIELDS, Cell
from wattgap.errors import ConfigError, field_error
from wattgap.results import CellResult, Run
from wattgap.text import number

CONFIDENCE = 0.95
RESAMPLES = 1000


@dataclass(frozen=True)
class Value:
    estimate: Estimate
    unit: str  # "s", "sps", "x" (a ratio) or "change" (a ratio minus 1)


@dataclass(frozen=True)
class Row:
    key: dict[str, object]
    values: dict[str, Value | None]
    note: str = ""
    caveats: list[str] = field(default_factory=list)  # of the cells the row rests on: SUSPECT, noisy


def _row(key: dict[str, object], values: dict[str, Value | None], notes: list[str], found: list[str]) -> Row:
    """A row whose values rest on cells with the caveats ``found`` (any order, repeats allowed)."""
    kept = [flag for flag in (SUSPECT, NOISY) if flag in found]
    said = [f"rests on a {' and '.join(kept)} cell"] if kept else []
    return Row(key, values, ", ".join([*notes, *said]), kept)


@dataclass(frozen=True)
class StudyTable:
    study: str
    title: str
    key_columns: list[str]
    value_columns: list[str]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)
    confidence: float = CONFIDENCE


def _key(cell: Cell, ignored: set[str]) -> tuple[tuple[str, object], ...]:
    return tuple((name, getattr(cell, name)) for name in CELL_FIELDS if name not in ignored)


def _median(result: CellResult, seed: int) -> Value:
    return Value(measure_point(result, CONFIDENCE, RESAMPLES, seed).latency_s["p50"], "s")


def _speedup(matched: Pair) -> Value:
    return Value(Estimate(matched.speedup, matched.ci_low, matched.ci_high), "x")


def _cells(runs: list[Run], study: str) -> tuple[list[CellResult], dict[str, str]]:
    """The runs' finished cells, and which of them are SUSPECT (plausibility.suspects_of)."""
    for other in runs[1:]:
        check_same_work(runs[0], other)
    return finished_cells(runs, f"study {study}"), suspects_of(runs)


def _fastest(results: list[CellResult], flagged: dict[str, str]) -> CellResult:
    """The quickest of ``results`` by median, a SUSPECT one only when all are."""
    quiet = [r for r in results if not passed_over(caveats(r, flagged))] or results
    return min(quiet, key=lambda r: r.latency.median_s if r.latency else float("inf"))


def gpu_vs_cpu(runs: list[Run]) -> StudyTable:
    cells, flagged = _cells(runs, "gpu-vs-cpu")
    cpu: dict[tuple[tuple[str, object], ...], list[CellResult]] = {}
    for result in cells:
        if result.cell.device == "cpu":
            cpu.setdefault(_key(result.cell, {"device", "threads"}), []).append(result)
    rows: list[Row] = []
    pairs: list[Pair] = []
    for seed, result in enumerate(r for r in cells if r.cell.device != "cpu"):
        candidates = cpu.get(_key(result.cell, {"device", "threads"}))
        if not candidates:
            continue
        base = _fastest(candidates, flagged)
        matched = pair(base, result, {}, seed)
        pairs.append(matched)
        key = {name: getattr(result.cell, name) for name in ("model", "workload", "backend", "precision", "batch_size")}
        rows.append(
            _row(
                key | {"device": result.cell.device},
                {
                    "CPU time": _median(base, 2 * seed),
                    "accelerator time": _median(result, 2 * seed + 1),
                    "speedup": _speedup(matched),
                },
                [f"CPU at {base.cell.threads} threads"] if len(candidates) > 1 else [],
                caveats(base, flagged) + caveats(result, flagged),
            )
        )
    if not rows:
        raise ConfigError(
            "study gpu-vs-cpu: no accelerator cell has a CPU cell of the same model, workload, backend, precision "
            "and batch among these runs"
        )
    low, high = min(p.speedup for p in pairs), max(p.speedup for p in pairs)
    notes = [f"speedups from {number(low)}x to {number(high)}x (Democratizing AI: 11x to 246x in training on a T4)"]
    return StudyTable(
        "gpu-vs-cpu",
        "GPU against CPU: median time per iteration, and the accelerator's speedup (CPU time / accelerator time)",
        ["model", "workload", "backend", "precision", "batch_size", "device"],
        ["CPU time", "accelerator time", "speedup"],
        _sorted(rows),
        notes,
    )


# TensorFlow's stacks and the PyTorch stack each is set against: eager with eager, compiled with compiled.
FRAMEWORK_PAIRS = {"tf-eager": "torch-eager", "tf-xla": "torch-compile"}


def frameworks(runs: list[Run]) -> StudyTable:
    cells, flagged = _cells(runs, "frameworks")
    torch = {_key(r.cell, set()): r for r in cells if r.cell.backend in FRAMEWORK_PAIRS.values()}
    rows: list[Row] = []
    pairs: list[Pair] = []
    for seed, result in enumerate(r for r in cells if r.cell.backend in FRAMEWORK_PAIRS):
        twin = result.cell.model_copy(update={"backend": FRAMEWORK_PAIRS[result.cell.backend]})
        base = torch.get(_key(twin, set()))
        if base is None:
            continue
        matched = pair(base, result, {}, seed)
        pairs.append(matched)
        change, low, high = matched.latency_change
        key = {name: getattr(result.cell, name) for name in ("model", "workload", "device", "precision", "batch_size")}
        rows.append(
            _row(
                key | {"stacks": f"{result.cell.backend} vs {base.cell.backend}"},
                {
                    "PyTorch time": _median(base, 2 * seed),
                    "TensorFlow time": _median(result, 2 * seed + 1),
                    "TensorFlow latency change": Value(Estimate(change, low, high), "change"),
                },
                [],
                caveats(base, flagged) + caveats(result, flagged),
            )
        )
    if not rows:
        raise ConfigError(
            "study frameworks: no tf-eager or tf-xla cell has a torch-eager or torch-compile cell with the same "
            "other fields among these runs"
        )
    mean, low_mean, high_mean = (value or 0.0 for value in geomean_of(pairs, "latency", CONFIDENCE))
    notes = [
        f"geometric mean TensorFlow latency change over {len(pairs)} pairs: {mean - 1:+.1%} "
        f"({CONFIDENCE:.0%} CI {low_mean - 1:+.1%}..{high_mean - 1:+.1%}); Democratizing AI: about -15% in inference"
    ]
    return StudyTable(
        "frameworks",
        "TensorFlow against PyTorch: median time per iteration, and TensorFlow's latency change",
        ["model", "workload", "device", "precision", "batch_size", "stacks"],
        ["PyTorch time", "TensorFlow time", "TensorFlow latency change"],
        _sorted(rows),
        notes,
    )


def precisions(runs: list[Run]) -> StudyTable:
    finished, flagged = _cells(runs, "precisions")
    best: dict[tuple[str, str, int, str], CellResult] = {}
    for result in (r for r in finished if r.cell.workload == "infer"):
        cell = result.cell
        slot = (cell.model, cell.device, cell.batch_size, cell.precision)
        if slot not in best or _fastest([best[slot], result], flagged) is result:
            best[slot] = result
    names = [p for p in ("fp32", "tf32", "bf16", "fp16", "int8") if any(slot[3] == p for slot in best)]
    rows: list[Row] = []
    for seed, (model, device, batch) in enumerate(sorted({slot[:3] for slot in best})):
        values: dict[str, Value | None] = {}
        backends, found = [], []
        for name in names:
            held = best.get((model, device, batch, name))
            if held is not None:
                values[name] = Value(measure_point(held, CONFIDENCE, RESAMPLES, seed).throughput_sps, "sps")
                backends.append(f"{name} {held.cell.backend}")
                found += caveats(held, flagged)
            else:
                values[name] = None
        int8, baseline = best.get((model, device, batch, "int8")), best.get((model, "cpu", batch, "fp32"))
        values["int8 / CPU fp32"] = _speedup(pair(baseline, int8, {}, seed)) if int8 and baseline else None
        found += caveats(baseline, flagged) if int8 and baseline else []
        rows.append(_row({"model": model, "device": device, "batch_size": batch}, values, backends, found))
    if not rows:
        raise ConfigError("study precisions: these runs hold no finished inference cells")
    notes = ["each precision's fastest backend at that batch (the note names it); throughput = batch / median"]
    if "int8" not in names:
        notes.append("no int8 cell among these runs: int8 / CPU fp32 is empty")
    ratios = [v.estimate.value for row in rows if (v := row.values["int8 / CPU fp32"]) is not None]
    if ratios:
        notes.append(f"int8 reaches {number(max(ratios))}x the CPU's fp32 throughput (DEEP-GAP: up to 58x on a T4)")
    return StudyTable(
        "precisions",
        "inference throughput per precision and batch (samples/s), and int8 over the CPU's fp32 at the same batch",
        ["model", "device", "batch_size"],
        [*names, "int8 / CPU fp32"],
        rows,
        notes,
    )


def _sorted(rows: list[Row]) -> list[Row]:
    return sorted(rows, key=lambda row: [str(v) if not isinstance(v, int) else f"{v:09d}" for v in row.key.values()])


STUDIES: dict[str, Callable[[list[Run]], StudyTable]] = {
    "gpu-vs-cpu": gpu_vs_cpu,
    "frameworks": frameworks,
    "precisions": precisions,
}


def study(name: str, runs: list[Run]) -> StudyTable:
    if name not in STUDIES:
        raise field_error("study", name, STUDIES)
    return STUDIES[name](runs)
