"""The local executor: one cell at a time, each in its own subprocess on this machine."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from wattgap.results import CellResult
from wattgap.runner.executors.base import CellJob, Executor, OnEvent
from wattgap.runner.isolate import run_isolated


class LocalExecutor(Executor):
    def submit(self, jobs: Iterable[CellJob], on_event: OnEvent) -> Iterator[CellResult]:
        for job in jobs:
            yield run_isolated(job, on_event)
