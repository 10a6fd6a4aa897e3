"""Fixtures for the fault matrix: a fresh simulator per test, a fake Canvas, a destination folder, dag.test()."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.fixtures.dag_runs import DagResult, run_dag
from tests.fixtures.harness import canvas, lake, sim

__all__ = ["canvas", "lake", "sim"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "simulator(**config): SimulatorConfig overrides for `sim`")


@pytest.fixture
def dag_runner(airflow_db: Any) -> Callable[..., DagResult]:
    return run_dag
