"""The report's Markdown twin, for pull requests and papers: the same sections and tables, each plot an SVG
file in a folder beside it (the same SVG the HTML inlines). Foreign text is escaped for Markdown: its
punctuation is backslash-escaped and angle brackets become entities, so no name turns into a link, an
emphasis, a table cell or raw HTML, and control characters are shown as escapes (wattgap.text)."""

from __future__ import annotations

import re

from wattgap.render.content import Document, Section, Table
from wattgap.text import visible

MARK = "<!-- wattgap report -->"  # the first line of a file wattgap wrote, which it may write again
_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~])")


def text(value: str) -> str:
    """Foreign text for a Markdown paragraph or table cell."""
    shown = visible(value, keep="\n")
    escaped = _SPECIAL.sub(r"\\\1", shown).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return " ".join(escaped.splitlines())


def _table(table: Table) -> list[str]:
    lines = [f"*{text(table.caption)}*", ""] if table.caption else []
    lines.append("| " + " | ".join(text(c) for c in table.columns) + " |")
    lines.append("|" + "---|" * len(table.columns))
    lines += ["| " + " | ".join(text(cell) or " " for cell in row) + " |" for row in table.rows]
    return [*lines, ""]


def _section(section: Section, folder: str) -> list[str]:
    lines = [f"## {text(section.title)}", ""]
    for paragraph in section.paragraphs:
        lines += [text(paragraph), ""]
    for plot in section.plots:
        lines += [f"![{text(plot.title)}]({folder}/{plot.name}.svg)", ""]
    for table in section.tables:
        lines += _table(table)
    return lines


def render(document: Document, folder: str) -> str:
    """The Markdown, its images referred to in ``folder`` (relative to the file)."""
    lines = [MARK, f"# {text(document.title)}", ""]
    lines += [f"generated {text(document.generated_at)} from runs {text(', '.join(document.run_ids))}", ""]
    for section in document.sections:
        lines += _section(section, folder)
    return "\n".join(lines)
