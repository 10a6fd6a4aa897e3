"""Fixtures for the secrets scan; the task-running harness is shared with tests/faults."""

from __future__ import annotations

from tests.fixtures.harness import canvas, harness, lake, sim

__all__ = ["canvas", "harness", "lake", "sim"]
