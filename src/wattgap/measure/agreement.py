"""The low-precision guardrail: how far a cell's inference outputs are from the fp32 PyTorch reference of
the same model and weights, on a fixed seeded batch. Low precision is not free; this says what it cost."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel


class Agreement(BaseModel):
    samples: int
    reference: str  # what the outputs were compared with
    max_abs_diff: float
    mean_rel_diff: float  # mean |candidate - reference| / mean |reference|
    top1: float | None = None  # share of samples whose argmax agrees (classifiers only)
    threshold: float  # the minimum top-1 agreement
    degraded: bool


def compare_outputs(reference: np.ndarray, candidate: np.ndarray, classifier: bool, threshold: float) -> Agreement:
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64).reshape(reference.shape)
    difference = np.abs(candidate - reference)
    scale = float(np.mean(np.abs(reference))) or 1.0
    top1 = float(np.mean(reference.argmax(axis=1) == candidate.argmax(axis=1))) if classifier else None
    finite = bool(np.isfinite(candidate).all())
    return Agreement(
        samples=len(reference),
        reference="PyTorch eager fp32, same weights, seeded N(0,1) batch",
        max_abs_diff=float(difference.max()) if finite else float("inf"),
        mean_rel_diff=float(difference.mean() / scale) if finite else float("inf"),
        top1=top1,
        threshold=threshold,
        degraded=not finite or (top1 is not None and top1 < threshold),
    )
