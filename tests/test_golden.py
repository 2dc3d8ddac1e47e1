"""Issue 31 item 4: the analyses answer what they answered before the work on speed at 10,000 cells. A run
of 1,000 cells built the same way by any version (tests/helpers/golden.py): its medians, throughputs,
speedups, knees and recommendations as 87e1086 gave them; everything, intervals included, as the version
that wrote tests/data/golden-1000.json gave it (two earlier changes to how bootstrap draws are made moved
the intervals within Monte Carlo error: 5d3beae, b96a5f2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import golden

pytestmark = pytest.mark.slow

GOLDEN = json.loads((Path(__file__).parent / "data" / "golden-1000.json").read_text())


def test_a_thousand_cells_answer_as_before(tmp_path: Path) -> None:
    db = tmp_path / "golden.db"
    golden.build(db, GOLDEN["cells"])
    found = golden.digests(db)
    moved = [name for name, digest in GOLDEN["points"].items() if found["points"][name] != digest]
    assert not moved, f"point estimates differ from {GOLDEN['points_from']} in {moved}"
    moved = [name for name, digest in GOLDEN["whole"].items() if found["whole"][name] != digest]
    assert not moved, f"answers differ from {GOLDEN['whole_from']} in {moved} (a deliberate change: regenerate)"
