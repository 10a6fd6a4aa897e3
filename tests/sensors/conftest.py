"""A Canvas simulator for the sensor tests, reached over real HTTP through `canvas_default`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_provider_canvas_reports.simulator import CanvasSimulator, SimulatorConfig

SHORT = {"users": 40, "queue_seconds": 0.1, "run_seconds": 1.0}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "simulator(**config): SimulatorConfig overrides for `canvas`")


@pytest.fixture
def canvas(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[CanvasSimulator]:
    marker = request.node.get_closest_marker("simulator")
    settings: dict[str, Any] = {**SHORT, **(marker.kwargs if marker else {})}
    sim = CanvasSimulator(SimulatorConfig(**settings))
    with sim.run_in_thread() as running:
        conn = {"conn_type": "canvas", "host": running.url, "password": running.token}
        monkeypatch.setenv("AIRFLOW_CONN_CANVAS_DEFAULT", json.dumps(conn))
        yield sim


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
