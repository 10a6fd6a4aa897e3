"""Fixtures for the fault matrix: a fresh simulator per test, a destination folder, dag.test()."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from canvas_harness import DagResult, Sim, run_dag, simulator


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "simulator(**config): SimulatorConfig overrides for `sim`")


@pytest.fixture
def sim(request: pytest.FixtureRequest) -> Iterator[Sim]:
    """A fresh simulator (ids and the report index start empty); `canvas_default` points at it."""
    marker = request.node.get_closest_marker("simulator")
    with simulator(**(marker.kwargs if marker else {})) as running:
        yield running


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake" / "canvas"


@pytest.fixture
def dag_runner(airflow_db: Any) -> Callable[..., DagResult]:
    return run_dag
