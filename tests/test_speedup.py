"""Speedup arithmetic on results built from known samples (the end-to-end path is in test_run/test_cli)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import make_run, result

from wattgap.analysis.speedup import compare
from wattgap.errors import ConfigError

RNG = np.random.default_rng(7)
BASE = RNG.normal(0.010, 0.0002, 400)


def test_speedup_is_the_ratio_of_medians_with_an_interval_around_it() -> None:
    cpu = make_run("a", [result(BASE), result(BASE * 4, model="vgg16")])
    gpu = make_run(
        "b",
        [
            result(BASE / 2, device="cuda", threads=None),
            result(BASE * 4 / 8, model="vgg16", device="cuda", threads=None),
        ],
    )
    comparison = compare(cpu, gpu, by="device")
    speedups = sorted(p.speedup for p in comparison.pairs)
    assert speedups == pytest.approx([2.0, 8.0])
    for pair in comparison.pairs:
        assert pair.ci_low < pair.speedup < pair.ci_high
        assert pair.ci_high / pair.ci_low < 1.05
    assert comparison.geomean == pytest.approx(4.0)
    assert comparison.geomean_ci_low < 4.0 < comparison.geomean_ci_high  # type: ignore[operator]
    assert comparison.unmatched == 0


def test_cells_differing_in_another_field_are_not_matched() -> None:
    a = make_run("a", [result(BASE), result(BASE, batch_size=16)])
    b = make_run("b", [result(BASE, device="cuda", threads=None, precision="fp16")])
    comparison = compare(a, b, by="device")
    assert comparison.pairs == [] and comparison.unmatched == 2 and comparison.geomean is None


def test_one_run_compared_with_itself_uses_the_baseline_value() -> None:
    run = make_run("r", [result(BASE, threads=1), result(BASE / 1.5, threads=2)])
    comparison = compare(run, run, by="threads")
    assert comparison.baseline == "1"
    assert [(p.a.cell.threads, p.b.cell.threads) for p in comparison.pairs] == [(1, 2)]
    assert math.isclose(comparison.pairs[0].speedup, 1.5, rel_tol=1e-9)
    reverse = compare(run, run, by="threads", baseline="2")
    assert math.isclose(reverse.pairs[0].speedup, 1 / 1.5, rel_tol=1e-9)
    with pytest.raises(ConfigError, match="--baseline: got '3'; allowed: 1, 2"):
        compare(run, run, by="threads", baseline="3")
    with pytest.raises(ConfigError, match="--by: got 'colour'"):
        compare(run, run, by="colour")


def test_runs_that_measure_different_work_are_refused() -> None:
    a = make_run("a", [result(BASE)], image_size=64)
    b = make_run("b", [result(BASE, device="cuda", threads=None)], image_size=224, end_to_end=True)
    with pytest.raises(ConfigError, match=r"differ in image_size \(64 vs 224\), end_to_end \(False vs True\)"):
        compare(a, b, by="device")
    same_work = make_run("c", [result(BASE / 2, device="cuda", threads=None)], image_size=64, seed=3)
    assert compare(a, same_work, by="device").pairs[0].speedup == pytest.approx(2.0)
