"""End-to-end fixtures: a running Canvas simulator, a connection to it, and a dag.test() runner.

Reusable by every e2e test module:

- ``canvas_simulator`` (function scope): a fresh simulator with short reports, serving from a
  background thread, and ``AIRFLOW_CONN_CANVAS_DEFAULT`` pointing at it (JSON form).
  Parametrize its config with ``@pytest.mark.simulator(run_seconds=..., throttle=...)``.
- ``start_simulator(**config)``: the same, for tests that need a second one or odd settings.
- ``run_dag(dag) -> DagResult``: runs the DAG with ``dag.test()`` (tasks in-process, deferred
  triggers inline from their serialised form) and returns task states, tries and XComs.

Each test gets its own simulator: report ids and the index start empty, so a test's
reconciliation never sees another test's reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_provider_canvas_reports.simulator import CanvasSimulator, SimulatorConfig
from tests.fixtures.dag_runs import DagResult
from tests.fixtures.dag_runs import run_dag as run_dag_test
from tests.fixtures.simulator import RunningCanvas, connection_json

# Short reports, small data: the e2e folder must stay fast on two cores.
DEFAULT_SIMULATOR = {"users": 60, "queue_seconds": 0.2, "run_seconds": 1.0}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "simulator(**config): SimulatorConfig overrides for canvas_simulator")


@dataclass
class Canvas(RunningCanvas):
    @property
    def requests(self) -> Any:
        return self.sim.counters.requests

    @property
    def starts(self) -> Any:
        return self.sim.counters.starts


@pytest.fixture
def start_simulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Canvas]]:
    """Start simulators on demand; the first (or `conn_id`) becomes the connection's target."""
    with ExitStack() as stack:

        def start(conn_id: str | None = "canvas_default", **config: Any) -> Canvas:
            settings = {**DEFAULT_SIMULATOR, **config}
            sim = CanvasSimulator(SimulatorConfig(**settings))
            running = stack.enter_context(sim.run_in_thread())
            if conn_id is not None:
                monkeypatch.setenv(
                    f"AIRFLOW_CONN_{conn_id.upper()}", connection_json(running.url, running.token)
                )
            return Canvas(sim, running)

        yield start


@pytest.fixture
def canvas_simulator(request: pytest.FixtureRequest, start_simulator: Callable[..., Canvas]) -> Canvas:
    marker = request.node.get_closest_marker("simulator")
    return start_simulator(**(marker.kwargs if marker else {}))


@pytest.fixture
def run_dag(airflow_db: Any) -> Callable[..., DagResult]:
    """Run a DAG with dag.test() and return what each task ended with."""
    return run_dag_test
