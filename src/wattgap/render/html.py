"""The report as one self-contained HTML file: inline CSS, each plot an inline SVG, one small script (the
sortable table) allowed by its hash in a Content-Security-Policy that lets nothing else run and nothing
leave the page (no fetch, no image, no font from anywhere). Every string from the document is escaped."""

from __future__ import annotations

import base64
import hashlib
import re
from html import escape as escape_html

from wattgap.render.content import Document, Plot, Section, Table
from wattgap.text import visible


def escape(value: str) -> str:
    """Foreign text for HTML: control characters shown as escapes (wattgap.text), then markup escaped."""
    return escape_html(visible(value, keep="\n"))


GENERATOR = "wattgap report"  # the mark of a file wattgap wrote, which it may write again

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 0 16px 48px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 17px; border-bottom: 1px solid #ccc; padding-top: 12px; }
nav a { margin-right: 12px; } p.meta { color: #666; }
figure.plot { margin: 12px 0; } figure.plot svg { max-width: 100%; height: auto; }
figcaption { color: #555; font-size: 12px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 12px; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } table.sortable th { cursor: pointer; } td[data-sort] { white-space: nowrap; }
caption { text-align: left; color: #555; padding: 4px 0; }
tr.degraded { background: #fff3cd; } tr.noisy { background: #eef6ff; } tr.suspect { background: #f3e5f5; }
tr.failed { background: #fde2e2; } tr.skipped { color: #888; }
"""

SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (heading, column) {
    heading.addEventListener("click", function () {
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      var down = heading.getAttribute("data-order") !== "down";
      rows.sort(function (a, b) {
        var x = a.cells[column], y = b.cells[column];
        var p = x.getAttribute("data-sort"), q = y.getAttribute("data-sort");
        var order = (p !== null && q !== null) ? parseFloat(p) - parseFloat(q)
          : (p !== null ? -1 : (q !== null ? 1 : x.textContent.localeCompare(y.textContent)));
        return down ? order : -order;
      });
      heading.setAttribute("data-order", down ? "down" : "up");
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def _policy() -> str:
    digest = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
    return f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'; img-src data:"


_PROLOG = re.compile(r"^\s*<\?xml[^>]*\?>\s*(<!DOCTYPE[^>]*>\s*)?", re.DOTALL)


def _inline_svg(svg: str) -> str:
    """matplotlib's SVG document without its XML prolog and doctype, which HTML does not take inline."""
    return _PROLOG.sub("", svg)


def _plot(plot: Plot) -> str:
    return (
        f'<figure class="plot" data-plot="{escape(plot.name)}">{_inline_svg(plot.svg)}'
        f"<figcaption>{escape(plot.title)}</figcaption></figure>"
    )


def _table(table: Table) -> str:
    sortable = ' class="sortable"' if table.sort_keys else ""
    parts = [f"<table{sortable}>"]
    if table.caption:
        parts.append(f"<caption>{escape(table.caption)}</caption>")
    parts.append("<thead><tr>" + "".join(f"<th>{escape(c)}</th>" for c in table.columns) + "</tr></thead><tbody>")
    for index, row in enumerate(table.rows):
        flag = table.row_flags[index] if index < len(table.row_flags) else ""
        keys = table.sort_keys[index] if index < len(table.sort_keys) else []
        cells = []
        for column, text in enumerate(row):
            key = keys[column] if column < len(keys) else None
            attribute = f' data-sort="{key!r}"' if key is not None else ""
            cells.append(f"<td{attribute}>{escape(text)}</td>")
        parts.append(f'<tr class="{escape(flag)}">' + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def _section(section: Section) -> str:
    parts = [f'<section id="{escape(section.anchor)}"><h2>{escape(section.title)}</h2>']
    parts += [f"<p>{escape(text)}</p>" for text in section.paragraphs]
    parts += [_plot(plot) for plot in section.plots]
    parts += [_table(table) for table in section.tables]
    parts.append("</section>")
    return "\n".join(parts)


def render(document: Document) -> str:
    nav = " ".join(f'<a href="#{escape(s.anchor)}">{escape(s.title)}</a>' for s in document.sections)
    body = "\n".join(_section(section) for section in document.sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_policy()}">
<meta name="generator" content="{GENERATOR}">
<title>{escape(document.title)}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{escape(document.title)}</h1>
<p class="meta">generated {escape(document.generated_at)} from runs {escape(", ".join(document.run_ids))}</p>
<nav>{nav}</nav>
{body}
<script>{SCRIPT}</script>
</body>
</html>
"""
