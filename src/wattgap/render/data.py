"""Results as plain data for ``--format json``: what the CLI prints for scripts, built here so that the
CLI only parses and prints."""

from __future__ import annotations

import dataclasses
from typing import Any

from wattgap.analysis.efficiency import Efficiency, EfficiencyParams
from wattgap.analysis.memory import MemoryCurve
from wattgap.analysis.projection import Projection
from wattgap.analysis.recommend import Candidate, Recommendation
from wattgap.analysis.speedup import Comparison
from wattgap.analysis.studies import StudyTable
from wattgap.analysis.tradeoff import Point, Tradeoff
from wattgap.analysis.whatif import CheckPair, KindError, Row, WhatIf
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
                **(
                    {"a_hardware": comparison.device_label("A", p.a.cell.device)}
                    | {"b_hardware": comparison.device_label("B", p.b.cell.device)}
                    if comparison.device_names
                    else {}
                ),
                "speedup": p.speedup,
                "ci_low": p.ci_low,
                "ci_high": p.ci_high,
                "latency_change": p.latency_change[0],
                "latency_change_ci": list(p.latency_change[1:]),
                "note": p.note,
                "interval_covers": p.covers,
                "judged_by_gate": p.judged,
            }
            for p in comparison.pairs
        ],
        "between_process_spread": None
        if comparison.spread is None
        else {
            "sd_log": comparison.spread.sd_log,
            "cells": comparison.spread.cells,
            "runs": comparison.spread.runs,
            "age_s": comparison.spread.age_s,
            "method": "pooled standard deviation of the log medians of the processes of repeated cells",
        },
        "metric": comparison.metric,
        "notes": comparison.notes,
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


def _point_data(point: Point) -> dict[str, Any]:
    return {
        "cell_id": point.result.cell_id,
        "batch_size": point.batch_size,
        "samples": point.samples,
        "throughput_sps": dataclasses.asdict(point.throughput_sps),
        "latency_s": {name: dataclasses.asdict(value) for name, value in point.latency_s.items()},
        "caveats": point.caveats,  # SUSPECT, noisy: the knee and the best batch pass over SUSPECT points
    }


def tradeoff_data(result: Tradeoff) -> dict[str, Any]:
    return {
        "run_ids": result.run_ids,
        "rule": {
            "knee_share": result.share,
            "percentile": result.percentile,
            "max_latency_s": result.max_latency_s,
            "confidence": result.confidence,
        },
        "curves": [
            {
                "key": curve.key,
                "points": [_point_data(p) for p in curve.points],
                "knee_batch_size": curve.knee.batch_size,
                "best_batch_size_under_bound": curve.bounded.batch_size if curve.bounded else None,
                "notes": curve.notes,
            }
            for curve in result.curves
        ],
        "scaling": {
            configuration: [
                {
                    "cell_id": point.result.cell_id,
                    "world_size": point.world_size,
                    "throughput_sps": point.throughput_sps,
                    "throughput_ci_sps": list(point.throughput_ci_sps),
                    "efficiency": point.efficiency.speedup if point.efficiency else None,
                    "efficiency_ci": [point.efficiency.ci_low, point.efficiency.ci_high] if point.efficiency else None,
                    "allreduce_share": point.allreduce_share,
                }
                for point in points
            ]
            for configuration, points in result.scaling.items()
        },
    }


def _candidate_data(candidate: Candidate | None) -> dict[str, Any] | None:
    if candidate is None:
        return None
    result = candidate.result
    return {
        "cell_id": result.cell_id,
        "cell": result.cell.model_dump(),
        "score": dataclasses.asdict(candidate.score) if candidate.score else None,
        "latency_s": dataclasses.asdict(candidate.latency_s),
        "throughput_sps": candidate.throughput_sps,
        "j_per_sample": candidate.j_per_sample,
        "memory_bytes": candidate.memory_bytes,
        "broken": [{"constraint": name, "relative_excess": excess} for name, excess in candidate.broken],
        "verdict": candidate.verdict,
        "caveats": candidate.caveats,  # SUSPECT, noisy: an answer resting on it says so
    }


def recommendation_data(answer: Recommendation) -> dict[str, Any]:
    return {
        "objective": answer.objective,
        "constraints": dataclasses.asdict(answer.constraints),
        "best": _candidate_data(answer.best),
        "runner_up": _candidate_data(answer.runner_up),
        "statistically_tied": answer.tied,
        "others": [_candidate_data(c) for c in answer.others],
        "binding_constraint": answer.binding or None,
        "closest": _candidate_data(answer.closest),
        "pareto_front": [_candidate_data(c) for c in answer.pareto],
    }


def memory_data(run_id: str, curves: list[MemoryCurve]) -> dict[str, Any]:
    return {"run_id": run_id, "curves": [dataclasses.asdict(curve) for curve in curves]}


def projection_data(projection: Projection) -> dict[str, Any]:
    data = dataclasses.asdict(projection)
    for series in data["series"]:
        series["bytes"] = series.pop("bytes_")
        series["fit"]["on"] = "log10(bytes) against (year - offset)"
        series["projected"] = [
            {"year": year, "bytes": value, "interval_bytes": [low, high]}
            for year, value, low, high in series["projected"]
        ]
    return data


def study_data(table: StudyTable) -> dict[str, Any]:
    return dataclasses.asdict(table)


def _whatif_row(row: Row, error: KindError | None) -> dict[str, Any]:
    return {
        "cell_id": row.result.cell_id,
        "cell": row.result.cell.model_dump(),
        "target": row.target,
        "label": row.label,
        "measured_s": row.measured_s,
        "flops": row.flops,
        "moved_bytes": row.moved_bytes,
        "bound": row.bound,
        "target_roofline_s": row.target_roof_s,
        "source_roofline_s": row.source_roof_s,
        "share_of_roofline": row.share,
        "estimate_s": row.estimate_s,
        "estimate_throughput_sps": row.estimate_throughput_sps,
        "ceiling_throughput_sps": row.ceiling_throughput_sps,
        "kind": row.kind,
        "caveats": row.caveats,
        "estimate_range_s": None
        if row.estimate_range_s is None
        else dict(zip(("low", "high", "measurements"), row.estimate_range_s, strict=True)),
        "error_of_like_pairs": None if error is None else dataclasses.asdict(error),
        "validated": error is not None,
    }


def _check_pair(pair: CheckPair) -> dict[str, Any]:
    return {
        "source_cell_id": pair.source.cell_id,
        "target_cell_id": pair.target.cell_id,
        "estimate_s": pair.estimate_s,
        "measured_s": pair.measured_s,
        "error": pair.error,
        "kind": pair.kind,
    }


def whatif_data(answer: WhatIf) -> dict[str, Any]:
    check = answer.check
    return {
        "label": answer.label,
        "targets": answer.targets,
        "rows": [_whatif_row(row, check.for_row(row)) for row in answer.rows],
        "left_out": answer.left_out,
        "error_on_owned_pairs": {
            "pairs": [_check_pair(pair) for pair in check.pairs],
            "by_kind": {kind: dataclasses.asdict(error) for kind, error in check.by_kind.items()},
        },
    }
