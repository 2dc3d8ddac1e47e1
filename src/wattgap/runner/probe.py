"""Before a run: whether a user's model declares its input shape, asked in a subprocess (building user
code in the sweep's own process would give up the isolation every cell has)."""

from __future__ import annotations

import json
import subprocess
import sys

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


def declares_input_shape(target: str, timeout_s: float) -> bool | None:
    """True or False when the model ``target`` (package.module:callable) was built and does or does not
    declare ``input_shape`` (on the callable or on the module it returns); None when that could not be
    learnt (the build failed, crashed or took longer than ``timeout_s``): its cell will say why."""
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
        return None
    finally:
        end_new_descendants(before)  # what building the model started ends with the probe
    if done.returncode != 0:
        return None
    lines = done.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]) is not None if lines else None
    except ValueError:
        return None
