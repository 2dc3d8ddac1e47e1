"""What a report is made of, whatever renders it (render/html.py, render/markdown.py): sections of plain
text, tables of strings and plots as SVG. render/document.py builds it; each workload's view (render/views)
adds its section."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wattgap.render import plots

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Table:
    columns: list[str]
    rows: list[list[str]]
    sort_keys: list[list[float | None]] = field(default_factory=list)  # per row: a number per column, or None
    row_flags: list[str] = field(default_factory=list)  # per row: "", degraded, suspect, noisy, failed, skipped
    caption: str = ""


@dataclass(frozen=True)
class Plot:
    name: str  # a file stem: the Markdown twin's image file, the HTML figure's data-plot
    title: str
    svg: str


@dataclass(frozen=True)
class Section:
    anchor: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)


@dataclass(frozen=True)
class Document:
    title: str
    generated_at: str
    run_ids: list[str]
    sections: list[Section]

    @property
    def plots(self) -> list[Plot]:
        return [plot for section in self.sections for plot in section.plots]


def figure_plots(name: str, title: str, figure: Figure | None) -> list[Plot]:
    return [] if figure is None else [Plot(name, title, plots.svg(figure))]
