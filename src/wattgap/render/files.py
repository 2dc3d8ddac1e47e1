"""Writing the report: every target checked before anything is written, each file written whole (a
temporary file renamed over it), and nothing replaced that wattgap did not write: an existing HTML file
must carry wattgap's generator mark, a Markdown file its first-line mark, an image folder its mark file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wattgap.errors import ConfigError
from wattgap.fs import own_folder
from wattgap.render import html, markdown
from wattgap.render.content import Document
from wattgap.store.export import write_atomically
from wattgap.store.paths import existing_regular

FOLDER_MARK = ".wattgap-report"


@dataclass(frozen=True)
class Written:
    html: Path | None
    markdown: Path | None
    images: list[Path]
    html_bytes: int | None


def _check_file(path: Path, flag: str, mark: str) -> None:
    if not path.parent.is_dir():
        raise ConfigError(f"{flag}: the folder of {str(path)!r} does not exist")
    if existing_regular(path, flag, follow_links=False) is None:
        return
    with path.open("rb") as file:
        head = file.read(4096).decode("utf-8", "replace")
    if mark not in head:
        raise ConfigError(f"{flag}: {str(path)!r} exists and is not a wattgap report; give a new path or remove it")


def image_folder(markdown_path: Path) -> Path:
    return markdown_path.with_name(f"{markdown_path.stem}_files")


def _check_folder(folder: Path) -> None:
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise ConfigError(f"--md: {str(folder)!r} (for the plots) exists and is not a folder")
    mark = folder / FOLDER_MARK
    if folder.is_dir() and (mark.is_symlink() or not mark.is_file()):
        raise ConfigError(
            f"--md: {str(folder)!r} (for the plots) exists and is not a wattgap report's; give another --md path"
        )


def check(html_path: Path | None, markdown_path: Path | None) -> None:
    """Refuse targets that cannot be written (a missing folder, a file or folder wattgap did not write):
    called before the report is built, which takes minutes on a large run, and again before writing."""
    if html_path is None and markdown_path is None:
        raise ConfigError("report: give --html PATH, --md PATH or both")
    if html_path is not None:
        _check_file(html_path, "--html", html.GENERATOR)
    if markdown_path is not None:
        _check_file(markdown_path, "--md", markdown.MARK)
        _check_folder(image_folder(markdown_path))


def write(document: Document, html_path: Path | None, markdown_path: Path | None) -> Written:
    """Write the HTML file and the Markdown twin (with its plots as SVG files beside it)."""
    check(html_path, markdown_path)
    folder = image_folder(markdown_path) if markdown_path is not None else None
    images: list[Path] = []
    html_bytes = None
    if html_path is not None:
        content = html.render(document)
        write_atomically(content, html_path, force=True)
        html_bytes = len(content.encode())
    if markdown_path is not None and folder is not None:
        own_folder(folder, "--md: the plots' folder")
        write_atomically("plots of a wattgap report: wattgap replaces them\n", folder / FOLDER_MARK, force=True)
        for stale in folder.glob("*.svg"):
            stale.unlink()
        for plot in document.plots:
            image = folder / f"{plot.name}.svg"
            write_atomically(plot.svg, image, force=True)
            images.append(image)
        write_atomically(markdown.render(document, folder.name), markdown_path, force=True)
    return Written(html_path, markdown_path, images, html_bytes)
