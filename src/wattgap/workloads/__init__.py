"""The workload registry: a new workload is one module plus one line here (its Needs say what it asks
of a backend: the mode its Prepared model serves). Workload modules import no framework, so this
registry is cheap."""

from __future__ import annotations

from wattgap.backends.base import Needs
from wattgap.workloads.base import Events, Known, TrainSettings, Workload
from wattgap.workloads.data_parallel import TrainDataParallel
from wattgap.workloads.serve import Serve
from wattgap.workloads.timed import Timed
from wattgap.workloads.train_to_accuracy import TrainToAccuracy

WORKLOADS: dict[str, Workload] = {
    workload.name: workload
    for workload in (
        Timed("infer", "a forward pass under inference mode, timed per batch", Needs("infer", dataset="optional")),
        Timed("train", "forward, loss, backward and an optimiser step, timed per batch", Needs("train"), TrainSettings),
        TrainToAccuracy(),
        TrainDataParallel(),
        Serve(),
    )
}

__all__ = ["WORKLOADS", "Events", "Known", "Workload"]
