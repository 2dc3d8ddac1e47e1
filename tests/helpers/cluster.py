"""A real Ray cluster on this machine for the Ray executor's tests: a head node and a second node, each a
`ray start --block` process of its own with its own resources, every address on the loopback network."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil

# Ray swaps 127.0.0.1 (and localhost) for the address of the interface that reaches the outside, and refuses a
# second node when told not to; another address of the loopback network (127.0.0.0/8, all on `lo`) it keeps.
LOOPBACK = "127.0.0.2"
QUIET_ENV = {"RAY_USAGE_STATS_ENABLED": "0"}
TESTS = Path(__file__).parents[1]
STORE_BYTES = 80 * 2**20  # each node's object store: results are small


@dataclass
class Cluster:
    address: str
    head: subprocess.Popen[bytes]
    second: subprocess.Popen[bytes] | None

    def kill_second(self) -> None:
        """Kill the second node as a machine dies: its raylet and every process under it, at once."""
        assert self.second is not None
        kill_tree(self.second.pid)


def kill_tree(pid: int) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        for process in [*root.children(recursive=True), root]:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _ray() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _start(arguments: list[str], log: Path) -> subprocess.Popen[bytes]:
    """A node; its workers import the tests' user models (tests/ first on their path)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [_ray(), "start", "--block", "--disable-usage-stats", "--node-ip-address", LOOPBACK, *arguments],
            env=os.environ
            | QUIET_ENV
            | {"PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _nodes(address: str) -> int:
    status = subprocess.run(
        [_ray(), "status", "--address", address], env=os.environ | QUIET_ENV, capture_output=True, text=True
    )
    return sum(1 for line in status.stdout.splitlines() if line.strip().startswith("1 node_"))


@contextlib.contextmanager
def local_cluster(logs: Path, head_cpus: int = 2, second_cpus: int = 1) -> Iterator[Cluster]:
    """A head with ``head_cpus`` and a second node with ``second_cpus`` (and a resource ``second``; none
    when 0), both alive when it yields; both ended, with every process they started, when it returns."""
    port = _free_port()
    address = f"{LOOPBACK}:{port}"
    store = ["--object-store-memory", str(STORE_BYTES)]
    head = _start(
        ["--head", "--port", str(port), "--num-cpus", str(head_cpus), "--include-dashboard", "false", *store],
        logs / "head.log",
    )
    second = None
    try:
        deadline = time.monotonic() + 90
        while _nodes(address) < 1:
            assert time.monotonic() < deadline and head.poll() is None, (logs / "head.log").read_text()[-2000:]
            time.sleep(0.5)
        if second_cpus:
            second = _start(
                ["--address", address, "--num-cpus", str(second_cpus), "--resources", '{"second": 1}', *store],
                logs / "second.log",
            )
            while _nodes(address) < 2:
                assert time.monotonic() < deadline and second.poll() is None, (logs / "second.log").read_text()[-2000:]
                time.sleep(0.5)
        yield Cluster(address, head, second)
    finally:
        if "ray" in sys.modules:  # this process's connection: Ray ends a driver whose cluster is gone
            sys.modules["ray"].shutdown()
        for node in (second, head):
            if node is not None:
                kill_tree(node.pid)
                node.wait()
