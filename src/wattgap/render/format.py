"""Numbers for people: significant digits in fixed-point form (never ``1e+03``), with SI or binary
prefixes, rolling over to the next prefix when rounding reaches it."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from wattgap.text import number, visible

if TYPE_CHECKING:
    from wattgap.measure.stats import LatencyStats
    from wattgap.results import CellResult


def quantity(value: float | None, unit: str, base: float = 1000.0) -> str:
    """``value`` with the largest prefix that keeps it under ``base`` after rounding: "1.02 KiB", not
    "1e+03 B"; "-" for None."""
    if value is None:
        return "-"
    prefixes = ["", "k", "M", "G", "T", "P", "E"] if base == 1000.0 else ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
    for prefix in prefixes[:-1]:
        if abs(float(number(value))) < base:
            return f"{number(value)} {prefix}{unit}"
        value /= base
    return f"{number(value)} {prefixes[-1]}{unit}"


def seconds(value: float | None) -> str:
    """A duration in the largest of s, ms, µs and ns in which it rounds to at least 1."""
    if value is None:
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(float(number(value / scale))) >= 1:
            return f"{number(value / scale)} {unit}"
    return f"{number(value / 1e-9)} ns"


def interval(latency: LatencyStats | None) -> str:
    """The interval of a median as its distance below and above it, in percent: "±0.5%" when the two
    round alike, else "-3.1/+12%" (an interval need not be symmetric, and never goes below zero)."""
    if latency is None or latency.median_s <= 0:
        return "-"
    below = (latency.median_s - latency.median_ci_low_s) / latency.median_s
    above = (latency.median_ci_high_s - latency.median_s) / latency.median_s
    low_text, high_text = _percent(below), _percent(above)
    return f"±{low_text}%" if low_text == high_text else f"-{low_text}/+{high_text}%"


def covered(latency: LatencyStats | None) -> str:
    """What an interval of the median covers, as a short label beside it: " (between runs)" when widened by
    the machine's drift between runs, " (1 process)" when it is one window's own, "" for several processes."""
    if latency is None:
        return ""
    if latency.drift is not None:
        return " (between runs)"
    return "" if latency.repeats > 1 else " (1 process)"


def _percent(share: float) -> str:
    return number(max(0.0, share) * 100, 2)


def plain(value: object) -> str:
    """Foreign text (names, paths, error messages) made safe for a terminal: control characters,
    escape sequences among them, are shown as escapes instead of being executed (wattgap.text)."""
    return visible(value, keep="\n\t")


def result_notes(result: CellResult, suspect: str = "") -> str:
    """What a reader should know of a cell beside its figures: why it did not run, or whether it is
    suspect, noisy, stopped early, degraded, and how its precision was applied."""
    if result.status != "ok":
        return result.reason
    if result.probe:
        return f"probe ({result.iterations} iterations)"
    notes = [suspect.upper()] if suspect else []
    if result.noise is not None and result.noise.suspect:
        notes.append("SUSPECT, the machine was not quiet: " + "; ".join(result.noise.suspect))
    if result.latency and result.latency.noisy:
        notes.append("noisy")
    said = _block_note(result)
    if said:
        notes.append(said)
    elif result.stop_reason and result.stop_reason != "converged":
        notes.append(f"stopped: {result.stop_reason}")
    if result.agreement is not None:
        agreement = result.agreement
        notes.append(("DEGRADED: " if agreement.degraded else "") + agreement.text())
    if result.energy and any("no net energy" in warning for warning in result.energy.warnings):
        notes.append("no net energy (see warnings)")
    applied = result.settings.get("precision_applied")
    if applied and applied != result.cell.precision:
        notes.append(str(applied).split(",")[0])  # its first clause; `wattgap show --format json` has all
    return ", ".join(notes)


def _block_note(result: CellResult) -> str:
    """What the view of the cell's workload block says of it (render/views), '' without a block."""
    from wattgap.render.views import VIEWS  # the views format with this module: imported when first needed

    return VIEWS[result.block.kind].note(result.block) if result.block is not None else ""


def by_unit(unit: str) -> Callable[[float], str]:
    """How a value of an analysis's unit reads: "s" a duration, "sps" samples/s, "x" a ratio, "change" a
    signed share."""
    return {
        "s": seconds,
        "sps": lambda value: quantity(value, "").strip(),
        "x": lambda value: f"{number(value)}x",
        "change": lambda value: f"{value:+.1%}",
    }[unit]
