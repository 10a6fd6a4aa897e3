"""A Canvas simulator for the operator tests, reached over real HTTP through `canvas_default`."""

from __future__ import annotations

from tests.fixtures.simulator import canvas, pytest_configure

__all__ = ["canvas", "pytest_configure"]
