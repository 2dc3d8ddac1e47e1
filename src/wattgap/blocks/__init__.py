"""What a workload adds to its cells' results: one block per workload that has fields of its own, stored
with the result (``CellResult.block``, told apart by ``kind``), exported by the store and JSON export, and
shown by both renderers through the block's own columns and note. A new workload's block is one module
here and one line in ``BLOCKS``; its report section, if it has one, is its view (``render/views``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Union

from pydantic import Field

from wattgap.blocks.base import Block
from wattgap.blocks.data_parallel import DataParallel
from wattgap.blocks.serving import Serving
from wattgap.blocks.training import EpochPoint, Training

BLOCKS: dict[str, type[Block]] = {
    block.model_fields["kind"].default: block for block in (Training, DataParallel, Serving)
}

# The stored form: a block of any registered kind, parsed into its own type by its ``kind`` (a union built
# from the registry, which a type checker cannot follow: it sees the base class).
if TYPE_CHECKING:
    AnyBlock = Block
else:
    AnyBlock = Annotated[Union[tuple(BLOCKS.values())], Field(discriminator="kind")]  # noqa: UP007

COLUMNS: tuple[str, ...] = tuple(name for block in BLOCKS.values() for name in block.COLUMNS)

__all__ = ["BLOCKS", "COLUMNS", "AnyBlock", "Block", "DataParallel", "EpochPoint", "Serving", "Training"]
