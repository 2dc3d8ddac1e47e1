"""serve: MLPerf's own LoadGen drives Conv6 on this CPU with short minimums. What wattgap stores is what
LoadGen's summary file says; an under-provisioned server is INVALID with LoadGen's reason; a system under
test that crashes fails its cell with the reason and leaves no process behind."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path
from typing import Any

import psutil
import pytest
from helpers import fast_config
from helpers import wattgap as wattgap_cli

import wattgap.api
from wattgap.blocks import Serving
from wattgap.workloads.loadgen import SCENARIOS, read_detail
from wattgap.workloads.serve import ALL

pytestmark = pytest.mark.slow

SHORT = {"min_duration_s": 0.3, "min_query_count": 64, "samples": 64}


def _summary(text: str) -> dict[str, str]:
    """LoadGen's summary file as ``key: value`` pairs (its own layout, read independently of wattgap)."""
    pairs = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon and value.strip():
            pairs[" ".join(key.split())] = value.strip()
    return pairs


def _serve(tmp_path: Path, serve: dict[str, Any], **fields: Any) -> Any:
    fields.setdefault("workloads", {"serve": SHORT | serve})
    config = fast_config(backends=["torch-eager"], energy={"idle_s": 0}, **fields)
    return wattgap.api.run(config, db=tmp_path / "s.db")


def test_the_figures_stored_are_loadgens_own_in_each_scenario(tmp_path: Path) -> None:
    run = _serve(
        tmp_path,
        {"scenarios": ["single-stream", "offline", "server", "multi-stream"], "target_qps": 50.0},
        batch_sizes=[1],
    )
    assert [(r.status, r.cell.scenario) for r in run.results] == [
        ("ok", "single-stream"),
        ("ok", "offline"),
        ("ok", "server"),
        ("ok", "multi-stream"),
    ], [r.reason for r in run.results]
    for result in run.results:
        block = result.block
        assert isinstance(block, Serving) and block.scenario == result.cell.scenario
        summary = _summary(block.summary_log)
        assert summary["Scenario"] == SCENARIOS[block.scenario]
        assert summary["Result is"] == block.validity
        for name in ("50.00", "90.00", "99.00"):
            assert int(summary[f"{name} percentile latency (ns)"]) == round(block.percentiles_s[name] * 1e9)
        throughput = {
            "offline": "Samples per second",
            "server": "Completed samples per second",
            "single-stream": "QPS w/ loadgen overhead",
        }.get(block.scenario)
        if throughput is not None:
            shown = summary[throughput]  # printed to its digits: the stored figure rounds to it
            digits = len(shown.partition(".")[2])
            assert float(shown) == pytest.approx(block.samples_per_s, abs=0.5 * 10**-digits + 1e-9)
            assert result.throughput_sps == block.samples_per_s
        # the detail log kept whole: every entry wattgap took from it is in it, as LoadGen wrote it
        entries = {key: value for key, value, _ in read_detail(block.detail_log)}
        assert block.loadgen == {k: v for k, v in entries.items() if k.startswith(("result_", "early_stopping_"))}
        assert block.loadgen_settings["min_duration_ms"] == 300 and entries["requested_min_query_count"] == 64
        assert block.loadgen_settings["qsl_rng_seed"] == 2085463073848966840  # MLPerf's seed, from mlperf.conf
        assert not block.mlperf_valid and "min_duration_s 0.3 < MLPerf's 600" in block.shortened
        assert block.queries == len(result.latencies_s) or block.scenario == "offline"
        assert result.energy is not None and block.energy_per_query_j == pytest.approx(
            result.energy.energy_j / block.queries
        )
    server = run.results[2].block
    assert server.target_qps == 50.0 and server.latency_bound_s == 0.015  # MLPerf's ResNet-50 bound
    assert run.results[3].block.loadgen_settings["samples_per_query"] == 8
    assert wattgap.load_run(tmp_path / "s.db", run.run_id).results == run.results
    shown = wattgap_cli("show", run.run_id, "--db", str(tmp_path / "s.db"), cwd=tmp_path)
    assert shown.returncode == 0 and "serving (MLPerf LoadGen)" in shown.stdout, shown.stderr
    lines = shown.stdout.splitlines()
    assert max(len(line) for line in lines) <= 120, "\n".join(line for line in lines if len(line) > 120)
    served = lines[next(i for i, line in enumerate(lines) if line.startswith("serving (MLPerf LoadGen)")) :]
    rows = [line.split() for line in served if line.split() and line.split()[0] in SCENARIOS]
    assert [row[0] for row in rows] == ["single-stream", "offline", "server", "multi-stream"]  # what varies: it alone
    assert all(row[1] in ("VALID,", "INVALID:", "INVALID") for row in rows), rows
    traded = wattgap_cli("tradeoff", run.run_id, "--db", str(tmp_path / "s.db"), cwd=tmp_path)
    assert traded.returncode == 2 and "serve cells are LoadGen's queries, not batches" in traded.stderr
    reported = wattgap_cli("report", run.run_id, "--db", str(tmp_path / "s.db"), "--md", "r.md", cwd=tmp_path)
    assert reported.returncode == 0, reported.stderr
    assert "## Serving scenarios \\(MLPerf LoadGen\\)" in (tmp_path / "r.md").read_text()


def test_an_under_provisioned_server_is_invalid_with_loadgens_reason(tmp_path: Path) -> None:
    # 600 queries in LoadGen's 0.3 s, which the system takes seconds to drain: its p99 is far over 1 ms
    run = _serve(tmp_path, {"scenarios": ["server"], "target_qps": 2_000.0, "latency_bound_s": 0.001})
    (result,) = run.results
    block = result.block
    assert result.status == "ok" and isinstance(block, Serving)
    assert block.validity == "INVALID" and "the latency bound was not met" in block.reasons
    assert "Reduce target QPS to improve latency." in block.reasons  # LoadGen's own words
    assert "Result is : INVALID" in block.summary_log
    assert any(warning.startswith("LoadGen INVALID: the latency bound was not met") for warning in result.warnings)


def test_find_max_qps_searches_the_highest_valid_target_and_keeps_every_probe(tmp_path: Path) -> None:
    # a loose bound, so that a machine busy with other tests still meets it at some target; LoadGen's early
    # stopping asks some 460 queries of a p99 with none over the bound
    serve = {"scenarios": ["server"], "find_max_qps": True, "max_probes": 4, "latency_bound_s": 0.5}
    run = _serve(tmp_path, serve | {"target_qps": 100.0, "min_query_count": 500})
    (result,) = run.results
    block = result.block
    assert isinstance(block, Serving) and 2 <= len(block.probes) <= 4, block.probes if block else result.reason
    targets = [probe["target_qps"] for probe in block.probes]
    assert targets[0] == 100.0 and targets[1] in (50.0, 200.0)
    valid = [probe["target_qps"] for probe in block.probes if probe["validity"] == "VALID"]
    assert valid, block.probes  # Conv6 at 32x32 serves 100 queries a second well under 0.5 s
    assert block.target_qps == pytest.approx(max(valid), rel=1e-5) and block.validity == "VALID"
    assert block.target_qps_source == "the highest valid probe of find_max_qps"
    assert all(probe["validity"] == "VALID" or probe["reasons"] for probe in block.probes)


def test_a_crash_inside_the_system_under_test_fails_the_cell_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    monkeypatch.setenv("WATTGAP_TEST_PIDS", str(pids))
    monkeypatch.setenv("WATTGAP_TEST_SERVE_CALLS", "40")  # past the pilot's runs, within LoadGen's test
    threads = threading.active_count()
    run = _serve(
        tmp_path,
        {"scenarios": ["single-stream"], "min_duration_s": 60.0, "min_query_count": 100_000},
        models=["helpers.usermodels:serves_then_fails"],
        batch_sizes=[1],
    )
    (result,) = run.results
    assert result.status == "failed", result
    assert "the system under test failed: RuntimeError: the model gives up while serving" in result.reason
    assert result.phases is None or (result.phases.measure_s or 0) < 30  # not LoadGen's 60 s minimum
    cells = [int(path.name) for path in pids.iterdir()]
    assert cells and not [pid for pid in cells if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert threading.active_count() == threads


def test_the_scenario_flag_sets_the_workloads_setting_and_single_stream_takes_batch_one(tmp_path: Path) -> None:
    assert list(SCENARIOS) == list(ALL)
    planned = wattgap_cli(
        "run",
        "--model",
        "conv6",
        "--workload",
        "serve",
        "--scenario",
        "single-stream,offline",
        "--batch-size",
        "1,4",
        "--backend",
        "onnxruntime",
        "--threads",
        "1",
        "--dry-run",
        cwd=tmp_path,
    )
    assert planned.returncode == 0 and "4 cells, 3 to run, 1 skipped" in planned.stdout, planned.stdout + planned.stderr
    assert "single-stream queries hold one sample: batch 4 would pad each; use batch 1" in planned.stdout
    refused = wattgap_cli("run", "--model", "conv6", "--scenario", "offline", "--dry-run", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "--scenario: a setting of the serve workload" in refused.stderr
    bad = wattgap_cli(
        "run", "--model", "conv6", "--workload", "serve", "--scenario", "batch", "--dry-run", cwd=tmp_path
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert re.search(r"workloads\.serve\.scenarios\[0\]: got 'batch'; allowed: 'single-stream', ", bad.stderr)


def test_over_a_datasets_samples_loadgens_accuracy_mode_gives_the_top1_of_the_infer_cell(tmp_path: Path) -> None:
    """The whole validation split of digits as the library: LoadGen's accuracy mode asks every sample once,
    and the top-1 of the answers is the infer cell's top-1 on the same split with the same seeded model."""
    run = _serve(
        tmp_path,
        {"scenarios": ["offline"], "samples": 100_000},
        workloads={"serve": SHORT | {"scenarios": ["offline"], "samples": 100_000}, "infer": None},
        dataset="digits",
        batch_sizes=[4],
    )
    served, inferred = sorted(run.results, key=lambda r: r.cell.workload)[::-1]
    assert (served.status, inferred.status) == ("ok", "ok"), [served.reason, inferred.reason]
    assert isinstance(served.block, Serving) and served.block.accuracy_samples > 300  # digits' 20%: 360
    assert served.accuracy_top1 is not None and served.accuracy_top1 == inferred.accuracy_top1
    samples = served.block.accuracy_samples
    assert f"samples {samples} < MLPerf's 1024" in served.block.shortened  # the split is smaller than MLPerf asks


def _system(capacity_qps: float, service_s: float, bound_s: float = 0.015) -> Any:
    """A probe of a modelled server: VALID below ``capacity_qps``, over its bound above, its p99 the
    service time plus a queue that grows toward capacity (LoadGen's verdict as its detail log gives it)."""
    from types import SimpleNamespace

    def probe(qps: float, number: int) -> Any:
        p99 = service_s + (0.0 if qps < capacity_qps else bound_s * qps / capacity_qps)
        log = {
            "result_validity": "VALID" if p99 <= bound_s else "INVALID",
            "result_perf_constraints_met": p99 <= bound_s,
            "result_99.00_percentile_latency_ns": round(p99 * 1e9),
        }
        return SimpleNamespace(test=SimpleNamespace(log=log), qps=qps, probes=[])

    return probe


def _search(probe: Any, start: float, limit: int = 12) -> Any:
    from wattgap.workloads.base import Events
    from wattgap.workloads.serve import _find_max_qps

    return _find_max_qps(probe, start, limit, Events(lambda event: None))


def test_the_qps_search_brackets_then_bisects_to_within_five_percent_below_capacity() -> None:
    for start in (10.0, 1000.0):
        chosen = _search(_system(capacity_qps=100.0, service_s=0.005), start)
        targets = [probe["target_qps"] for probe in chosen.probes]
        valid = [t for t, p in zip(targets, chosen.probes, strict=True) if p["validity"] == "VALID"]
        over = [t for t, p in zip(targets, chosen.probes, strict=True) if p["validity"] == "INVALID"]
        assert chosen.qps == max(valid) and max(valid) < 100 <= min(over) and min(over) / max(valid) <= 1.05
        assert len(targets) <= 12


def test_the_qps_search_stops_where_a_lower_target_cannot_help() -> None:
    slow = _search(_system(capacity_qps=100.0, service_s=0.020), 50.0)  # one query alone is over the bound
    assert [p["target_qps"] for p in slow.probes] == [50.0, 25.0]
    short = _system(capacity_qps=100.0, service_s=0.005)

    def too_short(qps: float, number: int) -> Any:  # VALID latencies, too few queries for early stopping
        served = short(qps, number)
        served.test.log |= {"result_validity": "INVALID", "early_stopping_met": False}
        return served

    assert len(_search(too_short, 50.0).probes) == 1


@pytest.mark.parametrize("backend", ["openvino", "onnxruntime", "torch-eager"])
def test_offline_keeps_as_many_requests_in_flight_as_the_backend_serves_best(tmp_path: Path, backend: str) -> None:
    config = fast_config(
        workloads={"serve": SHORT | {"scenarios": ["offline", "single-stream"]}},
        backends=[backend],
        batch_sizes=[1],
        energy={"idle_s": 0},
    )
    offline, single = wattgap.api.run(config, db=tmp_path / "s.db").results
    assert (offline.status, single.status) == ("ok", "ok"), [offline.reason, single.reason]
    assert isinstance(offline.block, Serving) and isinstance(single.block, Serving)
    assert single.block.in_flight == 1  # LoadGen keeps one query in flight there
    if backend == "openvino":  # its optimal number of infer requests under the THROUGHPUT hint
        assert offline.block.in_flight == offline.settings["optimal_infer_requests"] >= 1
        assert "THROUGHPUT hint" in offline.block.lanes and offline.settings["performance_hint"] == "THROUGHPUT"
        assert offline.settings["lanes_inference_threads"] == len(os.sched_getaffinity(0))  # one thread a core
    elif backend == "onnxruntime":  # concurrent runs filling the cores at one intra-op thread each
        assert offline.block.in_flight == len(os.sched_getaffinity(0))
    else:
        assert offline.block.in_flight == 1 and "one request at a time" in offline.block.lanes
    assert offline.block.validity == "VALID", offline.block.reasons
    assert len(offline.block.lane_batches) == offline.block.in_flight and all(offline.block.lane_batches)  # all busy
