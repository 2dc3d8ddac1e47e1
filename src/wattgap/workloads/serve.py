"""serve: MLPerf's LoadGen drives the cell's prepared inference as the system under test, in the
scenarios of MLPerf Inference (an axis: ``workloads: {serve: {scenarios: [offline, server]}}``):

- single-stream: one query of one sample at a time, the next issued when the last completes (metric: the
  90th percentile latency, early-stopping estimate);
- multi-stream: the same with ``samples_per_query`` samples per query (metric: the 99th percentile);
- server: queries of one sample at Poisson arrivals of ``target_qps``, valid only when the 99th
  percentile stays under ``latency_bound_s`` (``find_max_qps``: the highest target LoadGen reports VALID,
  by bisection, every probe kept);
- offline: every sample in one query (metric: samples per second).

LoadGen's settings are MLPerf's for ``mlperf_model`` (ResNet-50 by default: a 600 s minimum, 15 ms server
bound, MLPerf's seeds), read from the mlperf.conf LoadGen embeds, then what the user gave; a run made
shorter than MLPerf's is kept, and says it is not MLPerf-valid. The cell's batch is the largest batch the
system under test forms; server and offline keep as many requests in flight as the backend serves best
(its ``lanes``: workloads/loadgen.py). The stored latency samples are LoadGen's queries as the system saw
them (issue to completion; offline: its batches); the block holds LoadGen's own figures and logs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from wattgap.backends.base import Needs, missing_packages
from wattgap.blocks import Serving
from wattgap.config import ComponentSettings
from wattgap.measure.energy import CellEnergy, EnergyWindow, meters_for
from wattgap.measure.memory import peak_rss_bytes
from wattgap.measure.noise import NoiseWindow
from wattgap.results import Memory
from wattgap.workloads import assembly
from wattgap.workloads.base import Events, Known, Workload

if TYPE_CHECKING:
    import numpy as np

    from wattgap.backends.base import Backend, Lanes, Prepared
    from wattgap.cells import Cell
    from wattgap.config import SweepConfig
    from wattgap.devices import Hardware
    from wattgap.results import CellResult
    from wattgap.workloads.loadgen import Request, Test

Scenario = Literal["single-stream", "multi-stream", "server", "offline"]
ALL: tuple[Scenario, ...] = ("single-stream", "multi-stream", "server", "offline")
CONCURRENT = ("server", "offline")  # the scenarios that keep several requests in flight
SEEDS = ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed")
PILOT_SHARE = {"server": 0.5, "offline": 1.5, "single-stream": 1.0, "multi-stream": 1.0}  # default target / pilot
CLOSE = 0.05  # find_max_qps stops when the valid and the invalid target are this close (relative)


class ServeSettings(ComponentSettings):
    """serve's settings. None: MLPerf's value for ``mlperf_model`` and the scenario (LoadGen's mlperf.conf),
    or for the targets a pilot's measurement."""

    scenarios: list[Scenario] = Field(default_factory=lambda: list(ALL), min_length=1)
    mlperf_model: str = "resnet50"  # whose MLPerf settings are the defaults
    min_duration_s: float | None = Field(None, gt=0, le=86_400)
    min_query_count: int | None = Field(None, ge=1)
    target_qps: float | None = Field(None, gt=0)  # server: the arrival rate; offline: the expected rate
    latency_bound_s: float | None = Field(None, gt=0, le=3_600)  # server: the 99th percentile's bound
    samples_per_query: int | None = Field(None, ge=1, le=65_536)  # multi-stream
    samples: int | None = Field(None, ge=1, le=1_000_000)  # the query sample library's seeded samples
    qsl_rng_seed: int | None = Field(None, ge=0)
    sample_index_rng_seed: int | None = Field(None, ge=0)
    schedule_rng_seed: int | None = Field(None, ge=0)
    in_flight: int | None = Field(None, ge=1, le=256)  # server and offline: requests at once (None: the backend's)
    max_wait_s: float = Field(0.0, ge=0, le=60)  # server: the longest a lane waits for its batch to fill
    find_max_qps: bool = False  # server: bisect the highest target QPS LoadGen reports VALID
    max_probes: int = Field(8, ge=2, le=64)  # find_max_qps: LoadGen tests at most

    @field_validator("scenarios")
    @classmethod
    def _once(cls, scenarios: list[str]) -> list[str]:
        return list(dict.fromkeys(scenarios))


class Serve(Workload):
    name = "serve"
    description = "MLPerf LoadGen's single-stream, multi-stream, server and offline scenarios"
    needs = Needs("infer")
    settings_model = ServeSettings
    batch_iterations = False

    def axes(self, config: SweepConfig) -> list[dict[str, Any]]:
        own = config.settings("workloads", self.name, ServeSettings)
        return [{"scenario": scenario} for scenario in own.scenarios]

    def cell_reason(self, cell: Cell, hardware: Hardware) -> str:
        missing = missing_packages(("mlperf_loadgen",), "serve")
        if missing:
            return missing.replace("mlperf_loadgen", "mlcommons-loadgen")
        if cell.scenario == "single-stream" and cell.batch_size != 1:
            return f"single-stream queries hold one sample: batch {cell.batch_size} would pad each; use batch 1"
        return ""

    def run(self, cell: Cell, config: SweepConfig, backend: Backend, events: Events, known: Known) -> CellResult:
        import mlperf_loadgen as lg

        from wattgap.fs import scratch_folder
        from wattgap.workloads import loadgen

        own = config.settings("workloads", self.name, ServeSettings)
        meters = meters_for(cell.device, config.energy)
        prepared, phases, prepare_window = assembly.prepare(backend, cell, config, events, meters, self.needs)
        if prepared.predict is None or not prepared.inputs:
            raise TypeError(f"{backend.name} prepared no inference on host inputs to serve")
        lanes = _lanes(prepared, own, cell)
        folder = scratch_folder("loadgen-")
        with prepared.context():
            samples, labels = _library(prepared, config, loadgen.sample_count(lg, _request(own, cell, 1, 1), folder))
            count = len(next(iter(samples.values())))  # the library's size: what LoadGen's settings say
            events.phase("warmup")
            batch_s = loadgen.pilot(lanes.predicts[0], samples, cell.batch_size)
            phases.prepare_s = events.between("prepare", "warmup")
            phases.warmup_s = events.since("warmup")
            pilot_qps = len(lanes.predicts) * cell.batch_size / batch_s
            target = own.target_qps or pilot_qps * PILOT_SHARE[cell.scenario]
            events.phase("measure")

            def probe(qps: float, number: int) -> Served:
                settings, shortened = loadgen.mlperf_settings(lg, _request(own, cell, qps, batch_s, count), folder)
                (out := folder / f"test-{number}").mkdir()
                window, audit = EnergyWindow(meters), NoiseWindow(config.noise, cell.device)
                with audit, window:
                    test = loadgen.run_test(lg, settings, lanes.predicts, samples, cell.batch_size, own.max_wait_s, out)
                    prepared.sync()
                return Served(test, shortened, window, audit, lanes, qps, pilot_qps)

            if own.find_max_qps and cell.scenario == "server":
                served = _find_max_qps(probe, target, own.max_probes, events)
            else:
                served = probe(target, 0)
            events.mark("finish")
            if labels is not None:  # LoadGen's accuracy mode: every sample of the library once
                settings, _ = loadgen.mlperf_settings(
                    lg, _request(own, cell, target, batch_s, count), folder, accuracy=True
                )
                (out := folder / "accuracy").mkdir()
                answered = loadgen.run_test(lg, settings, lanes.predicts, samples, cell.batch_size, 0.0, out).predicted
                served.top1 = float((answered == labels).mean())
                served.top1_samples = len(labels)
        phases.measure_s = served.test.wall_s
        return _result(cell, config, events, known, prepared, phases, prepare_window, own, served)


@dataclass
class Served:
    """The LoadGen test a serve cell keeps (a QPS search's highest valid probe), what made it, and the
    accuracy test's top-1 when the library is a dataset's."""

    test: Test
    shortened: list[str]
    window: EnergyWindow
    audit: NoiseWindow
    lanes: Lanes
    target_qps: float
    pilot_qps: float
    probes: list[dict[str, Any]] = field(default_factory=list)
    top1: float | None = None
    top1_samples: int = 0


def _library(prepared: Prepared, config: SweepConfig, count: int) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The query sample library, and its labels when it is a dataset's: ``count`` seeded samples of the
    model's inputs, or the dataset's validation images (``count`` at most), as the model takes them."""
    from wattgap.models.inputs import synthesize

    if config.dataset is None:
        return synthesize(prepared.inputs, count, config.seed + 3), None
    from wattgap.datasets import load, model_splits

    spec, *others = prepared.inputs
    if others or len(spec.shape) != 3:
        raise ValueError(f"serve over a dataset takes one (C, H, W) image input; this model takes {prepared.inputs}")
    channels, side = spec.shape[0], spec.shape[-1]
    data = load(config, side)
    _, validation = model_splits(data, channels, side)
    return {spec.name: validation[:count]}, data.y_val[:count]


def _lanes(prepared: Prepared, own: ServeSettings, cell: Cell) -> Lanes:
    """What serves the cell's queries: for server and offline the backend's lanes (``in_flight`` of them,
    or as many as it serves best); one request at a time otherwise, or where the backend has no lanes."""
    from wattgap.backends.base import Lanes

    assert prepared.predict is not None
    if cell.scenario in CONCURRENT and prepared.lanes is not None:
        return prepared.lanes(own.in_flight)
    if cell.scenario in CONCURRENT and (own.in_flight or 1) > 1:
        raise ValueError(f"in_flight={own.in_flight}: {cell.backend} serves one request at a time; give 1 or none")
    return Lanes([prepared.predict], {"lanes": f"one request at a time ({cell.backend}'s inference)"})


def _request(own: ServeSettings, cell: Cell, qps: float, batch_s: float, count: int | None = None) -> Request:
    """The LoadGen test the settings ask for at target ``qps``, a full batch taking ``batch_s``, over a
    library of ``count`` samples (None: the settings' or MLPerf's)."""
    from wattgap.workloads.loadgen import Request

    return Request(
        scenario=cell.scenario,
        mlperf_model=own.mlperf_model,
        min_duration_s=own.min_duration_s,
        min_query_count=own.min_query_count,
        target_qps=qps,
        latency_bound_s=own.latency_bound_s,
        samples_per_query=own.samples_per_query,
        samples=count or own.samples,
        seeds={name: getattr(own, name) for name in SEEDS},
        batch=cell.batch_size,
        batch_s=batch_s,
    )


def _find_max_qps(probe: Callable[[float, int], Served], start: float, limit: int, events: Events) -> Served:
    """The highest target QPS LoadGen reports VALID: from ``start``, doubled or halved until one valid and
    one over-latency target bracket it, then bisected until they are within CLOSE of each other or ``limit``
    tests ran. A test INVALID with its latency bound met (too short for early stopping, too few queries)
    ends the search: a lower target cannot fix that; so does a halving that left the p99 within CLOSE of
    the last (the queue is gone: the time to serve one query is over the bound). The chosen probe (the
    highest valid; else the last), holding every probe's figures."""
    probes: list[dict[str, Any]] = []
    best: Served | None = None
    floor: float | None = None  # the last over-bound probe's p99
    valid_qps, invalid_qps = 0.0, float("inf")
    qps = start
    while len(probes) < limit:
        last = probe(qps, len(probes))
        log = last.test.log
        valid = log.get("result_validity") == "VALID"
        probes.append(
            {
                "target_qps": qps,
                "validity": log.get("result_validity"),
                "completed_sps": log.get("result_completed_samples_per_sec"),
                "p99_latency_s": _seconds(log.get("result_99.00_percentile_latency_ns")),
                "reasons": _reasons(log),
            }
        )
        events.emit({"event": "progress", "phase": "measure", "fraction": len(probes) / limit})
        p99 = probes[-1]["p99_latency_s"]
        if valid:
            best, valid_qps = last, qps
        elif log.get("result_perf_constraints_met") is not False:
            break
        elif valid_qps == 0.0 and floor is not None and p99 is not None and p99 > (1 - CLOSE) * floor:
            break  # halving no longer lowers the p99: the service time alone is over the bound
        else:
            invalid_qps, floor = qps, p99
        if invalid_qps == float("inf"):
            qps *= 2
        elif valid_qps == 0.0:
            qps /= 2
        elif invalid_qps / valid_qps - 1 <= CLOSE:
            break
        else:
            qps = (valid_qps + invalid_qps) / 2
    chosen = best or last
    chosen.probes = probes
    return chosen


def _seconds(nanoseconds: Any) -> float | None:
    return nanoseconds / 1e9 if isinstance(nanoseconds, int | float) else None


CONDITIONS = {  # LoadGen's detail-log flags -> what an unmet one means
    "result_min_duration_met": "the minimum duration was not met",
    "result_min_queries_met": "the minimum query count was not met",
    "result_perf_constraints_met": "the latency bound was not met",
    "early_stopping_met": "early stopping was not satisfied",
}


def _reasons(log: dict[str, Any]) -> list[str]:
    """Why LoadGen called the test INVALID, in its own words (empty when VALID)."""
    if log.get("result_validity") == "VALID":
        return []
    reasons = [said for key, said in CONDITIONS.items() if log.get(key) is False]
    for key in ("result_invalid_reason", "early_stopping_result"):
        text = " ".join(str(log.get(key) or "").split())
        if text and (key != "early_stopping_result" or log.get("early_stopping_met") is False):
            reasons.append(text)
    return reasons


def _result(
    cell: Cell,
    config: SweepConfig,
    events: Events,
    known: Known,
    prepared: Prepared,
    phases: Any,
    prepare_window: EnergyWindow,
    own: ServeSettings,
    served: Served,
) -> CellResult:
    test, lanes, probes, shortened = served.test, served.lanes, served.probes, served.shortened
    log = test.log
    offline = cell.scenario == "offline"
    latencies = test.batch_latencies_s if offline else test.query_latencies_s
    queries = len(test.query_latencies_s)
    energy = CellEnergy.from_readings(served.window.readings, test.samples, known.idle_power, prepare_window.readings)
    throughput = _throughput(cell.scenario, log, test)
    valid = log.get("result_validity") == "VALID"
    block = Serving(
        scenario=cell.scenario,
        validity=str(log.get("result_validity", "unknown")),
        mlperf_valid=valid and not shortened,
        shortened=shortened,
        reasons=_reasons(log),
        early_stopping=" ".join(str(log.get("early_stopping_result") or "").split()),
        samples_per_s=throughput,
        target_qps=float(log.get("effective_target_qps", served.target_qps)),
        target_qps_source=_source(own, probes),
        pilot_qps=served.pilot_qps,
        latency_bound_s=_seconds(log.get("effective_target_latency_ns")) if cell.scenario == "server" else None,
        percentiles_s=_percentiles(cell.scenario, log),
        early_stopping_latency_s=_seconds(
            log.get("early_stopping_latency_ss" if cell.scenario == "single-stream" else "early_stopping_latency_ms")
        ),
        queries=queries,
        samples=test.samples,
        padded_samples=test.padded_samples,
        in_flight=len(lanes.predicts),
        lane_batches=test.lane_batches,
        lanes=str(lanes.settings.get("lanes", "")),
        max_batch=cell.batch_size,
        max_wait_s=own.max_wait_s,
        energy_per_query_j=energy.energy_j / queries if energy.energy_j is not None and queries else None,
        energy_per_sample_j=energy.energy_j / test.samples if energy.energy_j is not None and test.samples else None,
        loadgen={key: value for key, value in log.items() if key.startswith(("result_", "early_stopping_"))},
        loadgen_settings={
            key.removeprefix("effective_"): value for key, value in log.items() if key.startswith("effective_")
        },
        loadgen_version=str(log.get("loadgen_version", "")),
        probes=probes,
        accuracy_samples=served.top1_samples,
        summary_log=test.summary,
        detail_log=test.detail,
    )
    prepared.settings.update({k: v for k, v in lanes.settings.items() if k != "lanes"})
    warnings = [f"LoadGen: {error}" for error in test.errors]
    if not valid:
        warnings.append(f"LoadGen INVALID: {'; '.join(block.reasons) or 'no reason given'}")
    elif shortened:
        warnings.append(f"not MLPerf-valid: shorter than MLPerf's ({'; '.join(shortened)})")
    if probes and not valid:
        warnings.append(
            f"find_max_qps: none of {len(probes)} targets was VALID"
            + ("" if log.get("result_perf_constraints_met") is False else " (the last met its latency bound)")
        )
    stats = assembly.statistics(latencies, config)
    per_latency = cell.batch_size if offline else (_per_query(log) if cell.scenario == "multi-stream" else 1)
    return assembly.cell_result(
        cell,
        config,
        events,
        dataclasses.replace(prepared, samples_per_step=per_latency),
        phases,
        stats,
        latencies,
        energy,
        warnings,
        timer="perf_counter_ns in the system under test (issue to completion; offline: each batch)",
        warmup_iterations=0,
        iterations=len(latencies),
        stop_reason="loadgen",
        throughput_sps=throughput,
        throughput_median_sps=None,
        memory=Memory(host_peak_rss_bytes=peak_rss_bytes()),
        accuracy_top1=served.top1,
        noise=served.audit.audit,
        block=block,
    )


def _percentiles(scenario: str, log: dict[str, Any]) -> dict[str, float]:
    """LoadGen's latency percentiles in seconds, by percentile ("99.00"): per query in multi-stream (its
    metric, and what its summary prints), per sample elsewhere (a query is one sample there, but offline)."""
    suffix = "_percentile_per_query_latency_ns" if scenario == "multi-stream" else "_percentile_latency_ns"
    return {
        key.removeprefix("result_").removesuffix(suffix): value / 1e9
        for key, value in log.items()
        if key.startswith("result_") and key.endswith(suffix)
    }


def _source(own: ServeSettings, probes: list[dict[str, Any]]) -> str:
    """Where the target QPS came from: the highest valid probe of a search, the user, or the pilot."""
    if any(probe["validity"] == "VALID" for probe in probes):
        return "the highest valid probe of find_max_qps"
    return "given" if own.target_qps else "pilot (a share of its throughput)"


def _per_query(log: dict[str, Any]) -> int:
    return int(log.get("effective_samples_per_query", 1))


def _throughput(scenario: str, log: dict[str, Any], test: Test) -> float | None:
    """Samples per second as LoadGen reports them for the scenario (multi-stream reports none: the
    samples the system completed over LoadGen's test)."""
    key = {
        "offline": "result_samples_per_second",
        "server": "result_completed_samples_per_sec",
        "single-stream": "result_qps_with_loadgen_overhead",
    }.get(scenario)
    value = log.get(key) if key else None
    if isinstance(value, int | float):
        return float(value)
    return test.samples / test.wall_s if test.wall_s > 0 else None
