"""User models for the tests, loaded by name (``helpers.usermodels:NAME``) inside cell subprocesses."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from torch import nn


def tiny() -> nn.Module:
    """A small classifier; declares its input shape as an attribute."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 4))
    model.input_shape = (3, 8, 8)  # type: ignore[assignment]
    return model


def no_shape() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(12, 2))


def raises() -> nn.Module:
    raise RuntimeError("this model cannot be built")


def raises_markup() -> nn.Module:
    raise RuntimeError("<script>window.__pwned = 2</script> & <b>not bold</b>")


def segfaults() -> nn.Module:
    os.kill(os.getpid(), signal.SIGSEGV)
    raise AssertionError("unreachable")


def hangs() -> nn.Module:
    time.sleep(3600)
    raise AssertionError("unreachable")


def exhausts_memory() -> nn.Module:
    raise MemoryError("simulated allocation failure")


class _Linear4(nn.Module):
    """A 4 -> 2 linear model; subclasses add a side effect to its forward pass."""

    input_shape = (4,)

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)


class _Slow(_Linear4):
    def forward(self, x):  # type: ignore[no-untyped-def]
        time.sleep(0.05)
        return self.linear(x)


def slow() -> nn.Module:
    """50 ms per forward pass: sweeps of it last long enough to be killed midway."""
    return _Slow()


class _Chatty(_Linear4):
    def forward(self, x):  # type: ignore[no-untyped-def]
        print('{"event": "result", "result": "not from wattgap"}')  # must not reach the protocol
        os.write(1, b"raw bytes on fd 1\n")
        return self.linear(x)


def chatty() -> nn.Module:
    """Prints to stdout, in Python and at the file-descriptor level, on every forward pass."""
    return _Chatty()


class _Grows(_Linear4):
    def forward(self, x):  # type: ignore[no-untyped-def]
        import torch

        held = torch.ones(x.shape[0] * GROWTH_BYTES_PER_SAMPLE // 4)  # float32, every page touched
        return self.linear(x) + held[-1]


GROWTH_BYTES_PER_SAMPLE = 256 * 2**20


def grows_with_batch() -> nn.Module:
    """Holds 256 MiB per sample of its batch during each forward pass: its limit under a 1 GiB host memory
    cap is 2 or 3 samples."""
    return _Grows()


class _DataDependent(nn.Module):
    """Control flow on a tensor's value: torch.export (hence the ONNX exporter) cannot trace it."""

    input_shape = (3, 8, 8)

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3 * 8 * 8, 4)

    def forward(self, x):  # type: ignore[no-untyped-def]
        flat = x.flatten(1)
        if flat.sum() > 0:
            return self.linear(flat)
        return self.linear(-flat)


def data_dependent() -> nn.Module:
    return _DataDependent()


def _record_pid(pid: int) -> None:
    path = os.environ.get("WATTGAP_TEST_PIDS")
    if path:
        with open(path, "a") as file:
            file.write(f"{pid}\n")


def spawns_orphans() -> nn.Module:
    """Starts a helper in a session of its own (out of reach of a process-group kill) and leaves it."""
    import subprocess
    import sys

    helper = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True, stdin=subprocess.DEVNULL
    )
    _record_pid(helper.pid)
    return tiny()


def forks_holding_the_pipe() -> nn.Module:
    """Forks a child that keeps every inherited descriptor, the result pipe among them, open for 300 s."""
    child = os.fork()
    if child == 0:
        time.sleep(300)
        os._exit(0)
    _record_pid(child)
    return tiny()


spawns_orphans.input_shape = (3, 8, 8)  # type: ignore[attr-defined]
forks_holding_the_pipe.input_shape = (3, 8, 8)  # type: ignore[attr-defined]


def fails_after_first_process() -> nn.Module:
    """Builds in the first two processes that call it (the probe before the run, then the cell's first
    process) and raises in every later one: a cell flaky across processes. The markers live in
    $WATTGAP_TEST_MARKER_DIR (one per test)."""
    folder = os.environ["WATTGAP_TEST_MARKER_DIR"]
    built = len([name for name in os.listdir(folder) if name.startswith("built-")])
    if built >= 2:
        raise RuntimeError("this model fails in its second process")
    open(os.path.join(folder, f"built-{built}"), "w").close()
    return tiny()


LEAK_BYTES = 1536 * 2**20


def leaks_into_its_process() -> nn.Module:
    """Changes what a later cell would see if it shared this process: a global of a module the fork server
    preloads (torch), its default dtype, and 1.5 GiB of memory held by torch, every page touched."""
    import torch

    ballast = bytearray(LEAK_BYTES)
    ballast[::4096] = b"\x01" * len(ballast[::4096])
    torch._wattgap_ballast = ballast  # type: ignore[attr-defined]
    model = tiny()
    torch.set_default_dtype(torch.float64)  # after building: the model and its inputs stay float32
    return model


def reports_leaks() -> nn.Module:
    """Fails, saying what it found of an earlier cell's changes (none, when cells are isolated)."""
    import torch

    seen = {"ballast": hasattr(torch, "_wattgap_ballast"), "float64": torch.get_default_dtype() == torch.float64}
    raise RuntimeError(f"leaks seen: {seen}")


class _TokensAndFeatures(nn.Module):
    """Two inputs: token ids (int64, below 50) and 4 float features; 3 outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(50, 8)
        self.head = nn.Linear(8 + 4, 3)

    def forward(self, ids, x):  # type: ignore[no-untyped-def]
        import torch

        return self.head(torch.cat([self.embedding(ids).mean(1), x], 1))


def tokens_and_features() -> nn.Module:
    return _TokensAndFeatures()


def squared_error(output, ids, x):  # type: ignore[no-untyped-def]
    """A user's loss: the output's mean square; it checks that it is given the inputs, in order."""
    import torch

    if ids.dtype != torch.int64 or x.shape[1] != 4:
        raise AssertionError(f"the loss was given {ids.dtype} and {tuple(x.shape)}")
    return (output**2).mean()


def keras_model():  # type: ignore[no-untyped-def]
    """A Keras callable: a small dense network on 6 features."""
    import keras

    inputs = keras.Input((6,), name="features")
    return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(8, activation="relu")(inputs)))


def large_at_build() -> nn.Module:
    """Holds 1.5 GiB (every page touched) while it is built: over a 1 GiB host memory cap before any cell."""
    import numpy as np

    held = np.ones(3 * 2**28 // 2, dtype=np.float32)  # 1.5 GiB
    time.sleep(5)
    return _Built(float(held[-1]))


class _Built(_Linear4):
    def __init__(self, bias: float) -> None:
        super().__init__()
        self.bias = bias

    def forward(self, x):  # type: ignore[no-untyped-def]
        return self.linear(x) + self.bias


def floods_then_crashes() -> nn.Module:
    """Writes FLOOD_BYTES of junk to its output, then its last words, then dies without a result."""
    line = b"junk " * 200 + b"\n"
    for _ in range(FLOOD_BYTES // len(line)):
        os.write(2, line)
    os.write(2, b"the last words of the cell\n")
    os._exit(3)


FLOOD_BYTES = 200 * 2**20


class _RankFails(_Linear4):
    """Fails on data-parallel rank 1 at its third step, as WATTGAP_TEST_RANK_FAILURE says: ``raise`` an
    exception or ``exit`` the process; every rank writes its pid into the folder WATTGAP_TEST_PIDS."""

    def __init__(self) -> None:
        super().__init__()
        (Path(os.environ["WATTGAP_TEST_PIDS"]) / str(os.getpid())).touch()
        self.steps = 0

    def forward(self, x):  # type: ignore[no-untyped-def]
        import torch.distributed as dist

        self.steps += 1
        if dist.is_initialized() and dist.get_rank() == 1 and self.steps == 3:
            if os.environ["WATTGAP_TEST_RANK_FAILURE"] == "exit":
                os._exit(3)
            raise RuntimeError("rank one gives up")
        return self.linear(x)


def rank_fails() -> nn.Module:
    return _RankFails()


class _ServesThenFails(_Linear4):
    """Serves WATTGAP_TEST_SERVE_CALLS forward passes, then raises in every one after (inside the serve
    workload's system under test, past its pilot); writes its pid into the folder WATTGAP_TEST_PIDS."""

    def __init__(self) -> None:
        super().__init__()
        (Path(os.environ["WATTGAP_TEST_PIDS"]) / str(os.getpid())).touch()
        self.calls = 0

    def forward(self, x):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls > int(os.environ["WATTGAP_TEST_SERVE_CALLS"]):
            raise RuntimeError("the model gives up while serving")
        return self.linear(x)


def serves_then_fails() -> nn.Module:
    return _ServesThenFails()
