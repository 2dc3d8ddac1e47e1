from __future__ import annotations

import os
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


@pytest.fixture(autouse=True)
def user_models_importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cell subprocesses and the parent both find tests/helpers."""
    monkeypatch.syspath_prepend(str(TESTS))
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", f"{TESTS}{os.pathsep}{path}" if path else str(TESTS))
