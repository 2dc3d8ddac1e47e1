"""The command line: parses, calls the Python API, renders. Every WattgapError becomes one line on
stderr and exit status 2. Frameworks are imported only by the commands that need them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from wattgap.errors import ConfigError, WattgapError, field_error, shown
from wattgap.render.format import plain, quantity

app = typer.Typer(
    help="Benchmark deep-learning workloads: latency, throughput, memory and FLOPs, stored in SQLite.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
MIN_WIDTH, PIPED_WIDTH = 60, 120


def _width() -> int:
    """A terminal's own width, else COLUMNS when it is a number, else 120 columns (rich would take 80);
    never under 60, where no table fits (COLUMNS=0 printed nothing at all)."""
    given = os.environ.get("COLUMNS", "")
    if sys.stdout.isatty():
        width = shutil.get_terminal_size((PIPED_WIDTH, 24)).columns
    else:
        width = int(given) if given.strip().isdigit() else PIPED_WIDTH
    return max(MIN_WIDTH, width)


console = Console(width=_width())
# Exit statuses of `wattgap run` (README: Exit statuses).
EXIT_NOT_ALL_RAN, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 1, 2, 130
DbOption = Annotated[Path, typer.Option("--db", help="SQLite results database.")]
DEFAULT_DB = Path("wattgap.db")


class TableOrJson(str, Enum):
    table = "table"
    json = "json"


class ExportFormat(str, Enum):
    csv = "csv"
    json = "json"


class Listing(str, Enum):
    models = "models"
    suites = "suites"
    runs = "runs"


FormatOption = Annotated[TableOrJson, typer.Option("--format", help="table for people, json for scripts.")]
ROWS_SHOWN = 200  # the rows a table shows unless told: past a few hundred rows a table is searched, not read
RowsOption = Annotated[
    int, typer.Option("--rows", min=0, help="The rows the table shows, from its first (0: every one; JSON has all).")
]


def _split(value: str | None) -> list[str] | None:
    return [part.strip() for part in value.split(",") if part.strip()] if value else None


def _ints(flag: str, value: str | None, allowed: str) -> list[int] | None:
    parts = _split(value)
    if parts is None:
        return None
    try:
        return [int(part) for part in parts]
    except ValueError:
        raise field_error(flag, value, allowed) from None


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _emit(fmt: TableOrJson, data: Callable[[], Any], view: Callable[[], Any]) -> None:
    """What a reading command prints: ``data()`` as JSON with --format json, else ``view()`` for people."""
    if fmt is TableOrJson.json:
        _print_json(data())
    else:
        console.print(view())


@app.command()
def run(
    suite: Annotated[str | None, typer.Option(help="A shipped suite (wattgap list suites).")] = None,
    config: Annotated[Path | None, typer.Option(help="A YAML sweep file.")] = None,
    model: Annotated[str | None, typer.Option(help="Models, comma-separated; or package.module:callable.")] = None,
    workload: Annotated[str | None, typer.Option(help="infer,train,train-to-accuracy,train-ddp,serve")] = None,
    backend: Annotated[
        str | None,
        typer.Option(help="Backends, e.g. torch-eager,torch-compile,onnxruntime (`wattgap env`: which are usable)."),
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N, mps")] = None,
    precision: Annotated[str | None, typer.Option(help="fp32,tf32,bf16,fp16,int8")] = None,
    batch_size: Annotated[
        str | None, typer.Option(help="Batch sizes, e.g. 1,8,32; or max: search the largest batch that runs")
    ] = None,
    threads: Annotated[str | None, typer.Option(help="CPU intra-op thread counts, e.g. 1,2")] = None,
    world_size: Annotated[
        str | None, typer.Option(help="train-ddp: the ranks of data-parallel training, e.g. 1,2,4")
    ] = None,
    scenario: Annotated[
        str | None,
        typer.Option(
            help="serve: LoadGen scenarios, e.g. offline,server (single-stream, multi-stream, server, offline)"
        ),
    ] = None,
    find_max_qps: Annotated[
        bool, typer.Option("--find-max-qps", help="serve: bisect the highest server QPS LoadGen reports VALID.")
    ] = False,
    memory_format: Annotated[
        str | None, typer.Option(help="PyTorch layouts: auto (channels_last for 4-D inputs), contiguous, channels_last")
    ] = None,
    image_size: Annotated[int | None, typer.Option(help="Input side in pixels.")] = None,
    input_shape: Annotated[
        str | None, typer.Option(help="A user model's input shape without the batch axis, e.g. 3,224,224.")
    ] = None,
    max_time: Annotated[float | None, typer.Option(help="Cap on each cell's measured window, s.")] = None,
    max_host_memory_gb: Annotated[
        float | None, typer.Option(help="Host memory a cell may hold, GiB; over it, the cell is out of memory.")
    ] = None,
    repeats: Annotated[
        int | None, typer.Option(help="Fresh processes per cell; the median's interval then spans them.")
    ] = None,
    order: Annotated[
        str | None, typer.Option(help="sweep or interleaved (seeded random; the default when --repeats > 1).")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Per-cell subprocess timeout, s.")] = None,
    dataset: Annotated[
        str | None, typer.Option(help="digits, cifar10 or folder: train-to-accuracy data; top-1 for infer.")
    ] = None,
    dataset_path: Annotated[
        str | None, typer.Option(help="cifar10: the archive or its folder; folder: one subfolder per class.")
    ] = None,
    target_accuracy: Annotated[
        float | None, typer.Option(help="Validation top-1 in (0, 1] that ends training.")
    ] = None,
    max_epochs: Annotated[int | None, typer.Option(help="Epoch cap of train-to-accuracy.")] = None,
    idle: Annotated[float | None, typer.Option(help="Seconds of idle power measured before the run; 0: none.")] = None,
    resume: Annotated[str | None, typer.Option(help="Run only the cells of this run not yet stored.")] = None,
    executor: Annotated[
        str, typer.Option(help="local (one cell at a time, here) or ray (each cell a task on a Ray cluster).")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="With --executor ray: auto (default), HOST:PORT or ray://HOST:PORT.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="The run's name (default: the suite's or config's).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="A label stored with the run; repeat for several.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; run and write nothing.")] = False,
    db: DbOption = DEFAULT_DB,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bars.")] = False,
) -> None:
    """Run a sweep (the quick suite when nothing is named); store each cell's result as it finishes.
    Exit status 0: every cell that can run here ran; 1: some cell failed, ran out of memory (but for the
    probes of --batch-size max), timed out or crashed, or none ran (all skipped); 2: bad input, nothing run;
    130: interrupted."""
    from wattgap import api

    runner = api.executor(executor, address)
    sweep_options = (
        suite,
        config,
        model,
        workload,
        backend,
        device,
        precision,
        batch_size,
        threads,
        world_size,
        scenario,
        image_size,
        input_shape,
    )
    data_options = (
        memory_format,
        max_host_memory_gb,
        dataset,
        dataset_path,
        target_accuracy,
        max_epochs,
        idle,
        max_time,
        repeats,
        order,
        timeout,
        name,
        tag,
    )
    if resume is not None:
        if any(v is not None for v in (*sweep_options, *data_options)) or dry_run or find_max_qps:
            raise ConfigError("--resume: runs the stored sweep of that run; give no other sweep options with it")
        state = api.finished(db, resume)
        if state is not None:  # nothing to run: say so from the counts, without reading the results
            ended = ", ".join(f"{count} {status}" for status, count in state.counts.items() if count)
            said = f"run {state.run_id} is complete ({ended}): nothing to run; `wattgap show` shows it"
            console.print(Text(plain(said)))
            if not state.all_ran:
                raise typer.Exit(EXIT_NOT_ALL_RAN)
            return
        _execute(lambda p, created: api.resume(db, resume, p, created, runner), quiet, resume)
        return
    overrides: dict[str, Any] = {
        "models": _split(model),
        "workloads": _split(workload),
        "backends": _split(backend),
        "devices": _split(device),
        "precisions": _split(precision),
        "batch_sizes": "max"
        if batch_size == "max"
        else _ints("--batch-size", batch_size, "comma-separated integers from 1 to 65536, or max"),
        "threads": _ints("--threads", threads, "comma-separated integers from 1 to 1024"),
        "input_shape": _ints("--input-shape", input_shape, "comma-separated positive integers, e.g. 3,224,224"),
        "memory_formats": _split(memory_format),
        "image_size": image_size,
        "cell_timeout_s": timeout,
        "max_host_memory_gb": max_host_memory_gb,
        "dataset": dataset,
        "dataset_path": dataset_path,
        "target_accuracy": target_accuracy,
        "max_epochs": max_epochs,
        "name": name,
    }
    sizes = _ints("--world-size", world_size, "comma-separated integers from 1 to 1024")
    sweep = api.sweep_from_options(
        suite,
        config,
        overrides,
        max_time_s=max_time,
        idle_s=idle,
        repeats=repeats,
        order=order,
        world_sizes=sizes,
        scenarios=_split(scenario),
        find_max_qps=find_max_qps,
    )
    if dry_run:
        from wattgap.render.terminal import plan_view

        console.print(plan_view(sweep.name, api.plan(sweep)))
        return
    if sweep.batch_search:
        from wattgap.plan import search_bound

        console.print(Text(search_bound(sweep)))
    _execute(lambda p, created: api.run(sweep, db, p, created, runner, tag), quiet)


def _execute(start: Any, quiet: bool, resuming: str | None = None) -> None:
    """Run with live progress (or, with --quiet, a line per finished cell), then print the table and the
    run id. ``start(progress, on_created)`` is api.run or api.resume with their other arguments bound;
    ``resuming``: the run id a resume was given."""
    from wattgap.render.progress import LineProgress, RichProgress
    from wattgap.render.terminal import run_view

    progress: LineProgress = LineProgress(console) if quiet else RichProgress(console)
    started: dict[str, str] = {}

    def created(run_id: str, plan: Any) -> None:
        started["run_id"] = run_id
        skipped = f", {len(plan.skipped)} skipped before starting" if plan and plan.skipped else ""
        console.print(Text(f"run {run_id}: {len(plan.cells) if plan else 'resuming its'} cells{skipped}"))

    try:
        with progress:
            finished = start(progress, created)
    except KeyboardInterrupt as stop:
        run_id = started.get("run_id", resuming)
        how = f"stopped by {signal.Signals(stop.signum).name}" if isinstance(stop, Stopped) else "interrupted"
        if run_id is None:  # stopped while planning or probing models: the run was never created
            console.print(f"{how} before the run was created; nothing was stored")
        else:
            console.print(Text(plain(f"{how}; finished cells are stored. Resume with: wattgap run --resume {run_id}")))
        raise typer.Exit(128 + stop.signum if isinstance(stop, Stopped) else EXIT_INTERRUPTED) from None
    console.print(run_view(finished, ROWS_SHOWN))
    console.print(f"run id: {finished.run_id}")
    if not finished.state().all_ran:
        raise typer.Exit(EXIT_NOT_ALL_RAN)


@app.command("list")
def list_(
    what: Annotated[Listing, typer.Argument(help="models, suites or runs")],
    db: DbOption = DEFAULT_DB,
    fmt: FormatOption = TableOrJson.table,
    shown: Annotated[
        int, typer.Option("--rows", min=0, help="The runs the table shows, the newest (0: every one; JSON has all).")
    ] = ROWS_SHOWN,
) -> None:
    """List the model zoo, the shipped suites, or the runs in a database."""
    from rich.table import Table

    from wattgap import api
    from wattgap.render.terminal import more_rows

    if what is Listing.models:
        rows = api.list_models()
    elif what is Listing.suites:
        rows = api.list_suites()
    else:
        rows = api.list_runs(db, _warn)
    if fmt is TableOrJson.json:
        _print_json(rows)
        return
    total = len(rows)
    if what is Listing.runs and shown:
        rows = rows[-shown:]  # the newest: a database of a year of runs is searched with --format json
    table = Table(title=what.value, title_justify="left")
    for column in rows[0] if rows else ["(none)"]:
        if column == ("run_id" if what is Listing.runs else "name"):  # what names a row is never cut
            table.add_column(column, no_wrap=True, min_width=max(len(plain(row[column])) for row in rows))
        else:
            table.add_column(column)
    for row in rows:
        table.add_row(*(Text(plain(_listed(v))) for v in row.values()))
    console.print(table, *more_rows(total, len(rows), "runs (the oldest)"))


def _listed(value: object) -> object:
    """A listed value as people read it: "-" for none, "generator 11378179, discriminator 2764737" for a
    mapping (never a Python repr)."""
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{key} {item}" for key, item in value.items())
    return value


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="A run id, a unique prefix, or 'latest'.")],
    db: DbOption = DEFAULT_DB,
    fmt: FormatOption = TableOrJson.table,
    rows: RowsOption = ROWS_SHOWN,
) -> None:
    """Print a stored run's results table again."""
    from wattgap.api import load_run
    from wattgap.render.data import results_data
    from wattgap.render.terminal import run_view

    stored = load_run(db, run_id)
    _emit(fmt, lambda: results_data(stored), lambda: run_view(stored, rows))


@app.command()
def delete(
    run_id: Annotated[str, typer.Argument(help="A run id, a unique prefix, or 'latest'.")],
    yes: Annotated[bool, typer.Option("--yes", help="Delete without asking (required without a terminal).")] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Delete a run with its cells and results."""
    from wattgap import api

    stored = api.load_run(db, run_id)
    what = f"run {stored.run_id} ({stored.name}, {len(stored.results)} results)"
    if not yes:
        if not sys.stdin.isatty():
            raise ConfigError(f"--yes: required to delete {what} without a terminal to confirm on")
        typer.confirm(f"delete {what}?", abort=True)
    deleted, count = api.delete_run(db, stored.run_id)
    console.print(Text(plain(f"deleted run {deleted} and its {count} results")))


@app.command()
def env(fmt: FormatOption = TableOrJson.table) -> None:
    """Describe this machine: CPU, memory, GPUs, driver and CUDA, libraries, usable devices and backends."""
    from wattgap.api import environment as describe
    from wattgap.render.terminal import environment_tables

    environment = describe()
    if fmt is TableOrJson.json:
        _print_json(environment.model_dump(mode="json"))
        return
    for table in environment_tables(environment):
        console.print(table)


@app.command()
def export(
    run_id: Annotated[str, typer.Argument(help="A run id, a unique prefix, or 'latest'.")],
    fmt: Annotated[ExportFormat, typer.Option("--format", help="csv: a row per cell; json: everything.")],
    output: Annotated[Path | None, typer.Option(help="File to write; standard output when absent.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing regular file at --output.")] = False,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Export a run as CSV or JSON."""
    from wattgap import api

    api.export(db, run_id, fmt.value, output, force)


@app.command()
def compare(
    run_a: Annotated[str, typer.Argument(help="Run A, the baseline.")],
    run_b: Annotated[str, typer.Argument(help="Run B (may be the same run as A).")],
    by: Annotated[str, typer.Option(help="The cell field that differs between matched cells.")] = "device",
    baseline: Annotated[str | None, typer.Option(help="With one run: the value of --by that is A.")] = None,
    metric: Annotated[
        str, typer.Option(help="throughput (per sample, B over A) or latency (per iteration, B over A).")
    ] = "throughput",
    fail_above: Annotated[
        float | None,
        typer.Option(help="Exit 1 when B is worse than A in --metric by more than this percent, CI included."),
    ] = None,
    db: DbOption = DEFAULT_DB,
    fmt: FormatOption = TableOrJson.table,
    rows: RowsOption = ROWS_SHOWN,
) -> None:
    """B against A for cells that differ only in one field (throughput or latency), with 95% CIs; runs from
    two machines compare by device with each GPU named."""
    from wattgap import api
    from wattgap.analysis.speedup import BUSY, regressions
    from wattgap.measure.stats import WITHIN_ONE_PROCESS
    from wattgap.render.data import comparison_data
    from wattgap.render.terminal import print_comparison

    if fail_above is not None and not 0 <= fail_above < 100:
        raise field_error("--fail-above", fail_above, "a percentage from 0 to below 100")
    comparison = api.compare(db, run_a, run_b, by=by, baseline=baseline, metric=metric)
    slower = regressions(comparison, fail_above) if fail_above is not None else []
    if fmt is TableOrJson.json:
        _print_json(comparison_data(comparison) | {"fail_above_pct": fail_above, "regressions": len(slower)})
        raise typer.Exit(EXIT_NOT_ALL_RAN if slower else 0)
    if not comparison.pairs:
        raise ConfigError(
            f"--by {by}: no cells of {comparison.run_a} and {comparison.run_b} match on every other field"
        )
    print_comparison(console, comparison, rows)
    for found in slower:
        pair = found.pair
        if metric == "latency":
            what = f"{pair.latency_change[0]:+.1%} latency per iteration ({found.best:+.1%} at best)"
        else:
            what = f"{pair.speedup - 1:+.1%} throughput per sample ({found.best:+.1%} at best)"
        console.print(
            Text(
                plain(
                    f"REGRESSION: B {pair.b.cell.label} has {what} against A {pair.a.cell.label}, "
                    f"beyond --fail-above {fail_above:g}%"
                )
            ),
            soft_wrap=True,  # one line per regression, for logs and grep
        )
    single = [pair for pair in comparison.pairs if pair.unjudged == WITHIN_ONE_PROCESS]
    busy = [pair for pair in comparison.pairs if pair.unjudged == BUSY]
    if fail_above is not None and single:
        console.print(
            Text(
                f"not judged by --fail-above: {len(single)} of {len(comparison.pairs)} pairs, whose intervals are "
                "within one process (no drift between processes or runs was measured on this machine in this "
                "database within 7 days when they ran); runs made after two runs of the same cells here carry "
                "the drift between runs, and a run with --repeats 3 or more measures the spread that widens the rest"
            )
        )
    if fail_above is not None and busy:
        console.print(
            Text(
                f"not judged by --fail-above: {len(busy)} of {len(comparison.pairs)} pairs with a SUSPECT side (its "
                "noise audit found the machine busy: a busy machine is not a regression); measure them again on a "
                "quiet machine"
            )
        )
    if slower:
        raise typer.Exit(EXIT_NOT_ALL_RAN)


class Rank(str, Enum):
    gqi = "gqi"
    accuracy_per_kwh = "accuracy_per_kwh"
    samples_per_j = "samples_per_j"
    cost = "cost"
    co2 = "co2"


@app.command()
def tradeoff(
    run_ids: Annotated[list[str], typer.Argument(help="Runs whose cells form the curves (ids, prefixes, 'latest').")],
    share: Annotated[float, typer.Option(help="The knee: the smallest batch reaching this share of the best.")] = 0.9,
    max_latency_ms: Annotated[
        float | None, typer.Option(help="Also pick the best batch whose latency percentile is within this bound.")
    ] = None,
    percentile: Annotated[
        str, typer.Option(help="The latency percentile the bound applies to: p50, p90, p95, p99.")
    ] = "p99",
    db: DbOption = DEFAULT_DB,
    fmt: FormatOption = TableOrJson.table,
    rows: RowsOption = ROWS_SHOWN,
) -> None:
    """Throughput and latency against batch size, with intervals, and the best batch by a stated rule."""
    from wattgap import api
    from wattgap.render.data import tradeoff_data
    from wattgap.render.terminal import tradeoff_view

    bound = max_latency_ms / 1e3 if max_latency_ms is not None else None
    result = api.tradeoff(db, run_ids, share=share, max_latency_s=bound, percentile=percentile)
    _emit(fmt, lambda: tradeoff_data(result), lambda: tradeoff_view(result, rows))


@app.command()
def recommend(
    run_ids: Annotated[list[str], typer.Argument(help="Runs whose cells are the candidates.")],
    objective: Annotated[str, typer.Option(help="throughput, latency, energy or cost (per sample).")] = "throughput",
    max_latency_ms: Annotated[float | None, typer.Option(help="Bound on the latency percentile, ms.")] = None,
    percentile: Annotated[str, typer.Option(help="The latency percentile: p50, p90, p95, p99.")] = "p99",
    min_agreement: Annotated[float | None, typer.Option(help="Minimum top-1 agreement with fp32, in (0, 1].")] = None,
    max_memory_gb: Annotated[float | None, typer.Option(help="Bound on peak memory (device, else host), GiB.")] = None,
    include_degraded: Annotated[bool, typer.Option("--include-degraded", help="Let degraded cells compete.")] = False,
    price_per_kwh: Annotated[float, typer.Option(help="cost: electricity price per kWh.")] = 0.15,
    price_per_device_hour: Annotated[float, typer.Option(help="cost: price of one device-hour.")] = 0.0,
    db: DbOption = DEFAULT_DB,
    fmt: FormatOption = TableOrJson.table,
    rows: RowsOption = ROWS_SHOWN,
) -> None:
    """The best cell for an objective under constraints, the runner-up, and why every other cell lost."""
    from wattgap import api
    from wattgap.analysis.efficiency import EfficiencyParams
    from wattgap.analysis.recommend import Constraints
    from wattgap.config import validate_flags
    from wattgap.render.data import recommendation_data
    from wattgap.render.terminal import recommendation_view

    params = validate_flags(
        EfficiencyParams, {"price_per_kwh": price_per_kwh, "price_per_device_hour": price_per_device_hour}
    )
    constraints = Constraints(
        max_latency_s=max_latency_ms / 1e3 if max_latency_ms is not None else None,
        percentile=percentile,
        min_agreement=min_agreement,
        max_memory_bytes=max_memory_gb * 2**30 if max_memory_gb is not None else None,
        include_degraded=include_degraded,
    )
    answer = api.recommend(db, run_ids, objective, constraints, params)
    _emit(fmt, lambda: recommendation_data(answer), lambda: recommendation_view(answer, rows))


@app.command()
def report(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids, unique prefixes, or 'latest'.")],
    html: Annotated[Path | None, typer.Option(help="The HTML file (default report.html, unless --md alone).")] = None,
    md: Annotated[Path | None, typer.Option(help="The Markdown twin; its plots go to a folder beside it.")] = None,
    db: DbOption = DEFAULT_DB,
) -> None:
    """Write one self-contained HTML report (plots inline, nothing fetched) and, with --md, its Markdown twin."""
    from wattgap import api

    written = api.report(db, run_ids, html if html is not None or md is not None else Path("report.html"), md)
    if written.html is not None:
        size = quantity(written.html_bytes, "B", 1024.0)
        console.print(Text(plain(f"wrote {written.html.resolve()} ({size}; open it in a browser, offline)")))
    if written.markdown is not None:
        console.print(Text(plain(f"wrote {written.markdown.resolve()} and {len(written.images)} plots beside it")))


@app.command()
def whatif(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids (a CPU run and a GPU run may come from two machines).")],
    target: Annotated[list[str], typer.Option(help="A device of resources/hardware.yaml (T4, L4, ...); repeat.")],
    db: DbOption = DEFAULT_DB,
    fmt: FormatOption = TableOrJson.table,
) -> None:
    """Roofline ESTIMATES of the runs' inference cells on GPUs not owned, with the estimator's error
    measured on the pairs the runs own."""
    from wattgap import api
    from wattgap.render.data import whatif_data
    from wattgap.render.terminal import whatif_view

    answer = api.whatif(db, run_ids, target)
    _emit(fmt, lambda: whatif_data(answer), lambda: whatif_view(answer))


class Study(str, Enum):
    gpu_vs_cpu = "gpu-vs-cpu"
    frameworks = "frameworks"
    precisions = "precisions"


@app.command()
def study(
    name: Annotated[Study, typer.Argument(help="gpu-vs-cpu, frameworks or precisions")],
    run_ids: Annotated[list[str], typer.Argument(help="Run ids (a CPU run and a GPU run may come from two machines).")],
    db: DbOption = DEFAULT_DB,
    fmt: FormatOption = TableOrJson.table,
) -> None:
    """A study's table in its shape: GPU vs CPU time and speedup (Democratizing AI), TensorFlow vs PyTorch
    latency (its framework table), or throughput per precision and batch with int8 over the CPU (DEEP-GAP)."""
    from wattgap import api
    from wattgap.render.data import study_data
    from wattgap.render.terminal import study_view

    table = api.study(db, name.value, run_ids)
    _emit(fmt, lambda: study_data(table), lambda: study_view(table))


@app.command()
def memory(
    run_id: Annotated[str, typer.Argument(help="A run id, a unique prefix, or 'latest'.")],
    budget_gb: Annotated[float | None, typer.Option(help="Memory budget, GiB (default: the device's).")] = None,
    db: DbOption = DEFAULT_DB,
    fmt: FormatOption = TableOrJson.table,
) -> None:
    """Peak memory against batch size (polynomial fit, prediction intervals) and the largest batch that fits."""
    from wattgap import api
    from wattgap.render.data import memory_data
    from wattgap.render.terminal import memory_view

    stored, curves = api.memory(db, run_id, budget_gb * 2**30 if budget_gb is not None else None)
    _emit(fmt, lambda: memory_data(stored.run_id, curves), lambda: memory_view(stored.run_id, curves))


project_app = typer.Typer(help="Projections from public data.", no_args_is_help=True)
app.add_typer(project_app, name="project")


@project_app.command("memory")
def project_memory(
    until: Annotated[int, typer.Option(help="Project up to this year.")] = 2030,
    data: Annotated[
        Path | None, typer.Option(help="A CSV in the shipped dataset's columns (default: shipped).")
    ] = None,
    weight_bytes: Annotated[float, typer.Option(help="Bytes per parameter for the weights (2: fp16/bf16).")] = 2.0,
    training_bytes: Annotated[float, typer.Option(help="Bytes per parameter to train (16: Adam, mixed).")] = 16.0,
    fmt: FormatOption = TableOrJson.table,
) -> None:
    """Accelerator memory and models' needs by year: polynomial fits, intervals, when models outgrow one device."""
    from wattgap import api
    from wattgap.render.data import projection_data
    from wattgap.render.terminal import projection_view

    projection = api.project_memory(data, until, weight_bytes, training_bytes)
    _emit(fmt, lambda: projection_data(projection), lambda: projection_view(projection))


@app.command()
def efficiency(
    run_id: Annotated[str, typer.Argument(help="A run id, a unique prefix, or 'latest'.")],
    rank: Annotated[
        Rank | None,
        typer.Option(help="Metric to rank by (default: gqi where defined, else accuracy_per_kwh, else samples_per_j)."),
    ] = None,
    alpha: Annotated[float, typer.Option(help="GQI exponent of accuracy.")] = 1.0,
    beta: Annotated[float, typer.Option(help="GQI scale.")] = 1.0,
    electricity_unit: Annotated[str, typer.Option(help="GQI electricity unit: J, Wh or kWh.")] = "Wh",
    gqi_variant: Annotated[
        str, typer.Option(help="strict: log10(E), refused for E <= 1; log1p: log10(1 + E).")
    ] = "strict",
    carbon_intensity: Annotated[float, typer.Option(help="Grid carbon intensity, gCO2e/kWh.")] = 475.0,
    price_per_kwh: Annotated[float, typer.Option(help="Electricity price per kWh.")] = 0.15,
    price_per_device_hour: Annotated[float, typer.Option(help="Price of one device-hour (cloud rate).")] = 0.0,
    currency: Annotated[str, typer.Option(help="Label of the prices.")] = "USD",
    energy: Annotated[str, typer.Option(help="gross: all the meters saw; net: above the run's idle power.")] = "gross",
    db: DbOption = DEFAULT_DB,
    fmt: FormatOption = TableOrJson.table,
    rows: RowsOption = ROWS_SHOWN,
) -> None:
    """Rank a run's cells by what their energy buys: GQI, accuracy per kWh, samples per joule, CO2, cost."""
    from wattgap import api
    from wattgap.analysis.efficiency import EfficiencyParams
    from wattgap.config import validate_flags
    from wattgap.render.data import efficiency_data
    from wattgap.render.terminal import efficiency_table

    params = validate_flags(
        EfficiencyParams,
        {
            "alpha": alpha,
            "beta": beta,
            "electricity_unit": electricity_unit,
            "gqi_variant": gqi_variant,
            "carbon_intensity": carbon_intensity,
            "price_per_kwh": price_per_kwh,
            "price_per_device_hour": price_per_device_hour,
            "currency": currency,
            "energy": energy,
        },
    )
    stored, metric, ranked = api.efficiency(db, run_id, params, rank.value if rank else None)
    _emit(
        fmt,
        lambda: efficiency_data(stored.run_id, metric, ranked, params),
        lambda: efficiency_table(stored, metric, ranked, params, defaulted=rank is None, rows_shown=rows),
    )


MAX_MESSAGE = 1000


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP: handled as Ctrl-C is (the run is marked interrupted, finished cells kept), so
    that a run whose process is gone is never left looking like a live one."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _stop(signum: int, frame: object) -> None:
    raise Stopped(signum)


def _flag_of(path: str) -> str:
    """The option of the command line whose value the path came from (the path given, or one made from
    it: the longest such value), else "path"."""
    words = sys.argv[1:]
    found = (0, "path")
    for index, word in enumerate(words):
        flag, _, value = word.partition("=")
        if not value and index + 1 < len(words):
            value = words[index + 1]
        if flag.startswith("--") and value and (value in path or path in value):
            found = max(found, (len(value), flag))
    return found[1]


def _warn(message: str) -> None:
    sys.stderr.write(f"wattgap: warning: {one_line(message)}\n")


def one_line(message: str) -> str:
    """A message as one line of printable text, at most MAX_MESSAGE characters."""
    text = "".join(c if c.isprintable() else " " for c in message)
    return text if len(text) <= MAX_MESSAGE else f"{text[: MAX_MESSAGE - 30]}... ({len(text)} characters)"


def main() -> None:
    from typer.exceptions import Abort, Exit, TyperException

    for number in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, _stop)
    from wattgap.runner.processes import become_subreaper

    become_subreaper()  # orphans of a cell's processes come back to us, to be ended with the cell
    try:
        code = app(standalone_mode=False)
    except WattgapError as error:
        sys.stderr.write(f"wattgap: error: {one_line(str(error))}\n")
        sys.exit(EXIT_BAD_INPUT)
    except OSError as error:  # a path the user gave that the operating system refuses (too long, a loop...)
        if error.filename is None:
            raise
        message = f"{_flag_of(str(error.filename))}: {shown(str(error.filename))}: {error.strerror}"
        sys.stderr.write(f"wattgap: error: {one_line(message)}\n")
        sys.exit(EXIT_BAD_INPUT)
    except TyperException as error:  # a wrong option or value: one line too, not a usage panel
        if error.format_message():  # empty when help was printed for a bare command
            sys.stderr.write(f"wattgap: error: {error.format_message()} (see wattgap --help)\n")
        sys.exit(error.exit_code)
    except Exit as stop:
        sys.exit(stop.exit_code)
    except Abort:
        sys.stderr.write("wattgap: aborted\n")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
