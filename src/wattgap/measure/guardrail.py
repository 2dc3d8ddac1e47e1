"""The low-precision guardrail: how far a cell's inference outputs are from the fp32 PyTorch eager
reference of the same model and weights, on a fixed seeded batch. Low precision is not free; this says
what it cost. The reference (the seeded model), its outputs and the comparison live here together."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from pydantic import BaseModel

from wattgap.cells import Cell
from wattgap.models.build import ModelOptions, reference_model

REFERENCE = ("torch-eager", "fp32")  # (backend, precision) of the reference itself


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


def reference_outputs(
    model: str, options: ModelOptions, seed: int, samples: int
) -> tuple[np.ndarray, np.ndarray, bool]:
    """The guardrail's fixed batch (``samples`` N(0,1) inputs, seeded by ``seed + 1``), the reference's
    outputs on it, and whether the model is a classifier."""
    import torch

    network, input_shape, classifier = reference_model(model, options, seed)
    generator = torch.Generator().manual_seed(seed + 1)
    inputs = torch.randn((samples, *input_shape), generator=generator)
    with torch.inference_mode():
        outputs = torch.cat([network(chunk) for chunk in inputs.split(64)])
    return inputs.numpy(), outputs.numpy(), classifier


def guardrail(
    cell: Cell,
    predict: Callable[[np.ndarray], np.ndarray] | None,
    options: ModelOptions,
    seed: int,
    samples: int,
    threshold: float,
) -> Agreement | None:
    """Agreement of an inference cell's outputs with the reference (which has none itself: it is the
    reference). The fixed batch is fed in chunks of the cell's batch size, the last one padded."""
    if predict is None or cell.workload != "infer" or (cell.backend, cell.precision) == REFERENCE:
        return None
    inputs, reference, classifier = reference_outputs(cell.model, options, seed, samples)
    batch = cell.batch_size
    chunks = []
    for first in range(0, len(inputs), batch):
        chunk = inputs[first : first + batch]
        padded = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]), chunk.dtype)])
        chunks.append(predict(padded)[: len(chunk)])
    return compare_outputs(reference, np.concatenate(chunks), classifier, threshold)
