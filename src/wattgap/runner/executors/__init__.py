"""Executors: where and how cells run. The local sequential one first; others (a Ray cluster) implement
the same Executor.submit."""

from __future__ import annotations

from wattgap.runner.executors.base import HOME, CellJob, Executor, Node
from wattgap.runner.executors.local import LocalExecutor

__all__ = ["HOME", "CellJob", "Executor", "LocalExecutor", "Node"]
