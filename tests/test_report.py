"""`wattgap report`: the HTML file and its Markdown twin from real runs (a hostile run name and a failing
model whose error message is markup among them), what replaces what, and the HTML opened in a real
headless Chromium with the network cut: no console error, no request, every plot drawn, the table
sortable, nothing injected running. Screenshots go to WATTGAP_ARTIFACTS (default: test-artifacts/)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from helpers import fast_config, wattgap

import wattgap as api
from wattgap.render.document import build

pytestmark = pytest.mark.slow  # real sweeps and stacks: make test runs it, make test-fast does not

HOSTILE = "<script>window.__pwned = 1</script><img src=x onerror=alert(1)>$x$ | *b* [l](http://e)"
ARTIFACTS = Path(os.environ.get("WATTGAP_ARTIFACTS", Path(__file__).parent.parent / "test-artifacts"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[api.Run]]:
    folder = tmp_path_factory.mktemp("report")
    db = folder / "wattgap.db"
    sweep = fast_config(
        name=HOSTILE,
        models=["conv6", "helpers.usermodels:raises_markup"],
        batch_sizes=[1, 2],
        precisions=["fp32", "bf16"],
        input_shape=[3, 32, 32],
    )
    trained = fast_config(
        workloads=["train-to-accuracy"],
        image_size=16,
        batch_sizes=[32],
        dataset="digits",
        target_accuracy=0.5,
        max_epochs=2,
    )
    with pytest.MonkeyPatch.context() as patch:  # the cells' subprocesses import tests/helpers
        tests = str(Path(__file__).parent)
        patch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH")])))
        return folder, [api.run(sweep, db=db), api.run(trained, db=db)]


def _write(folder: Path, runs: list[api.Run], **paths: Path) -> object:
    return api.report(folder / "wattgap.db", [run.run_id for run in runs], **paths)  # type: ignore[arg-type]


def test_report_holds_every_section_the_runs_have_data_for(runs: tuple[Path, list[api.Run]]) -> None:
    _, stored = runs
    document = build(stored)
    anchors = [section.anchor for section in document.sections]
    assert anchors == [
        "runs",
        "summary",
        "tradeoff",
        "pareto",
        "speedups",
        "energy",
        "memory",
        "training",
        "projection",
        "cells",
    ]
    names = {plot.name for plot in document.plots}
    first = stored[0].run_id
    assert {
        "throughput",
        "latency",
        "pareto-infer",
        "energy",
        "projection",
        "training-time",
        "training-energy",
    } <= names
    assert f"speedup-precision-{first}" in names and f"memory-{first}" in names
    (cells,) = next(s for s in document.sections if s.anchor == "cells").tables
    failed = [row for row, flag in zip(cells.rows, cells.row_flags, strict=True) if flag == "failed"]
    assert failed and all("window.__pwned = 2" in row[-1] for row in failed)  # the reason, kept as text
    energy = next(s for s in document.sections if s.anchor == "energy").tables[0]
    assert {row[2] for row in energy.rows} == {"estimated"}  # every energy figure carries its label


def test_html_and_markdown_escape_foreign_text(runs: tuple[Path, list[api.Run]], tmp_path: Path) -> None:
    folder, stored = runs
    written = _write(folder, stored, html=tmp_path / "r.html", markdown=tmp_path / "r.md")
    page = (tmp_path / "r.html").read_text()
    assert page.count("<script") == 1  # wattgap's own sorting script, and nothing else
    assert "window.__pwned" in page and "<img src=x" not in page and "onerror=alert(1)>" not in page
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?\s*https?:""", page)  # nothing to fetch from anywhere
    text = (tmp_path / "r.md").read_text()
    assert text.startswith("<!-- wattgap report -->\n") and "<script>" not in text
    assert r"\| \*b\* \[l\]\(http://e\)" in text  # no table cell, emphasis or link from a name
    images = sorted((tmp_path / "r_files").glob("*.svg"))
    assert [image.name for image in images] == sorted(f"{plot.name}.svg" for plot in build(stored).plots)
    for image in images:
        assert f"](r_files/{image.name})" in text
    assert written.html_bytes == len(page.encode())  # type: ignore[attr-defined]
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "r.html").stat().st_mode & 0o777 == 0o666 & ~mask  # readable as any new file is


def test_report_replaces_only_what_wattgap_wrote(runs: tuple[Path, list[api.Run]], tmp_path: Path) -> None:
    folder, stored = runs
    db = str(folder / "wattgap.db")
    mine = wattgap("report", stored[0].run_id, "--html", "r.html", "--md", "r.md", "--db", db, cwd=tmp_path)
    assert mine.returncode == 0, mine.stderr
    assert "wrote" in mine.stdout and "r.html" in mine.stdout and "plots beside it" in mine.stdout
    again = wattgap("report", stored[0].run_id, "--html", "r.html", "--db", db, cwd=tmp_path)
    assert again.returncode == 0, again.stderr  # its own file: replaced
    (tmp_path / "notes.html").write_text("<p>my notes</p>")
    (tmp_path / "notes.md").write_text("# my notes\n")
    for flag, name in (("--html", "notes.html"), ("--md", "notes.md"), ("--html", "missing/r.html")):
        refused = wattgap("report", stored[0].run_id, flag, name, "--db", db, cwd=tmp_path)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
        assert refused.stderr.startswith(f"wattgap: error: {flag}: ")
    assert (tmp_path / "notes.html").read_text() == "<p>my notes</p>"
    assert (tmp_path / "notes.md").read_text() == "# my notes\n"
    assert not (tmp_path / "notes_files").exists()
    unknown = wattgap("report", "nosuchrun", "--db", db, cwd=tmp_path)
    assert unknown.returncode == 2 and "nosuchrun" in unknown.stderr


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no Chromium on PATH: `make test` installs the operating system's chromium package")


def test_the_html_report_in_a_real_headless_browser(runs: tuple[Path, list[api.Run]], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    folder, stored = runs
    path = tmp_path / "report.html"
    _write(folder, stored, html=path)
    expected = len(build(stored).plots)
    requests: list[str] = []
    errors: list[str] = []
    dialogs: list[str] = []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.route("**/*", lambda route: route.continue_() if route.request.url == path.as_uri() else route.abort())
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            drawn = page.eval_on_selector_all(
                "figure.plot", "figures => figures.map(f => f.querySelectorAll('svg path, svg text').length)"
            )
            assert len(drawn) == expected and all(count > 10 for count in drawn), drawn
            assert page.evaluate("typeof window.__pwned") == "undefined"
            page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=False)
            page.locator("#tradeoff").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "report-tradeoff.png"))
            median = page.locator("#cells th", has_text="median")
            median.click()
            values = page.eval_on_selector_all(
                "#cells tbody tr", "rows => rows.map(r => r.cells[3].getAttribute('data-sort'))"
            )
            numbers = [float(v) for v in values if v is not None]
            assert numbers == sorted(numbers) and len(numbers) >= 4
            page.locator("#cells").scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "report-cells.png"))
        finally:
            browser.close()
    assert set(requests) <= {path.as_uri()}  # the file itself at most; nothing else was asked for
    assert errors == [] and dialogs == []


def test_a_plot_of_many_draws_the_few_that_can_be_read_and_says_so() -> None:
    import numpy as np
    from helpers import make_run, result

    from wattgap.analysis.tradeoff import tradeoff
    from wattgap.render import plots

    ratios = [1.0 + 0.01 * i for i in range(100)]  # the 40 farthest from parity are the last 40, in order
    figure = plots.bars("speedup", [f"pair {i}" for i in range(100)], [(r, r, r) for r in ratios], "x", "by compare")
    assert figure is not None
    (axes,) = figure.axes
    assert [t.get_text() for t in axes.get_yticklabels()] == [f"pair {i}" for i in range(60, 100)]
    assert axes.get_title().replace("\n", " ") == "speedup (the 40 farthest from parity of 100; every one by compare)"
    results = [
        result(np.full(5, batch / (100.0 * (1 + model))), batch_size=batch, model=f"m{model}")
        for model in range(20)
        for batch in (1, 2)
    ]
    curves = tradeoff([make_run("r", results)]).curves
    figure = plots.throughput(curves, ["model"])
    assert figure is not None
    (axes,) = figure.axes
    names = axes.get_legend_handles_labels()[1]
    assert names == [f"m{model}" for model in range(8, 20)]  # the 12 of the highest throughput, in order
    title = axes.get_title().replace("\n", " ")  # long titles wrap onto lines that fit the figure
    assert title.endswith("(the 12 of 20 of the highest throughput; every one in the table)")
