"""The workload registry: a new workload is one module plus one line here (and the capability each
backend that runs it declares). Workload modules import no framework, so this registry is cheap."""

from __future__ import annotations

from wattgap.workloads.base import Events, Known, Workload
from wattgap.workloads.timed import Timed
from wattgap.workloads.train_to_accuracy import TrainToAccuracy

WORKLOADS: dict[str, Workload] = {
    workload.name: workload
    for workload in (
        Timed("infer", "a forward pass under inference mode, timed per batch"),
        Timed("train", "forward, loss, backward and an optimiser step, timed per batch"),
        TrainToAccuracy(),
    )
}

__all__ = ["WORKLOADS", "Events", "Known", "Workload"]
