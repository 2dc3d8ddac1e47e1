"""train-ddp's result block (workloads/data_parallel.py fills it in)."""

from __future__ import annotations

from typing import ClassVar, Literal

from wattgap.blocks.base import Block


class DataParallel(Block):
    """A data-parallel training cell: its ranks, the process-group backend, how much of rank 0's measured
    time its gradient all-reduce took, and each rank's peak memory. Its latency samples are rank 0's
    steps; its throughput is the whole group's (world size x batch per step)."""

    kind: Literal["train-ddp"] = "train-ddp"
    COLUMNS: ClassVar[tuple[str, ...]] = ("process_group", "allreduce_share")  # world_size is the cell's

    world_size: int
    process_group: str  # gloo (CPU) or nccl (CUDA)
    launcher: str  # how the ranks were started
    allreduce_s: float  # rank 0's gradient all-reduce time over the measured steps (overlapping the backward pass)
    allreduce_share: float  # allreduce_s over rank 0's measured wall time: an upper bound on its cost
    rank_peak_rss_bytes: list[int | None]  # each rank's peak host memory, rank 0 first
    rank_device_peak_bytes: list[int | None]  # each rank's peak device memory (CUDA), rank 0 first
    cores: list[list[int]]  # the CPU cores each rank was pinned to (empty: not pinned)
