"""A Canvas simulator for the sensor tests, reached over real HTTP through `canvas_default`."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fixtures.simulator import canvas, pytest_configure

__all__ = ["FakeTaskInstance", "canvas", "context", "pytest_configure"]


class FakeTaskInstance:
    """The bits of Airflow's RuntimeTaskInstance the sensor touches, for calls outside a task run."""

    def __init__(self, try_number: int = 1) -> None:
        self.try_number = try_number
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value

    def get_first_reschedule_date(self, context: Any) -> None:
        return None


@pytest.fixture
def context() -> dict[str, Any]:
    return {"ti": FakeTaskInstance()}
