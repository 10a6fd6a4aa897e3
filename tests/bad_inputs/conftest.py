"""Fixtures for the bad-input tests; the task-running harness is shared with tests/faults."""

from __future__ import annotations

from tests.fixtures.harness import canvas, harness, lake, sim
from tests.fixtures.stores import azure_attached, azure_server, s3_server, store

__all__ = ["azure_attached", "azure_server", "canvas", "harness", "lake", "s3_server", "sim", "store"]
