"""Fixtures for the secrets scan; the task-running harness is shared with tests/faults."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


def _harness() -> object:
    """tests/faults/canvas_harness.py, imported once under one name for every folder that uses it."""
    if "canvas_harness" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "faults" / "canvas_harness.py"
        spec = importlib.util.spec_from_file_location("canvas_harness", path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["canvas_harness"] = module
        spec.loader.exec_module(module)
    return sys.modules["canvas_harness"]


harness = _harness()


@pytest.fixture
def sim() -> Iterator[object]:
    """A fresh simulator; `canvas_default` points at it."""
    with harness.simulator() as running:  # type: ignore[attr-defined]
        yield running


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake" / "canvas"
