"""Timing loops. A Timer times ``n`` back-to-back iterations of a step and returns their latencies and
the wall time of the whole block; ``warm_up`` and ``measure`` drive the protocol (measure/protocol.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from wattgap.devices import synchronize
from wattgap.measure.protocol import CAPPED_ITERS, Protocol
from wattgap.measure.stats import median_ci

Step = Callable[[], Any]
StopReason = Literal["converged", "max_time", "max_iters"]


class Timer:
    """Host clock (perf_counter_ns) around each iteration; for devices that run synchronously with the
    host (CPU), or after which ``sync`` is called."""

    name = "perf_counter_ns"

    def __init__(self, sync: Callable[[], None] | None = None) -> None:
        self.sync = sync

    def block(self, step: Step, n: int) -> tuple[list[float], float]:
        latencies = []
        clock, sync = time.perf_counter_ns, self.sync
        start = clock()
        for _ in range(n):
            begin = clock()
            step()
            if sync is not None:
                sync()
            latencies.append((clock() - begin) * 1e-9)
        return latencies, (clock() - start) * 1e-9


class CudaEventTimer(Timer):
    """CUDA events recorded around each iteration on the current stream; one device synchronisation
    at the end of the block before the events are read. Latency is device time between the events."""

    name = "cuda_events"

    def __init__(self, device: str) -> None:
        import torch

        self.torch = torch
        self.device = device
        super().__init__()

    def block(self, step: Step, n: int) -> tuple[list[float], float]:
        cuda = self.torch.cuda
        events = [(cuda.Event(enable_timing=True), cuda.Event(enable_timing=True)) for _ in range(n)]
        start = time.perf_counter_ns()
        for begin, end in events:
            begin.record()
            step()
            end.record()
        cuda.synchronize(self.device)
        wall = (time.perf_counter_ns() - start) * 1e-9
        return [begin.elapsed_time(end) * 1e-3 for begin, end in events], wall


def timer_for(device: str, host_clock: bool = False) -> Timer:
    """CUDA events on CUDA devices (unless ``host_clock``: the work is not on torch's stream), the host
    clock with a synchronisation after each iteration on MPS, the host clock on CPUs."""
    if device.startswith("cuda") and not host_clock:
        return CudaEventTimer(device)
    if device == "mps" and not host_clock:
        return Timer(sync=lambda: synchronize("mps"))
    return Timer()


@dataclass
class Measurement:
    latencies_s: list[float]
    wall_s: float  # the timed blocks only; pauses for the stopping check are excluded
    stop_reason: StopReason
    ci_checks: int


def warm_up(step: Step, timer: Timer, protocol: Protocol, progress: Callable[[float], None]) -> tuple[int, float]:
    """Run until both the iteration and the time minimum are met. Returns (iterations, seconds)."""
    iterations, elapsed = 0, 0.0
    block = 1
    while iterations < protocol.warmup_min_iters or elapsed < protocol.warmup_min_time_s:
        if protocol.hard_max_time and iterations and elapsed >= protocol.max_time_s:
            break  # a hard cap cuts the warmup too (one iteration at least: the first is never timed cold)
        _, wall = timer.block(step, block)
        iterations += block
        elapsed += wall
        progress(min(1.0, elapsed / max(protocol.warmup_min_time_s, 1e-9)))
        block = min(block * 2, max(1, protocol.warmup_min_iters))
    return iterations, elapsed


def measure(
    step: Step, timer: Timer, protocol: Protocol, progress: Callable[[float], None], seed: int = 0
) -> Measurement:
    """Time blocks of iterations until the minimums are met and the bootstrap CI of the median is
    narrow enough, or a cap is hit. The minimums always hold: the time cap ends only the extension past
    them (the cell's subprocess timeout bounds a step too slow for the minimums). Blocks last about a
    tenth of a second; the interval is checked whenever the sample has grown by a quarter, so checking
    costs a bounded share of the run."""
    latencies: list[float] = []
    wall = 0.0
    block = 1
    checked_at = 0
    checks = 0
    while True:
        times, seconds = timer.block(step, min(block, protocol.max_iters - len(latencies)))
        latencies += times
        wall += seconds
        per_iter = seconds / len(times)
        block = max(1, min(int(0.1 / max(per_iter, 1e-9)), 10_000))
        minimum_met = len(latencies) >= protocol.min_iters and wall >= protocol.min_time_s
        progress(_fraction(len(latencies), wall, protocol, minimum_met))
        if minimum_met and len(latencies) >= checked_at * 1.25:
            checked_at = len(latencies)
            checks += 1
            samples = np.asarray(latencies)
            low, high = median_ci(samples, protocol.confidence, protocol.bootstrap_resamples, seed)
            median = float(np.median(samples))
            if median > 0 and (high - low) / 2 / median <= protocol.ci_rel_halfwidth:
                return Measurement(latencies, wall, "converged", checks)
        if minimum_met and wall >= protocol.max_time_s:
            return Measurement(latencies, wall, "max_time", checks)
        if protocol.hard_max_time and len(latencies) >= CAPPED_ITERS and wall >= protocol.max_time_s:
            return Measurement(latencies, wall, "max_time", checks)  # fewer than the minimums: flagged by the cell
        if len(latencies) >= protocol.max_iters:
            return Measurement(latencies, wall, "max_iters", checks)


def _fraction(iterations: int, wall: float, protocol: Protocol, minimum_met: bool) -> float:
    """Progress toward the minimums; past them, toward the cap (the stop may come sooner)."""
    if not minimum_met:
        done = min(iterations / protocol.min_iters, wall / max(protocol.min_time_s, 1e-9))
        return 0.5 * min(done, 1.0)
    span = max(protocol.max_time_s - protocol.min_time_s, 1e-9)
    return 0.5 + 0.5 * min(1.0, (wall - protocol.min_time_s) / span)
