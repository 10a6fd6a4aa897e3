"""Throttle answers the simulator cannot give, at every stage, from a tiny Canvas-shaped server.

The simulator's 429 always carries Retry-After and its legacy 403 never does. Canvas versions
and proxies differ, so all four shapes are served here: 429 with and without Retry-After, the
legacy ``403 Forbidden (Rate Limit Exceeded)`` with and without it; and the 403 as Canvas's
middleware really finishes it, with X-Rate-Limit-Remaining set to the bucket's level after the
refund of the up-front cost, above zero (request_throttle.rb), so that only its body says
"throttled". Each stage gets a burst of two, which the client's budget of three attempts must ride
out (honouring Retry-After).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from canvas_harness import (
    HANG_GUARD,
    REPORT,
    FakeCanvas,
    listing,
    run_task,
)

from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.operators.download import DownloadReportOperator
from airflow_provider_canvas_reports.operators.reports import StartAccountReportOperator
from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor

POLICY = RetryPolicy(
    max_attempts=3,
    base_delay=0.05,
    max_delay=0.1,
    max_elapsed=20,
    max_retry_after=5,
    read_timeout=5.0,
    pace_delay=0.2,
)
BURST = 2

SHAPES: dict[str, tuple[int, str, dict[str, str]]] = {
    "429-retry-after": (429, "429 Too Many Requests (Rate Limit Exceeded)\n", {"retry-after": "1"}),
    "429-no-retry-after": (429, "429 Too Many Requests\n", {}),
    "403-rate-limit": (403, "403 Forbidden (Rate Limit Exceeded)\n", {}),
    "403-rate-limit-retry-after": (403, "403 Forbidden (Rate Limit Exceeded)\n", {"retry-after": "1"}),
    # As a real log shows it: the level after the refund, not 0.0.
    "403-rate-limit-bucket-left": (
        403,
        "403 Forbidden (Rate Limit Exceeded)\n",
        {"x-rate-limit-remaining": "18.49214469441995"},
    ),
}


def burst_then_default(shape: str, state: dict[str, Any]) -> Callable[[web.Request], Any]:
    status, body, headers = SHAPES[shape]

    async def handler(request: web.Request) -> web.StreamResponse:
        state["hits"] += 1
        if state["hits"] <= BURST:
            return web.Response(
                text=body,
                status=status,
                headers={"content-type": "text/plain", "x-rate-limit-remaining": "0.0", **headers},
            )
        return await state["default"](request)

    return handler


def throttle(canvas: FakeCanvas, endpoint: str, shape: str) -> None:
    from canvas_harness import _default

    state: dict[str, Any] = {"hits": 0}

    async def default(request: web.Request) -> web.StreamResponse:
        return await _default(endpoint, request, canvas)

    state["default"] = default
    canvas.handlers[endpoint] = burst_then_default(shape, state)


def min_wait(shape: str) -> float:
    """What honouring Retry-After costs at least for a burst."""
    return BURST * 1.0 if "retry-after" in shape and "no-retry" not in shape else 0.0


@pytest.mark.parametrize("shape", list(SHAPES))
def test_start(canvas: FakeCanvas, shape: str) -> None:
    throttle(canvas, "start", shape)
    run = run_task(StartAccountReportOperator(task_id="start", report=REPORT, parameters={"users": True},
                                              canvas_retry_policy=POLICY))  # fmt: skip
    assert run.error is None, run.message
    assert run.result["id"] == 7
    assert canvas.count("start") == BURST + 1  # throttled starts never reached Canvas's handler
    assert min_wait(shape) * 0.9 <= run.elapsed < HANG_GUARD


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_poll(canvas: FakeCanvas, shape: str, deferrable: bool) -> None:
    throttle(canvas, "status", shape)
    task = ReportCompleteSensor(task_id="wait", report=REPORT, report_id=7, poke_interval=0.1, timeout=30,
                                deferrable=deferrable, canvas_retry_policy=POLICY)  # fmt: skip
    run = run_task(task)
    assert run.error is None, run.message
    assert run.result["status"] == "complete"
    assert min_wait(shape) * 0.9 <= run.elapsed < HANG_GUARD


@pytest.mark.parametrize("shape", list(SHAPES))
def test_download(canvas: FakeCanvas, shape: str, tmp_path: Path) -> None:
    throttle(canvas, "download", shape)
    lake = tmp_path / "lake"
    task = DownloadReportOperator(task_id="land", report=REPORT, report_id=7, destination=lake.as_uri(),
                                  canvas_retry_policy=POLICY, download_attempts=1)  # fmt: skip
    run = run_task(task)
    assert run.error is None, run.message
    assert listing(lake) == {"provisioning.csv": b"a,b\n"}
    assert canvas.files_auth_headers == 0
    assert min_wait(shape) * 0.9 <= run.elapsed < HANG_GUARD
