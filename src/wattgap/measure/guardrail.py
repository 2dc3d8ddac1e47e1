"""The low-precision guardrail: how far a cell's inference outputs are from the fp32 reference of the
same model and weights in the model's own framework (models/reference.py), on a fixed seeded batch. Low
precision is not free; this says what it cost."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import BaseModel

from wattgap.cells import Cell
from wattgap.models.build import ModelOptions


class Agreement(BaseModel):
    samples: int
    reference: str  # what the outputs were compared with
    max_abs_diff: float
    mean_rel_diff: float  # mean |candidate - reference| / mean |reference|
    top1: float | None = None  # share of samples whose argmax agrees (classifiers only)
    threshold: float  # the minimum top-1 agreement
    degraded: bool
    max_rel_diff: float | None = None  # not a classifier: the largest mean_rel_diff that is not degraded

    def text(self) -> str:
        """The agreement in words, with the threshold that applies."""
        if self.top1 is not None:
            return f"top-1 agrees {self.top1:.0%} with fp32"
        if self.max_rel_diff is None or not np.isfinite(self.mean_rel_diff):
            return "outputs with fp32" if np.isfinite(self.mean_rel_diff) else "non-finite outputs"
        return f"outputs {self.mean_rel_diff:.1%} from fp32 (mean relative difference; at most {self.max_rel_diff:.0%})"


def compare_outputs(
    reference: np.ndarray,
    candidate: np.ndarray,
    classifier: bool,
    threshold: float,
    label: str = "PyTorch eager fp32, same weights",
    max_rel_diff: float | None = None,
) -> Agreement:
    """A classifier is degraded when its top-1 agreement is under ``threshold``; another model when its
    outputs' mean relative difference from the reference is over ``max_rel_diff``; either when an output
    is not finite."""
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64).reshape(reference.shape)
    difference = np.abs(candidate - reference)
    scale = float(np.mean(np.abs(reference))) or 1.0
    top1 = float(np.mean(reference.argmax(axis=1) == candidate.argmax(axis=1))) if classifier else None
    finite = bool(np.isfinite(candidate).all())
    relative = float(difference.mean() / scale) if finite else float("inf")
    bound = None if classifier else max_rel_diff
    return Agreement(
        samples=len(reference),
        reference=f"{label}, seeded synthetic batch",
        max_abs_diff=float(difference.max()) if finite else float("inf"),
        mean_rel_diff=relative,
        top1=top1,
        threshold=threshold,
        degraded=not finite or (top1 is not None and top1 < threshold) or (bound is not None and relative > bound),
        max_rel_diff=bound,
    )


def guardrail(
    cell: Cell,
    predict: Callable[[dict[str, np.ndarray]], np.ndarray] | None,
    options: ModelOptions,
    seed: int,
    samples: int,
    threshold: float,
    max_rel_diff: float | None = None,
) -> Agreement | None:
    """Agreement of an inference cell's outputs with the fp32 reference of the model's own framework
    (models/reference.py; the reference's own cells have none), on ``samples`` synthetic samples seeded by
    ``seed + 1``, fed in chunks of the cell's batch size, the last one padded with zeros."""
    from wattgap.models.inputs import synthesize
    from wattgap.models.reference import is_reference, reference

    if predict is None or is_reference(cell.model, cell.backend, cell.precision, cell.device):
        return None
    own = reference(cell.model, options, seed)
    inputs = synthesize(own.inputs, samples, seed + 1)
    batch = cell.batch_size
    expected, chunks = [], []
    for first in range(0, samples, batch):
        chunk = {name: array[first : first + batch] for name, array in inputs.items()}
        taken = len(next(iter(chunk.values())))
        padded = {
            name: np.concatenate([array, np.zeros((batch - taken, *array.shape[1:]), array.dtype)])
            for name, array in chunk.items()
        }
        expected.append(own.predict(chunk))
        chunks.append(predict(padded)[:taken])
    return compare_outputs(
        np.concatenate(expected), np.concatenate(chunks), own.classifier, threshold, own.label, max_rel_diff
    )
