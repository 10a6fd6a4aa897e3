"""A Canvas simulator for the sensor tests, reached over real HTTP through `canvas_default`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.simulator import canvas, pytest_configure
from tests.fixtures.task_instance import FakeTaskInstance

__all__ = ["canvas", "context", "pytest_configure"]


@pytest.fixture
def context() -> dict[str, Any]:
    return {"ti": FakeTaskInstance()}
