"""GPU evidence in one prepared command: every CUDA check and the studies' GPU sweeps within a time budget
it enforces, and what they measured packed into OUT (at most 8 files of at most 16 MiB each).

On a machine with a CUDA build of PyTorch and no network (`make gpu-evidence OUT=folder`):

    python3 bench/gpu_evidence.py [--out gpu-evidence] [--budget-s 540] [--wheels gpu-wheels]

1. Set-up: the pure-Python dependencies that machine lacks (pydantic and its core: `make gpu-wheels` fills
   the wheel folder here beforehand) are installed into a folder of their own with --no-deps, and wattgap
   runs from this checkout's src/ on the machine's own torch: nothing of the machine's is replaced.
2. Checks, in seconds, of what would waste the minutes: CUDA visible, NVML readable, wattgap importable with
   the machine's torch, a CUDA cell through the fork server. Each failure is one line, and the script stops.
3. The steps, each with its share of the budget, printed as it goes; a step whose share no longer fits
   what is left is skipped with that reason: `pytest -m gpu`; the DEEP-GAP cut (ResNet50, then ResNet18,
   inference on CUDA in fp32, tf32, bf16, fp16 and torchao int8, batches 1 to 256, and the largest batch
   that fits in fp16); the Democratizing-AI cut (Conv6, ResNet18 and VGG16 training on CUDA and on every
   CPU core, for `wattgap study gpu-vs-cpu`); NVML's energy counter against polled power over the same
   windows, and the GPU's idle power; the report (HTML, Markdown) and a JSON export of every run.

`--cpu-rehearsal` runs the same script end to end on a machine without a GPU, with tiny budgets: the CUDA
steps are skipped with the reason, the rest runs for real (the CPU halves of the sweeps at small shapes),
so that the first run on a GPU spends its minutes measuring. A test in `make test` runs the rehearsal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_FILES, MAX_FILE_BYTES = 8, 16 * 2**20  # what the machine that lends the GPU hands back


@dataclass
class Evidence:
    out: Path
    budget_s: float
    rehearsal: bool
    environment: dict[str, str]
    started: float = field(default_factory=time.monotonic)
    logs: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="wattgap-evidence-logs-")))
    steps: list[dict[str, object]] = field(default_factory=list)

    def left_s(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)

    def say(self, line: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f} s] {line}", flush=True)

    def command(self, name: str, args: list[str], timeout_s: float) -> int:
        """``args`` run with wattgap's environment, its output in the step's log; its exit status (124 when
        it outran ``timeout_s``, as timeout(1) says)."""
        log = self.logs / f"{name}.log"
        with log.open("a") as handle:
            handle.write(f"$ {' '.join(args)}\n")
            handle.flush()
            process = subprocess.Popen(
                args,
                cwd=self.out,
                env=self.environment,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                return process.wait(timeout_s)
            except subprocess.TimeoutExpired:  # SIGTERM: a sweep stores what finished and marks its run interrupted
                handle.write(f"\n[stopped: outran {timeout_s:.0f} s]\n")
                os.killpg(process.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(15)
                with contextlib.suppress(ProcessLookupError):  # its cell's process and the fork server too
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return 124

    def wattgap(self, name: str, args: list[str], timeout_s: float) -> int:
        return self.command(name, [sys.executable, "-m", "wattgap", *args, "--db", "evidence.db"], timeout_s)

    def step(self, name: str, share: float, body: Callable[[float], str], needs_cuda: bool = False) -> None:
        """Run ``body(timeout_s)`` with ``share`` of the budget (or what is left, if less and enough)."""
        allowed = min(share * self.budget_s, self.left_s())
        if needs_cuda and self.rehearsal:
            outcome, why = "skipped", "needs CUDA (rehearsal on the CPU)"
        elif allowed < 0.5 * share * self.budget_s:
            outcome, why = "skipped", f"{self.left_s():.0f} s left of the budget, under half of its share"
        else:
            self.say(f"{name}: up to {allowed:.0f} s of the {self.left_s():.0f} s left")
            begin = time.monotonic()
            why = body(allowed)
            outcome = "ran" if not why.startswith("FAILED") else "failed"
            why = f"{why} in {time.monotonic() - begin:.0f} s"
        self.steps.append({"step": name, "outcome": outcome, "detail": why})
        self.say(f"{name}: {outcome}: {why}")


def install(wheels: Path, rehearsal: bool) -> dict[str, str]:
    """The environment wattgap runs in: this checkout's src/ first, then the wheel folder's packages
    (installed into a folder of their own, without their dependencies), then the machine's own."""
    paths = [str(ROOT / "src")]
    if rehearsal:
        print(f"set-up: rehearsal: this interpreter's packages serve; {wheels} is installed on the GPU machine")
    elif wheels.is_dir() and any(wheels.glob("*.whl")):
        target = Path(tempfile.mkdtemp(prefix="wattgap-site-"))
        command = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
        subprocess.run([*command, "--target", str(target), *map(str, sorted(wheels.glob("*.whl")))], check=True)
        paths.append(str(target))
        print(f"set-up: {len(list(wheels.glob('*.whl')))} wheels from {wheels} into {target}")
    environment = dict(os.environ, PYTHONPATH=os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]))
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


PREFLIGHT = """
import sys
import torch, wattgap.api  # wattgap importable beside the machine's torch
rehearsal = sys.argv[1] == "1"
print("torch", torch.__version__, "cuda", torch.version.cuda, "visible:", torch.cuda.is_available())
if not rehearsal:
    if not torch.cuda.is_available():
        raise SystemExit("CUDA is not visible to torch " + torch.__version__)
    import pynvml
    pynvml.nvmlInit()
    print("NVML: driver", pynvml.nvmlSystemGetDriverVersion(), "devices", pynvml.nvmlDeviceGetCount())
"""


def preflight(evidence: Evidence) -> None:
    """What would waste the minutes, found in seconds: each failure one line, and the script stops."""
    device = "cpu" if evidence.rehearsal else "cuda"
    cell = ["run", "--model", "conv6", "--device", device, "--batch-size", "1", "--image-size", "32"]
    cell += ["--max-time", "0.2", "--idle", "0", "--quiet", "--db", "preflight.db", "--name", "preflight"]
    checks = [
        ("CUDA, NVML, wattgap beside torch", [sys.executable, "-c", PREFLIGHT, "1" if evidence.rehearsal else "0"]),
        ("a cell through the fork server", [sys.executable, "-m", "wattgap", *cell]),
    ]
    for name, args in checks:
        begin = time.monotonic()
        code = evidence.command("preflight", args, timeout_s=120)
        if code != 0:
            log = shutil.move(evidence.logs / "preflight.log", evidence.out / "preflight.log")  # it comes back
            shutil.rmtree(evidence.logs, ignore_errors=True)
            tail = Path(log).read_text().strip().splitlines()[-1:]
            raise SystemExit(
                f"preflight: {name}: exit {code}: {' '.join(tail) or 'no output'}; nothing else ran (its log: {log})"
            )
        evidence.say(f"preflight: {name}: ok ({time.monotonic() - begin:.1f} s)")
    (evidence.out / "preflight.db").unlink(missing_ok=True)


def gpu_tests(evidence: Evidence) -> Callable[[float], str]:
    def body(timeout_s: float) -> str:
        tests = [str(ROOT / "tests" / "test_gpu.py")]
        code = evidence.command(
            "pytest-gpu", [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "--durations=10", *tests], timeout_s
        )
        summary = (evidence.logs / "pytest-gpu.log").read_text().strip().splitlines()[-1:]
        return ("" if code in (0, 5) else "FAILED ") + f"pytest -m gpu: exit {code}, {' '.join(summary)}"

    return body


def deep_gap(evidence: Evidence) -> Callable[[float], str]:
    """ResNet50 then ResNet18 inference on CUDA over precisions and batches (CUDA events, NVML memory and
    energy), torchao int8 where it imports, and the largest batch that fits in fp16."""

    def body(timeout_s: float) -> str:
        deadline, done = time.monotonic() + timeout_s, []
        sweeps = [
            ("deep-gap-resnet50", ["--model", "resnet50", "--precision", "fp32,tf32,bf16,fp16"]),
            ("deep-gap-resnet50-int8", ["--model", "resnet50", "--backend", "torchao", "--precision", "int8"]),
            ("deep-gap-resnet50-max", ["--model", "resnet50", "--precision", "fp16", "--batch-size", "max"]),
            ("deep-gap-resnet18", ["--model", "resnet18", "--precision", "fp32,tf32,bf16,fp16"]),
        ]
        for name, args in sweeps:
            left = deadline - time.monotonic()
            if left < 20:
                done.append(f"{name} skipped ({left:.0f} s left)")
                continue
            batches = [] if "max" in args else ["--batch-size", "1,8,32,128,256"]
            common = ["--device", "cuda", "--workload", "infer", "--max-time", "1", "--name", name, "--quiet"]
            code = evidence.wattgap(name, ["run", *args, *batches, *common], left)
            done.append(f"{name} exit {code}")
        return ", ".join(done)

    return body


def democratizing_ai(evidence: Evidence, cores: int) -> Callable[[float], str]:
    """Conv6, ResNet18 and VGG16 training steps on CUDA and on all the CPU's cores, same batch and image
    size, then the gpu-vs-cpu study's table. Rehearsal: the CPU half, Conv6 at 32x32."""

    def body(timeout_s: float) -> str:
        if evidence.rehearsal:
            models, devices, batch, image, cap, idle = "conv6", "cpu", "4", "32", "0.2", "1"
        else:
            models, devices, batch, image, cap, idle = "conv6,resnet18,vgg16", "cuda,cpu", "32", "64", "2", "5"
        args = ["run", "--model", models, "--workload", "train", "--device", devices, "--threads", str(cores)]
        args += ["--batch-size", batch, "--image-size", image, "--max-time", cap, "--idle", idle]
        args += ["--name", "democratizing-ai", "--quiet"]
        code = evidence.wattgap("democratizing-ai", args, timeout_s)
        if evidence.rehearsal:
            return f"the CPU half, exit {code}"
        table = evidence.wattgap("study-gpu-vs-cpu", ["study", "gpu-vs-cpu", "latest"], 60)
        return f"sweep exit {code}, study exit {table}"

    return body


NVML_CHECK = """
import json, sys, threading, time
import torch
from wattgap.measure.energy.nvml import NvmlMeter
from wattgap.measure.energy import measure_idle
from wattgap.measure.energy.settings import EnergySettings
uuid = str(torch.cuda.get_device_properties(0).uuid)
x = torch.randn(8192, 8192, device="cuda", dtype=torch.float16)
windows = []
for seconds in (2.0, 5.0, 5.0):
    counter, polled = NvmlMeter(uuid, "counter"), NvmlMeter(uuid, "polled", 0.02)
    counter.start(); polled.start(); begin = time.perf_counter()
    while time.perf_counter() - begin < seconds:
        for _ in range(20):
            y = x @ x
        torch.cuda.synchronize()
    counter_j, _ = counter.stop(); polled_j, _ = polled.stop()
    windows.append({"window_s": time.perf_counter() - begin, "counter_j": counter_j, "polled_j": polled_j,
                    "polled_over_counter": polled_j / counter_j})
idle = {k: v.model_dump() for k, v in measure_idle(["cuda"], EnergySettings(idle_s=5.0)).items()}
json.dump({"windows": windows, "idle_power": idle}, open(sys.argv[1], "w"), indent=1)
print(json.dumps(windows))
"""


def nvml_energy(evidence: Evidence) -> Callable[[float], str]:
    def body(timeout_s: float) -> str:
        code = evidence.command("nvml", [sys.executable, "-c", NVML_CHECK, "nvml-energy.json"], timeout_s)
        return (
            "" if code == 0 else "FAILED "
        ) + f"counter against polled power over 3 windows, idle power: exit {code}"

    return body


def report(evidence: Evidence) -> Callable[[float], str]:
    """The report of every run, a JSON export of each, and the machine's environment, into OUT."""

    def body(timeout_s: float) -> str:
        database = evidence.out / "evidence.db"
        if not database.exists():
            return "FAILED no run was stored"
        import sqlite3

        connection = sqlite3.connect(database)
        try:
            runs = [row[0] for row in connection.execute("SELECT run_id FROM runs ORDER BY created_at")]
        finally:
            connection.close()
        code = evidence.wattgap("report", ["report", *runs, "--html", "report.html", "--md", "report.md"], timeout_s)
        (evidence.out / "exports").mkdir(exist_ok=True)
        exports = []
        for run_id in runs:
            output = f"exports/{run_id}.json"
            exports.append(evidence.wattgap("export", ["export", run_id, "--format", "json", "--output", output], 60))
        with (evidence.out / "environment.json").open("w") as handle:
            environment = [sys.executable, "-m", "wattgap", "env", "--format", "json"]
            subprocess.run(environment, env=evidence.environment, stdout=handle, timeout=60, check=False)
        return (
            "" if code == 0 else "FAILED "
        ) + f"report of {len(runs)} runs exit {code}, exports exit {sorted(set(exports))}"

    return body


def pack(evidence: Evidence) -> list[Path]:
    """OUT holds at most MAX_FILES files: the database, the report, the NVML check, the summary, and one
    archive of the exports, the Markdown report's plots and every log."""
    out = evidence.out
    if (out / "evidence.db").exists():  # one self-contained file: the write-ahead log folded in, and gone
        import sqlite3

        connection = sqlite3.connect(out / "evidence.db")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        connection.close()
    archive = out / "logs-and-exports.tar.gz"
    with tarfile.open(archive, "w:gz") as packed:
        packed.add(evidence.logs, arcname="logs")
        for extra in ("exports", "report_files"):
            if (out / extra).is_dir():
                packed.add(out / extra, arcname=extra)
    for extra in ("exports", "report_files"):
        shutil.rmtree(out / extra, ignore_errors=True)
    shutil.rmtree(evidence.logs, ignore_errors=True)
    (out / "summary.json").write_text(json.dumps({"budget_s": evidence.budget_s, "steps": evidence.steps}, indent=1))
    files = sorted(path for path in out.iterdir() if path.is_file())
    too_big = [
        f"{path.name} ({path.stat().st_size / 2**20:.1f} MiB)" for path in files if path.stat().st_size > MAX_FILE_BYTES
    ]
    if len(files) > MAX_FILES or too_big:
        raise SystemExit(f"pack: {len(files)} files (at most {MAX_FILES}); over 16 MiB: {', '.join(too_big) or 'none'}")
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("gpu-evidence"))
    parser.add_argument("--budget-s", type=float, help="default: 540 (9 minutes), 120 with --cpu-rehearsal")
    parser.add_argument("--wheels", type=Path, default=ROOT / "gpu-wheels")
    parser.add_argument("--cpu-rehearsal", action="store_true")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if any(args.out.iterdir()):
        raise SystemExit(f"--out: {args.out} is not empty; give an empty or new folder")
    budget = args.budget_s or (120.0 if args.cpu_rehearsal else 540.0)
    evidence = Evidence(args.out.resolve(), budget, args.cpu_rehearsal, install(args.wheels, args.cpu_rehearsal))
    preflight(evidence)
    cores = os.cpu_count() or 1
    evidence.step("pytest -m gpu", 0.15, gpu_tests(evidence))
    evidence.step("DEEP-GAP cut", 0.40, deep_gap(evidence), needs_cuda=True)
    evidence.step("Democratizing-AI cut", 0.20, democratizing_ai(evidence, cores))
    evidence.step("NVML energy", 0.08, nvml_energy(evidence), needs_cuda=True)
    evidence.step("report", 0.10, report(evidence))
    files = pack(evidence)
    evidence.say(f"done: {len(files)} files in {evidence.out}: {', '.join(path.name for path in files)}")
    if any(step["outcome"] == "failed" for step in evidence.steps):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
