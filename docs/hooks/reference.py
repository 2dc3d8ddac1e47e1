"""MkDocs hook: the sweep-file reference page, generated at each build from the pydantic models themselves
(each field's type, default and the comment written beside it in the code), so that it is never written
twice and cannot drift from what wattgap accepts."""

from __future__ import annotations

import inspect
import re
from typing import Any

from mkdocs.structure.files import File, Files

FIELD = re.compile(r"^    (\w+): .*?(?:#\s*(.*))?$")
COMMENT = re.compile(r"^    #\s?(.*)$")


def _comments(model: type) -> dict[str, str]:
    """Field name -> the comments above its line and beside it, in the source of the model or of the
    model it inherits the field from (settings groups several components share)."""
    found: dict[str, str] = {}
    for owner in reversed(
        [c for c in model.__mro__ if "model_fields" in dir(c) and c.__module__.startswith("wattgap")]
    ):
        above: list[str] = []
        for line in inspect.getsource(owner).splitlines():
            if match := COMMENT.match(line):
                above.append(match.group(1))
            elif match := FIELD.match(line):
                found[match.group(1)] = " ".join([*above, match.group(2) or ""]).strip() or found.get(
                    match.group(1), ""
                )
                above = []
            else:
                above = []
    return found


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _type(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "").replace(" | ", " or ").replace("wattgap.", "")


def _default(info: Any) -> str:
    if info.is_required():
        return "required"
    value = info.default_factory() if info.default_factory is not None else info.default
    return f"`{value!r}`" if not hasattr(value, "model_dump") else f"see `{type(value).__name__}`"


def _table(model: type, heading: str) -> str:
    comments = _comments(model)
    rows = [f"## {heading}", "", (inspect.getdoc(model) or "").replace("\n", " "), ""]
    rows += ["| field | type | default | what it is |", "| --- | --- | --- | --- |"]
    for name, info in model.model_fields.items():  # type: ignore[attr-defined]
        kind = _cell(_type(info.annotation))
        rows.append(f"| `{name}` | `{kind}` | {_cell(_default(info))} | {_cell(comments.get(name, ''))} |")
    return "\n".join(rows) + "\n"


def _components() -> list[str]:
    """A table for each backend and workload that declares settings of its own (the registries say which)."""
    from wattgap.config import ComponentSettings
    from wattgap.plan import COMPONENTS

    tables = []
    for axis, registry in COMPONENTS.items():
        for name, component in registry.items():
            if component.settings_model is not ComponentSettings:
                tables.append(_table(component.settings_model, f"{axis}: {{{name}: ...}}"))
    return tables


def page() -> str:
    from wattgap.config import MOVED_KEYS, SweepConfig
    from wattgap.measure.energy.settings import EnergySettings
    from wattgap.measure.noise import NoiseSettings
    from wattgap.measure.protocol import Protocol

    moved = "; ".join(
        f"`{old}` to `{setting}` of {', '.join(f'`{name}`' for name in names)} ({axis})"
        for old, (axis, names, setting) in MOVED_KEYS.items()
    )

    parts = [
        "# Sweep file reference",
        "",
        "Every field a sweep file (YAML) or `wattgap run` accepts, generated from the models wattgap validates "
        "it with. A field not listed is refused with a one-line error naming it.",
        "",
        _table(SweepConfig, "The sweep"),
        _table(Protocol, "protocol:"),
        _table(EnergySettings, "energy:"),
        _table(NoiseSettings, "noise:"),
        "# Settings of a backend or workload",
        "",
        "`backends` and `workloads` given as a mapping hold each component's own settings under its name; "
        "each is validated by the component's own model. Keys of earlier versions still load, moved into "
        f"their component: {moved}.",
        "",
        *_components(),
    ]
    return "\n".join(parts)


def on_files(files: Files, config: Any) -> Files:
    files.append(File.generated(config, "reference.md", content=page()))
    return files
