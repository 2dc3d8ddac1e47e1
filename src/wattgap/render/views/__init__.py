"""The views of workload blocks (blocks/), by the block's kind: a new workload's view is one module here
and one line in VIEWS (a test checks that every registered block has one)."""

from __future__ import annotations

from wattgap.render.views import data_parallel, serving, training
from wattgap.render.views.base import View

VIEWS: dict[str, View] = {view.kind: view for view in (training.VIEW, data_parallel.VIEW, serving.VIEW)}

__all__ = ["VIEWS", "View"]
