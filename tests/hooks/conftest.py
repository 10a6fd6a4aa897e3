"""Fixtures: a simulator per test, the connection pointing at it, and a client per transport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
from airflow_provider_canvas_reports.simulator import CanvasSimulator
from airflow_provider_canvas_reports.transport import aio

from .helpers import AsyncClient, Canvas, Client, SyncClient, sim_config


@pytest.fixture
def make_canvas(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Canvas]]:
    """Start a simulator (in a thread) with config overrides; stopped after the test."""
    with ExitStack() as stack:

        def make(**overrides: Any) -> Canvas:
            sim = CanvasSimulator(sim_config(**overrides))
            running = stack.enter_context(sim.run_in_thread())
            canvas = Canvas(sim, running, monkeypatch)
            canvas.connect()
            stack.callback(canvas.close_hooks)
            return canvas

        yield make


@pytest.fixture
def canvas(make_canvas: Callable[..., Canvas]) -> Canvas:
    return make_canvas()


@pytest.fixture
async def close_sessions() -> AsyncIterator[None]:
    """Close this loop's shared aiohttp sessions when an async test ends."""
    yield
    await aio.close_shared_sessions()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_client(mode: str, close_sessions: None) -> Callable[[CanvasHook], Client]:
    def make(hook: CanvasHook) -> Client:
        return SyncClient(hook) if mode == "sync" else AsyncClient(hook)

    return make


@pytest.fixture
def client(canvas: Canvas, make_client: Callable[[CanvasHook], Client]) -> Client:
    return make_client(canvas.hook())
