"""serve's result block (workloads/serve.py fills it in): LoadGen's own figures and logs for one scenario."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from wattgap.blocks.base import Block


class Serving(Block):
    """A serve cell: LoadGen's verdict and its reasons, the scenario's figures as LoadGen reports them
    (latency percentiles in seconds, samples per second, its early-stopping estimate), the settings LoadGen
    ran with, how the system under test served (lanes in flight, largest batch, longest wait), the energy
    per query and per sample over LoadGen's test, every probe of a QPS search, and LoadGen's summary and
    detail logs as it wrote them (MLPerf's submission checker reads those)."""

    kind: Literal["serve"] = "serve"
    COLUMNS: ClassVar[tuple[str, ...]] = (  # the scenario is the cell's
        "validity",
        "mlperf_valid",
        "samples_per_s",
        "target_qps",
        "energy_per_query_j",
    )

    scenario: str
    validity: str  # LoadGen's result: VALID or INVALID
    mlperf_valid: bool  # VALID, and run at least as long as MLPerf asks
    shortened: list[str]  # the settings that made the test shorter than MLPerf's
    reasons: list[str]  # why LoadGen said INVALID, in its words
    early_stopping: str  # LoadGen's early-stopping result
    samples_per_s: float | None  # LoadGen's (multi-stream: completed samples over the test)
    target_qps: float  # server: the arrival rate; offline: the expected rate
    target_qps_source: str  # given, pilot, or the highest valid probe
    pilot_qps: float  # lanes x batch / one full batch's median time, measured before the test
    latency_bound_s: float | None  # server: the 99th percentile's bound
    percentiles_s: dict[str, float]  # LoadGen's latency percentiles ("50.00", "99.00", ...)
    early_stopping_latency_s: float | None  # LoadGen's early-stopping estimate of the scenario's percentile
    queries: int
    samples: int
    padded_samples: int  # zeros the system under test added to fill batches
    in_flight: int  # lanes: requests served at once
    lane_batches: list[int] = Field(default_factory=list)  # the batches each lane ran
    lanes: str  # what they were
    max_batch: int  # the largest batch the system under test forms (the cell's batch)
    max_wait_s: float  # the longest a lane waited for its batch to fill
    energy_per_query_j: float | None
    energy_per_sample_j: float | None
    loadgen: dict[str, Any]  # LoadGen's result_* and early_stopping_* entries, as its detail log holds them
    loadgen_settings: dict[str, Any]  # its effective_* entries: the settings it ran with
    loadgen_version: str
    probes: list[dict[str, Any]] = Field(default_factory=list)  # find_max_qps: every target tried
    accuracy_samples: int = 0  # LoadGen's accuracy mode over a dataset's samples (the result's accuracy_top1)
    summary_log: str = ""
    detail_log: str = ""
