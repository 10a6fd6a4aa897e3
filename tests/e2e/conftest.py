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

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest

from airflow_provider_canvas_reports.simulator import CanvasSimulator, RunningSimulator, SimulatorConfig
from tests.fixtures.dag_runs import register, state_text, xcoms

# Short reports, small data: the e2e folder must stay fast on two cores.
DEFAULT_SIMULATOR = {"users": 60, "queue_seconds": 0.2, "run_seconds": 1.0}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "simulator(**config): SimulatorConfig overrides for canvas_simulator")


@dataclass
class Canvas:
    """A running simulator and how to reach it."""

    sim: CanvasSimulator
    running: RunningSimulator

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def token(self) -> str:
        return self.running.token

    @property
    def requests(self) -> Any:
        return self.sim.counters.requests

    @property
    def starts(self) -> Any:
        return self.sim.counters.starts


def connection_json(url: str, token: str, **extra: Any) -> str:
    conn: dict[str, Any] = {"conn_type": "canvas", "host": url, "password": token}
    if extra:
        conn["extra"] = extra
    return json.dumps(conn)


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


@dataclass
class TaskResult:
    state: str | None
    try_number: int
    xcoms: dict[str, Any] = field(default_factory=dict)

    @property
    def return_value(self) -> Any:
        return self.xcoms.get("return_value")


@dataclass
class DagResult:
    state: str | None
    tasks: dict[str, TaskResult]

    def __getitem__(self, task_id: str) -> TaskResult:
        return self.tasks[task_id]

    def states(self) -> dict[str, str | None]:
        return {task_id: task.state for task_id, task in self.tasks.items()}


@pytest.fixture
def run_dag(airflow_db: Any) -> Callable[..., DagResult]:
    """Run a DAG with dag.test() and return what each task ended with."""

    def run(dag: Any, **test_kwargs: Any) -> DagResult:
        register(dag)
        dag_run = dag.test(**test_kwargs)
        tasks = {
            ti.task_id: TaskResult(
                state=state_text(ti.state),
                try_number=ti.try_number,
                xcoms=xcoms(dag.dag_id, dag_run.run_id, ti.task_id),
            )
            for ti in dag_run.get_task_instances()
        }
        return DagResult(state=state_text(dag_run.state), tasks=tasks)

    return run
