"""MLPerf's LoadGen around a prepared inference: the test settings (MLPerf's own defaults, read from the
mlperf.conf LoadGen embeds, then the user's overrides), the query sample library (seeded samples held in
memory), the system under test, and what LoadGen's detail log says of the test.

The system under test queues each sample LoadGen issues and serves the queue from its lanes, one thread
each (a lane is one request in flight: an OpenVINO infer request, a concurrent ONNX Runtime run, or the one
``predict``). A free lane takes what is queued, up to the cell's batch (the largest batch), waits at most
``max_wait_s`` for a batch to fill, pads it to the batch (the backends run static shapes), runs it and
completes its samples with their top-1 class as the response. A lane that raises fails the system: every
queued and later sample is completed empty so that LoadGen can end, and the cell fails with the reason."""

from __future__ import annotations

import array
import collections
import json
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

    from wattgap.backends.base import Predict

SCENARIOS: dict[str, str] = {  # wattgap's names -> LoadGen's
    "single-stream": "SingleStream",
    "multi-stream": "MultiStream",
    "server": "Server",
    "offline": "Offline",
}
LOOK_S = 0.1  # how often the cell looks whether the system under test failed while LoadGen runs
PREFIX = ":::MLLOG "


@dataclass(frozen=True)
class Request:
    """What the user asked of LoadGen (None: MLPerf's value for ``mlperf_model``), in LoadGen's units
    once applied."""

    scenario: str
    mlperf_model: str
    min_duration_s: float | None
    min_query_count: int | None
    target_qps: float
    latency_bound_s: float | None
    samples_per_query: int | None
    samples: int | None
    seeds: dict[str, int | None]
    batch: int  # the largest batch the system under test forms
    batch_s: float  # the time one full batch takes (the pilot's): what LoadGen's expected latencies are made of


def mlperf_settings(lg: Any, request: Request, folder: Path, accuracy: bool = False) -> tuple[Any, list[str]]:
    """LoadGen's TestSettings for ``request`` (in its accuracy mode when ``accuracy``: every sample once):
    MLPerf's for its model and scenario (mlperf.conf as LoadGen embeds it), then each value the user gave;
    and which of them make the test shorter than MLPerf's (a result is MLPerf-valid only when none does)."""
    settings = lg.TestSettings()
    empty = folder / "user.conf"
    empty.write_text("")
    if settings.FromConfig(str(empty), request.mlperf_model, SCENARIOS[request.scenario], 0) != 0:
        raise ValueError(f"LoadGen has no MLPerf settings for model {request.mlperf_model!r}")
    settings.scenario = getattr(lg.TestScenario, SCENARIOS[request.scenario])
    settings.mode = lg.TestMode.AccuracyOnly if accuracy else lg.TestMode.PerformanceOnly
    shortened = []
    if request.min_duration_s is not None:
        mlperf_s = settings.min_duration_ms / 1000
        if request.min_duration_s < mlperf_s:
            shortened.append(f"min_duration_s {request.min_duration_s:g} < MLPerf's {mlperf_s:g}")
        settings.min_duration_ms = round(request.min_duration_s * 1000)
    if request.min_query_count is not None:
        if request.min_query_count < settings.min_query_count:
            shortened.append(f"min_query_count {request.min_query_count} < MLPerf's {settings.min_query_count}")
        settings.min_query_count = request.min_query_count
    if request.samples is not None and request.samples < settings.performance_sample_count_override:
        shortened.append(f"samples {request.samples} < MLPerf's {settings.performance_sample_count_override}")
    for name, seed in request.seeds.items():
        if seed is not None:
            setattr(settings, name, seed)
    if request.latency_bound_s is not None:
        settings.server_target_latency_ns = round(request.latency_bound_s * 1e9)
    if request.samples_per_query is not None:
        settings.multi_stream_samples_per_query = request.samples_per_query
    settings.server_target_qps = request.target_qps
    settings.offline_expected_qps = request.target_qps
    settings.single_stream_expected_latency_ns = max(1, round(request.batch_s * 1e9))
    batches = math.ceil(settings.multi_stream_samples_per_query / request.batch)  # a query's batches, in turn
    settings.multi_stream_expected_latency_ns = max(1, round(request.batch_s * batches * 1e9))
    return settings, shortened


def sample_count(lg: Any, request: Request, folder: Path) -> int:
    """The query sample library's size: the user's ``samples``, or MLPerf's performance sample count."""
    if request.samples is not None:
        return request.samples
    settings, _ = mlperf_settings(lg, request, folder)
    return int(settings.performance_sample_count_override)


@dataclass
class Test:
    """One LoadGen test as the system under test and LoadGen's logs saw it."""

    query_latencies_s: list[float]  # issue of each query to the completion of its last sample
    batch_latencies_s: list[float]  # each batch a lane ran
    padded_samples: int  # zeros added to fill batches
    lane_batches: list[int]  # the batches each lane ran
    samples: int  # samples completed
    predicted: np.ndarray  # the top-1 class answered for each library sample (-1: never asked)
    wall_s: float  # LoadGen's test, start to end
    log: dict[str, Any]  # the detail log: key -> value (the last of each key)
    summary: str
    detail: str
    errors: list[str] = field(default_factory=list)


class System:
    """The system under test (module docstring)."""

    def __init__(
        self, lg: Any, lanes: list[Predict], samples: dict[str, np.ndarray], batch: int, max_wait_s: float
    ) -> None:
        import numpy as np

        self.lg, self.samples, self.batch, self.max_wait_s = lg, samples, batch, max_wait_s
        self.queue: collections.deque[tuple[int, int, int]] = collections.deque()  # (query, sample id, index)
        self.ready = threading.Condition()
        self.issued_ns: list[int] = []
        self.left: list[int] = []  # samples of each query not yet completed
        self.done_ns: list[int] = []
        self.batch_latencies_s: list[float] = []
        self.padded = self.completed = 0
        self.predicted = np.full(len(next(iter(samples.values()))), -1, dtype=np.int64)
        self.error: str | None = None
        self.stopping = False
        self.lane_batches = [0] * len(lanes)
        self.threads = [
            threading.Thread(target=self._lane, args=(number, one), daemon=True) for number, one in enumerate(lanes)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        """End the lanes (after what is queued, unless the system failed) and wait for them."""
        with self.ready:
            self.stopping = True
            self.ready.notify_all()
        for thread in self.threads:
            thread.join()

    def issue(self, query: list[Any]) -> None:
        """LoadGen's issue callback: one query, its samples queued for the lanes."""
        now = time.perf_counter_ns()
        with self.ready:
            if self.error is not None:
                self._empty([(0, sample.id, 0) for sample in query])
                return
            number = len(self.issued_ns)
            self.issued_ns.append(now)
            self.left.append(len(query))
            self.done_ns.append(0)
            self.queue.extend((number, sample.id, sample.index) for sample in query)
            self.ready.notify(len(query))  # a lane for each sample at most: offline's one query wakes them all

    def flush(self) -> None:
        """LoadGen's flush callback: nothing is held back (a lane takes what is queued when it is free)."""

    def _take(self) -> list[tuple[int, int, int]] | None:
        """The next batch (None: the lane ends): what is queued, up to the batch, after waiting at most
        ``max_wait_s`` for it to fill."""
        with self.ready:
            while not self.queue and not self.stopping:
                self.ready.wait()
            if not self.queue or self.error is not None:
                return None
            if self.max_wait_s > 0 and len(self.queue) < self.batch:
                deadline = time.perf_counter() + self.max_wait_s
                while len(self.queue) < self.batch and not self.stopping:
                    left = deadline - time.perf_counter()
                    if left <= 0 or not self.ready.wait(left):
                        break
            return [self.queue.popleft() for _ in range(min(self.batch, len(self.queue)))]

    def _lane(self, number: int, predict: Predict) -> None:
        import numpy as np

        lg = self.lg
        while (taken := self._take()) is not None:
            try:
                indices = np.fromiter((index for _, _, index in taken), dtype=np.int64, count=len(taken))
                pad = self.batch - len(taken)
                feed = {}
                for name, held in self.samples.items():
                    chosen = held[indices]
                    if pad:
                        chosen = np.concatenate([chosen, np.zeros((pad, *held.shape[1:]), held.dtype)])
                    feed[name] = chosen
                started = time.perf_counter_ns()
                output = predict(feed)
                took_s = (time.perf_counter_ns() - started) * 1e-9
                labels = array.array("i", np.asarray(output[: len(taken)]).reshape(len(taken), -1).argmax(axis=1))
                address, _ = labels.buffer_info()
                lg.QuerySamplesComplete(
                    [lg.QuerySampleResponse(sample, address + 4 * i, 4) for i, (_, sample, _) in enumerate(taken)]
                )
            except BaseException as error:  # the system fails; LoadGen must still be let to end
                self._fail(error, taken)
                return
            now = time.perf_counter_ns()
            with self.ready:
                self.predicted[indices] = np.frombuffer(labels, dtype=np.int32)
                self.lane_batches[number] += 1
                self.batch_latencies_s.append(took_s)
                self.padded += pad
                self.completed += len(taken)
                for query, _, _ in taken:
                    self.left[query] -= 1
                    if not self.left[query]:
                        self.done_ns[query] = now

    def _fail(self, error: BaseException, taken: list[tuple[int, int, int]]) -> None:
        text = str(error).strip().splitlines()
        with self.ready:
            if self.error is None:
                self.error = f"{type(error).__name__}: {text[0][:300]}" if text else type(error).__name__
            self._empty(taken + list(self.queue))
            self.queue.clear()
            self.stopping = True
            self.ready.notify_all()

    def _empty(self, samples: list[tuple[int, int, int]]) -> None:
        """Complete ``samples`` with no response (after a failure: LoadGen waits for every sample)."""
        if samples:
            self.lg.QuerySamplesComplete([self.lg.QuerySampleResponse(sample, 0, 0) for _, sample, _ in samples])

    def query_latencies_s(self) -> list[float]:
        return [(done - issued) * 1e-9 for issued, done in zip(self.issued_ns, self.done_ns, strict=True) if done]


def run_test(
    lg: Any,
    settings: Any,
    lanes: list[Predict],
    samples: dict[str, np.ndarray],
    batch: int,
    max_wait_s: float,
    folder: Path,
) -> Test:
    """One LoadGen test of the system under test over the in-memory samples, its logs in ``folder``.
    LoadGen runs in a thread of its own (it blocks until the test ends) while this one watches the
    system: when it fails, this raises at once (the cell's process, which ends then, takes LoadGen's
    thread with it)."""
    count = len(next(iter(samples.values())))
    system = System(lg, lanes, samples, batch, max_wait_s)
    handle = lg.ConstructSUT(system.issue, system.flush)
    library = lg.ConstructQSL(count, count, _nothing, _nothing)
    log = lg.LogSettings()
    log.log_output.outdir = str(folder)
    log.log_output.copy_summary_to_stdout = False
    log.enable_trace = False
    raised: list[BaseException] = []

    def test() -> None:
        try:
            lg.StartTestWithLogSettings(handle, library, settings, log)
        except BaseException as error:  # LoadGen's own failure is the cell's, said in the cell's process
            raised.append(error)

    system.start()
    tester = threading.Thread(target=test, daemon=True)
    started = time.perf_counter()
    tester.start()
    while tester.is_alive() and system.error is None:
        tester.join(LOOK_S)
    wall_s = time.perf_counter() - started
    if system.error is not None:
        raise RuntimeError(f"the system under test failed: {system.error}")
    if raised:
        system.stop()
        raise RuntimeError(f"LoadGen failed: {type(raised[0]).__name__}: {raised[0]}")
    system.stop()
    lg.DestroyQSL(library)
    lg.DestroySUT(handle)
    detail = (folder / "mlperf_log_detail.txt").read_text(errors="replace")
    entries = read_detail(detail)
    return Test(
        query_latencies_s=system.query_latencies_s(),
        batch_latencies_s=system.batch_latencies_s,
        padded_samples=system.padded,
        lane_batches=system.lane_batches,
        samples=system.completed,
        predicted=system.predicted,
        wall_s=wall_s,
        log={key: value for key, value, _ in entries},
        summary=(folder / "mlperf_log_summary.txt").read_text(errors="replace"),
        detail=detail,
        errors=[f"{key}: {value}" for key, value, error in entries if error],
    )


def _nothing(indices: list[int]) -> None:
    """The library's load and unload callbacks: every sample is in memory from the start."""


def read_detail(text: str) -> list[tuple[str, Any, bool]]:
    """The entries of a LoadGen detail log: key, value, and whether LoadGen marked it an error."""
    entries = []
    for line in text.splitlines():
        if not line.startswith(PREFIX):
            continue
        try:
            entry = json.loads(line[len(PREFIX) :])
        except json.JSONDecodeError:
            continue
        error = bool(entry.get("metadata", {}).get("is_error"))
        entries.append((str(entry.get("key")), entry.get("value"), error))
    return entries


def pilot(predict: Predict, samples: dict[str, np.ndarray], batch: int, seconds: float = 0.5) -> float:
    """The median seconds one lane takes for a full batch (two untimed runs, then up to ``seconds`` or 20
    runs): what sizes LoadGen's expected latency and QPS, and the server's default target."""
    feed = {name: held[:batch] if len(held) >= batch else _tile(held, batch) for name, held in samples.items()}
    predict(feed)
    predict(feed)
    took: list[float] = []
    until = time.perf_counter() + seconds
    while len(took) < 20 and (len(took) < 3 or time.perf_counter() < until):
        started = time.perf_counter()
        predict(feed)
        took.append(time.perf_counter() - started)
    took.sort()
    return took[len(took) // 2]


def _tile(held: np.ndarray, batch: int) -> np.ndarray:
    import numpy as np

    return np.concatenate([held] * math.ceil(batch / len(held)))[:batch]
