"""Each cell in a process of its own, whichever way it starts (forked from the fork server, which imported
PyTorch once; or a fresh interpreter): a crash, a leak or a changed global in one cell does not reach the
next, and the way it started is recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import fast_config
from helpers.usermodels import LEAK_BYTES

import wattgap.api
from wattgap.runner.isolate import FORKED


@pytest.mark.parametrize("start", ["forkserver", "exec"])
def test_a_crash_a_leak_or_a_changed_global_stays_in_its_cell(tmp_path: Path, start: str) -> None:
    models = ["leaks_into_its_process", "reports_leaks", "segfaults", "tiny"]
    config = fast_config(
        models=[f"helpers.usermodels:{name}" for name in models], input_shape=[3, 8, 8], process_start=start
    )
    run = wattgap.api.run(config, db=tmp_path / "w.db")
    leaking, reporting, crashing, after = run.results
    assert leaking.status == "ok" and leaking.memory.host_peak_rss_bytes is not None
    assert leaking.memory.host_peak_rss_bytes > LEAK_BYTES
    assert reporting.status == "failed"
    assert reporting.reason == "RuntimeError: leaks seen: {'ballast': False, 'float64': False}"
    assert crashing.status == "crashed" and "SIGSEGV" in crashing.reason
    assert after.status == "ok" and after.memory.host_peak_rss_bytes is not None
    assert after.memory.host_peak_rss_bytes < LEAK_BYTES  # the leak went with its process
    expected = FORKED if start == "forkserver" else "a fresh interpreter"
    assert leaking.settings["process"] == after.settings["process"] == expected
    assert after.settings["interop_threads"] == 1 and after.settings["torch_threads"] == 1
