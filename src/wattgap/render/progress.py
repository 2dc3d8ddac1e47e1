"""Live progress of a sweep on the terminal: one bar for the sweep, one for each running cell process (its
name, its phase, its node when an executor spreads them, and an ETA), and a line per finished cell."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Protocol

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from wattgap.cells import Cell
from wattgap.render.format import plain, quantity, seconds
from wattgap.render.terminal import STATUS_STYLE
from wattgap.results import CellResult


class ProgressSink(Protocol):
    """What a front end implements to follow a sweep (the CLI draws progress bars with it)."""

    def cell_started(self, cell: Cell, index: int, total: int | None, repeat: int | None = None) -> None:
        """``total``: None when the sweep's length is not known ahead (a batch search). ``repeat``: which of
        the cell's processes, when it repeats."""

    def cell_event(self, event: dict[str, Any]) -> None:
        """A running process's event; with an executor that runs several at once, ``cell_id`` and
        ``repeat`` in it say whose."""

    def cell_finished(self, result: CellResult) -> None: ...


class SilentProgress:
    def cell_started(self, cell: Cell, index: int, total: int | None, repeat: int | None = None) -> None:
        pass

    def cell_event(self, event: dict[str, Any]) -> None:
        pass

    def cell_finished(self, result: CellResult) -> None:
        pass


# Share of a cell's bar given to each phase; the measured window is the open-ended part.
_PHASE_SPAN = {"load": (0.0, 0.1), "prepare": (0.1, 0.2), "warmup": (0.2, 0.35), "measure": (0.35, 1.0)}


class LineProgress(SilentProgress):
    """A line per finished cell, nothing live: for --quiet and for output that is not a terminal."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        pass

    def cell_finished(self, result: CellResult) -> None:
        """A line per process; a cell that repeats gets one more, for its combined result."""
        stats = result.latency
        if result.status == "ok" and stats:
            rate = quantity(result.throughput_median_sps, "sps")
            detail = f"median {seconds(stats.median_s)}, {rate} (batch / median)"
            if stats.repeats > 1 and stats.between_repeat_cv is not None:
                detail += f" ({stats.repeats} processes, ±proc {stats.between_repeat_cv:.1%})"
        else:
            detail = result.reason
        which = f" repeat {result.repeat + 1}" if result.repeat is not None else ""
        line = Text(f"{result.status:>7}", style=STATUS_STYLE.get(result.status, "red"))
        line.append(plain(f" {result.cell.label}{which}  {detail}"))  # foreign text (names, errors): never markup
        self.console.print(line)


class RichProgress(LineProgress):
    """Live bars: the sweep (processes done, ETA) and each running process (its name, its phase, ETA)."""

    def __init__(self, console: Console) -> None:
        super().__init__(console)
        self.progress = Progress(
            TextColumn("{task.description}"),
            TextColumn("[cyan]{task.fields[phase]}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            refresh_per_second=2,  # the bars share the CPU with the cell being measured: redraw rarely
        )
        self.sweep: TaskID | None = None
        self.cells: dict[tuple[str, int | None], TaskID] = {}  # the running processes' bars, newest last

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if self.sweep is not None:
            self.progress.__exit__(kind, value, tb)

    def cell_started(self, cell: Cell, index: int, total: int | None, repeat: int | None = None) -> None:
        if self.sweep is None:  # the bars appear with the first cell, not before an early error
            self.progress.__enter__()
            self.sweep = self.progress.add_task("sweep", total=total, phase="")
        self.progress.update(self.sweep, description=f"sweep {index + 1}/{total or '?'}")
        which = f" repeat {repeat + 1}" if repeat is not None else ""
        self._end((cell.cell_id, repeat))
        self.cells[cell.cell_id, repeat] = self.progress.add_task(
            escape(plain(cell.label + which)), total=1.0, phase="start"
        )

    def cell_event(self, event: dict[str, Any]) -> None:
        if "cell_id" in event:
            bar = self.cells.get((str(event["cell_id"]), event.get("repeat")))
        else:  # one process at a time: the newest
            bar = next(reversed(self.cells.values()), None)
        if bar is None:
            return
        if event.get("event") == "node":  # where an executor placed it
            self.progress.update(bar, phase=f"on {plain(str(event['node']))[:8]}")
            return
        phase = str(event.get("phase", ""))
        low, high = _PHASE_SPAN.get(phase, (0.0, 0.0))
        fraction = float(event.get("fraction", 0.0))
        self.progress.update(bar, phase=escape(plain(phase)), completed=low + (high - low) * fraction)

    def cell_finished(self, result: CellResult) -> None:
        if self.sweep is not None and not result.repeats:  # a process ended (not a combination of them)
            self.progress.advance(self.sweep)
            self._end((result.cell_id, result.repeat))
        super().cell_finished(result)

    def _end(self, key: tuple[str, int | None]) -> None:
        bar = self.cells.pop(key, None)
        if bar is not None:
            self.progress.remove_task(bar)
