"""Before a run: what a user's model is. The file that defines it and a SHA-256 of its content, which the
run stores so that it says which code it measured without ever needing that code again; and, when the
config gives no input shape, the one the model declares, asked in a subprocess (building user code in the
sweep's own process would give up the isolation every cell has)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from wattgap.runner.processes import descendants, end_new_descendants

_PROBE = """
import json, sys
from wattgap.models import CustomModel
custom = CustomModel(sys.argv[1])
shape = custom.declared_input_shape()
if shape is None:
    shape = custom.declared_input_shape(custom.build_torch())
print(json.dumps(shape))
"""


def source_of(target: str) -> dict[str, Any]:
    """The file that defines the user's model ``target`` and a SHA-256 of its content, found without
    running it (importlib finds the module's file; only its parent packages, if any, are imported).
    Empty values when it cannot be found here: its cells will say why."""
    module = target.split(":", 1)[0]
    try:
        spec = importlib.util.find_spec(module)
        path = spec.origin if spec is not None and spec.has_location else None
        digest = hashlib.sha256(Path(path).read_bytes()).hexdigest() if path else None
    except (ImportError, OSError, ValueError):
        path = digest = None
    return {"file": path, "sha256": digest}


def declared_input_shape(target: str, timeout_s: float) -> list[int] | bool | None:
    """The input shape the user's model ``target`` (package.module:callable) declares, on the callable or
    on the module it returns (None when it declares none), learnt by building it in a subprocess; False
    when that could not be learnt (the build failed, crashed or took longer than ``timeout_s``): its cells
    will say why."""
    before = descendants()
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE, target],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired:
        return False
    finally:
        end_new_descendants(before)  # what building the model started ends with the probe
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return False
    try:
        shape = json.loads(lines[-1])
    except ValueError:
        return False
    return shape if isinstance(shape, list) else None
