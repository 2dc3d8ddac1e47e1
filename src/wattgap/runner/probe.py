"""Before a run: what a user's model is. Its source's identity (models/sources.identity: the file and
a SHA-256 of its content, no user code run), which the run stores so that it says which model it
measured without ever needing it again; and, by loading it in its own framework in a process of its own
started as a cell's is (building user code in the sweep's own process would give up the isolation every
cell has), its framework, the inputs it will be fed and its parameter count (models/reference.describe)."""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from wattgap.errors import ConfigError
from wattgap.models.build import ModelOptions
from wattgap.runner.child import Child, start
from wattgap.runner.forkserver import fork_server
from wattgap.runner.processes import MEMORY_LOOK_S, descendants, end_new_descendants, tree_rss_bytes
from wattgap.text import number

PROBE = "probe"  # the kind of job that describes a model (runner/worker.run_job)


def answer(job: dict[str, Any]) -> None:
    """In the probe's own process: describe the model ``job`` names and write the answer to its file."""
    from wattgap.errors import WattgapError
    from wattgap.models.inputs import InputSpec
    from wattgap.models.reference import describe as described

    given = dict(job["options"])
    inputs = given.pop("inputs")
    given["input_shape"] = tuple(given["input_shape"]) if given["input_shape"] else None
    given["inputs"] = tuple(InputSpec.model_validate(i) for i in inputs) if inputs else None
    try:
        found: dict[str, Any] = {"described": described(job["name"], ModelOptions(**given), job["seed"])}
    except WattgapError as error:
        found = {"config_error": str(error)}
    except BaseException as error:
        found = {"error": f"{type(error).__name__}: {error}"}
    Path(job["answer"]).write_text(json.dumps(found))


def describe(
    name: str, options: ModelOptions, seed: int, timeout_s: float, cap_bytes: float | None = None, fork: bool = False
) -> dict[str, Any]:
    """``name`` loaded in a process of its own, started as the sweep's cells are (``fork``: from the fork
    server, which imported PyTorch once; else a fresh interpreter): {"described": {framework, inputs,
    parameters}}, {"config_error": message} (the config does not fit the model: one line for the user), or
    {"error": message} when it could not be loaded, crashed, took longer than ``timeout_s`` or held more
    host memory than ``cap_bytes`` (its process tree, read as a cell's is: killed when over)."""
    given = asdict(options)
    given["inputs"] = [spec.model_dump(mode="json") for spec in options.inputs] if options.inputs else None
    if fork:
        fork_server()  # started before the snapshot of descendants below: it outlives the probe
    before = descendants()
    # The answer comes in a file, not on the process's pipe: the probe has ended when its process has,
    # even if something the model started still holds what it inherited.
    with tempfile.TemporaryDirectory(prefix="wattgap-probe-") as folder, tempfile.TemporaryFile() as stderr:
        answer = Path(folder) / "answer.json"
        job: dict[str, Any] = {"kind": PROBE, "name": name, "options": given, "seed": seed, "answer": str(answer)}
        process = start(job, fork, stderr)
        try:
            over, status = _watch(process, timeout_s, cap_bytes)
        finally:
            process.close()
            end_new_descendants(before)  # what loading the model started ends with the probe
        if over is not None:
            return {"error": over}
        try:
            found = json.loads(answer.read_text())
        except (OSError, ValueError):
            found = None
        if not isinstance(found, dict):
            stderr.seek(max(0, stderr.seek(0, os.SEEK_END) - 4096))  # its last words are enough
            last = stderr.read().decode(errors="replace").strip().splitlines()[-1:] or [f"exit status {status}"]
            return {"error": f"loading it ended without an answer ({last[0]})"}
        return found


def _watch(process: Child, timeout_s: float, cap_bytes: float | None) -> tuple[str | None, int]:
    """Wait for the probe's process, reading its tree's host memory as often as a cell's when capped;
    why it was killed (over the time or the memory; None when it ended by itself), and its exit status."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = process.wait(min(MEMORY_LOOK_S, max(0.0, deadline - time.monotonic())))
        if status is not None:
            return None, status
        held = tree_rss_bytes(process.pid) if cap_bytes is not None else 0
        late = time.monotonic() >= deadline
        if late or (cap_bytes is not None and held > cap_bytes):
            process.kill()
            status = process.wait(None)
            assert status is not None  # a blocking wait returns its status
            if late:
                return f"loading it took longer than {timeout_s:g} s", status
            assert cap_bytes is not None
            return (
                f"loading it held {number(held / 2**30)} GiB of host memory, over max_host_memory_gb="
                f"{cap_bytes / 2**30:g} GiB (it was stopped there)"
            ), status


def refuse(field: str, name: str, found: dict[str, Any]) -> None:
    """Raise the ConfigError a probe's answer calls for, if any, on one line."""
    if "config_error" in found:
        raise ConfigError(_line(f"{field}: {found['config_error']}"))
    if "error" in found:
        raise ConfigError(_line(f"{field}: {name!r} cannot be loaded: {found['error']}"))


def _line(text: str, limit: int = 400) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."
