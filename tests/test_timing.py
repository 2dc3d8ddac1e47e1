from __future__ import annotations

import time

from wattgap.config import Protocol
from wattgap.measure.timing import Timer, measure, warm_up


def sleeper(seconds: float):  # type: ignore[no-untyped-def]
    return lambda: time.sleep(seconds)


def test_warmup_meets_both_minimums() -> None:
    protocol = Protocol(warmup_min_iters=5, warmup_min_time_s=0.05)
    iterations, elapsed = warm_up(sleeper(0.001), Timer(), protocol, lambda f: None)
    assert iterations >= 5 and elapsed >= 0.05


def test_measure_converges_on_a_steady_step_and_reports_it() -> None:
    protocol = Protocol(min_iters=30, min_time_s=0.1, max_time_s=10, ci_rel_halfwidth=0.05)
    fractions: list[float] = []
    result = measure(sleeper(0.002), Timer(), protocol, fractions.append)
    assert result.stop_reason == "converged"
    assert len(result.latencies_s) >= 30 and result.wall_s >= 0.1
    assert all(lat >= 0.002 for lat in result.latencies_s)
    assert fractions == sorted(fractions) and 0 < fractions[-1] <= 1


def test_wall_time_covers_the_timed_iterations() -> None:
    protocol = Protocol(min_iters=10, min_time_s=0.05, max_time_s=0.2)
    result = measure(sleeper(0.003), Timer(), protocol, lambda f: None)
    assert result.wall_s >= sum(result.latencies_s)
    assert result.wall_s < sum(result.latencies_s) * 1.2


def test_measure_stops_at_the_time_cap_when_the_interval_stays_wide() -> None:
    state = {"i": 0}

    def erratic() -> None:
        state["i"] += 1
        time.sleep(0.001 if state["i"] % 2 else 0.006)

    protocol = Protocol(min_iters=5, min_time_s=0.0, max_time_s=0.3, ci_rel_halfwidth=0.001)
    result = measure(erratic, Timer(), protocol, lambda f: None)
    assert result.stop_reason == "max_time"
    assert result.wall_s >= 0.3


def test_measure_stops_at_the_iteration_cap() -> None:
    protocol = Protocol(min_iters=5, min_time_s=0.0, max_iters=20, ci_rel_halfwidth=1e-9)
    result = measure(lambda: None, Timer(), protocol, lambda f: None)
    assert result.stop_reason == "max_iters"
    assert len(result.latencies_s) == 20


def test_a_hard_cap_is_a_cap_and_says_what_it_cut() -> None:
    """`--max-time 1` took 9 min 44 s on a busy machine: the 30-iteration minimum won over the cap."""
    slow = sleeper(0.05)
    protocol = Protocol(min_iters=30, min_time_s=0.0, max_time_s=0.3, warmup_min_iters=10, hard_max_time=True)
    started = time.perf_counter()
    warm_iters, _ = warm_up(slow, Timer(), protocol, lambda _: None)
    measured = measure(slow, Timer(), protocol, lambda _: None)
    assert time.perf_counter() - started < 1.5  # 10 + 30 iterations of 50 ms would be 2 s
    assert warm_iters < 10 and 5 <= len(measured.latencies_s) < 30 and measured.stop_reason == "max_time"
    soft = measure(slow, Timer(), Protocol(min_iters=12, min_time_s=0.0, max_time_s=0.1), lambda _: None)
    assert len(soft.latencies_s) >= 12  # without it, the minimums hold (DESIGN section 4)
