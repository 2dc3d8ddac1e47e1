"""Results as plain data for ``--format json``: what the CLI prints for scripts, built here so that the
CLI only parses and prints."""

from __future__ import annotations

import dataclasses
from typing import Any

from wattgap.analysis.efficiency import Efficiency, EfficiencyParams
from wattgap.analysis.speedup import Comparison
from wattgap.results import Run


def results_data(run: Run) -> list[dict[str, Any]]:
    """One flat row per stored result (no raw samples)."""
    return [{"run_id": run.run_id, **result.flat()} for result in run.results]


def comparison_data(comparison: Comparison) -> dict[str, Any]:
    by = comparison.by
    return {
        "by": by,
        "run_a": comparison.run_a,
        "run_b": comparison.run_b,
        "baseline": comparison.baseline,
        "pairs": [
            {
                "a_cell_id": p.a.cell_id,
                "b_cell_id": p.b.cell_id,
                "matched_on": p.key,
                "a": str(getattr(p.a.cell, by)),
                "b": str(getattr(p.b.cell, by)),
                "speedup": p.speedup,
                "ci_low": p.ci_low,
                "ci_high": p.ci_high,
                "latency_change": 1 / p.speedup - 1,
                "note": p.note,
            }
            for p in comparison.pairs
        ],
        "geomean": comparison.geomean,
        "geomean_ci": [comparison.geomean_ci_low, comparison.geomean_ci_high],
        "confidence": comparison.confidence,
    }


def efficiency_data(run_id: str, metric: str, rows: list[Efficiency], params: EfficiencyParams) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "rank": metric,
        "gqi": params.formula(),
        "params": params.model_dump(),
        "cells": [dataclasses.asdict(row) for row in rows],
    }
