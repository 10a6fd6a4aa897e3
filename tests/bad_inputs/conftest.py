"""Fixtures for the bad-input tests; the task-running harness is shared with tests/faults."""

from __future__ import annotations

from tests.fixtures.harness import harness, lake, sim

__all__ = ["harness", "lake", "sim"]
