"""Fixtures: simulators running in a background thread."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from sim_helpers import Client, SimFactory

from airflow_provider_canvas_reports.simulator import CanvasSimulator, RunningSimulator, SimulatorConfig


@pytest.fixture
def make_sim() -> Iterator[SimFactory]:
    """Start simulators with small data and a 10 s run time that tests skip with ``advance``."""
    with contextlib.ExitStack() as stack:

        def make(**overrides: Any) -> tuple[CanvasSimulator, RunningSimulator, Client]:
            overrides.setdefault("users", 60)
            overrides.setdefault("run_seconds", 10.0)
            sim = CanvasSimulator(SimulatorConfig(**overrides))
            running = stack.enter_context(sim.run_in_thread())
            client = Client(running)
            stack.callback(client.close)
            return sim, running, client

        yield make


@pytest.fixture
def sim_env(make_sim: SimFactory) -> tuple[CanvasSimulator, RunningSimulator, Client]:
    return make_sim()
