"""Throttling, server errors, lost connections and timeouts, over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

import pytest

from airflow_provider_canvas_reports.canvas.errors import (
    CanvasRetryExhaustedError,
    StartOutcomeUnknownError,
)

from .helpers import FAST, Canvas, Client, MakeClient, Stopwatch, closed_port

pytestmark = pytest.mark.usefixtures("close_sessions")


async def _started(canvas: Canvas, client: Client) -> int:
    report = await client.start_report("grade_export_csv")
    canvas.counters.reset()
    return report.id


# --- throttling ------------------------------------------------------------------------------


# 429, and the legacy "403 Forbidden (Rate Limit Exceeded)".
@pytest.mark.parametrize(("throttle", "times"), [("429", 3), ("403", 2)])
async def test_throttling_is_retried_until_it_succeeds(
    make_canvas: Callable[..., Canvas], make_client: MakeClient, throttle: str, times: int
) -> None:
    canvas = make_canvas(throttle=throttle)
    client = make_client(canvas.hook())
    report_id = await _started(canvas, client)
    canvas.fault("status", "throttle", times=times)

    report = await client.get_report("grade_export_csv", report_id)

    assert report.id == report_id
    assert canvas.counters.faults["throttle"] == times
    assert canvas.counters.requests["status"] == times + 1


async def test_429_retry_after_is_honoured(
    make_canvas: Callable[..., Canvas], make_client: MakeClient
) -> None:
    canvas = make_canvas(throttle="429")
    # Retry-After (the simulator says 1 s) may be waited in full here.
    client = make_client(canvas.hook(policy=replace(FAST, max_retry_after=5.0, max_elapsed=10.0)))
    report_id = await _started(canvas, client)
    canvas.fault("status", "throttle", times=1)

    with Stopwatch() as watch:
        await client.get_report("grade_export_csv", report_id)

    assert canvas.counters.requests["status"] == 2
    assert 0.9 <= watch.elapsed < 5


async def test_throttled_start_is_retried_and_starts_one_report(
    make_canvas: Callable[..., Canvas],
    make_client: MakeClient,
) -> None:
    # Throttling happens before Canvas handles the request: repeating the start is safe.
    canvas = make_canvas(throttle="429")
    client = make_client(canvas.hook())
    canvas.fault("start", "throttle", times=2)

    report = await client.start_report("grade_export_csv")

    assert canvas.counters.requests["start"] == 3
    assert canvas.counters.starts == {"grade_export_csv": 1}
    assert list(canvas.sim.reports) == [report.id]


async def test_endless_throttling_exhausts_a_bounded_budget(
    make_canvas: Callable[..., Canvas],
    make_client: MakeClient,
) -> None:
    canvas = make_canvas(throttle="429")
    client = make_client(canvas.hook())
    canvas.fault("available", "throttle", times=None)

    with Stopwatch() as watch, pytest.raises(CanvasRetryExhaustedError) as info:
        await client.list_available_reports()

    assert "kept throttling" in str(info.value)
    assert info.value.status == 429
    assert canvas.counters.requests["available"] == FAST.max_attempts
    assert watch.elapsed < 5


async def test_parallel_requests_overflowing_the_bucket_all_succeed(
    make_canvas: Callable[..., Canvas], make_client: MakeClient, mode: str
) -> None:
    """The leaky bucket charges parallel requests up front: some are refused, all get through."""
    canvas = make_canvas(throttle="429", bucket_capacity=160.0, request_cost=50.0, latency=0.02)
    policy = replace(FAST, max_attempts=40, max_elapsed=20.0)
    client = make_client(canvas.hook(policy=policy))
    report_id = await _started(canvas, client)

    results = await asyncio.gather(*(client.get_report("grade_export_csv", report_id) for _ in range(12)))

    assert {r.id for r in results} == {report_id}
    if mode == "async":  # the sync hook's requests.Session serialises nothing, but threads may not overlap
        assert canvas.counters.throttled > 0
    assert canvas.counters.requests["status"] == 12 + canvas.counters.throttled


# --- server errors and resets --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["500", "502", "503", "504", "reset"])
async def test_get_is_retried_after_server_errors_and_resets(
    canvas: Canvas, client: Client, kind: str
) -> None:
    report_id = await _started(canvas, client)
    canvas.fault("status", kind, times=2)

    report = await client.get_report("grade_export_csv", report_id)

    assert report.id == report_id
    assert canvas.counters.faults[kind] == 2
    assert canvas.counters.requests["status"] == 3


async def test_delete_and_index_are_retried_too(canvas: Canvas, client: Client) -> None:
    report_id = await _started(canvas, client)
    canvas.fault("index", "503", times=1)
    canvas.fault("delete", "reset", times=1)

    assert [r.id for r in await client.list_reports("grade_export_csv")] == [report_id]
    assert (await client.delete_report("grade_export_csv", report_id)).status == "deleted"
    assert canvas.counters.requests["index"] == 2
    assert canvas.counters.requests["delete"] == 2


async def test_lost_start_response_is_not_repeated(canvas: Canvas, client: Client) -> None:
    """Canvas created the report, then the connection dropped: one report, and a clear error."""
    canvas.fault("start", "reset_after_send", times=1)

    with pytest.raises(StartOutcomeUnknownError) as info:
        await client.start_report("grade_export_csv")

    assert "was not repeated" in str(info.value)
    assert "report index" in str(info.value)
    assert canvas.counters.requests["start"] == 1
    assert canvas.counters.starts == {"grade_export_csv": 1}
    assert len(canvas.sim.reports) == 1
    # The report it made is the one the index shows.
    assert [r.id for r in await client.list_reports("grade_export_csv")] == list(canvas.sim.reports)


@pytest.mark.parametrize("kind", ["500", "503", "reset"])
async def test_start_that_may_have_reached_canvas_is_not_repeated(
    canvas: Canvas, client: Client, kind: str
) -> None:
    canvas.fault("start", kind, times=1)

    with pytest.raises(StartOutcomeUnknownError):
        await client.start_report("grade_export_csv")

    assert canvas.counters.requests["start"] == 1


async def test_start_refused_connection_is_retried_like_any_request(canvas: Canvas, client: Client) -> None:
    """Nothing listens: the request never arrived, so this is exhaustion, not an unknown outcome."""
    hook = canvas.hook(host=f"http://127.0.0.1:{closed_port()}")
    other = type(client)(hook)

    with Stopwatch() as watch, pytest.raises(CanvasRetryExhaustedError) as info:
        await other.start_report("grade_export_csv")

    assert "could not connect" in str(info.value)
    assert "reachable" in str(info.value)
    assert watch.elapsed < 5


async def test_endless_server_errors_exhaust_a_bounded_budget(canvas: Canvas, client: Client) -> None:
    report_id = await _started(canvas, client)
    canvas.fault("status", "503", times=None)

    with Stopwatch() as watch, pytest.raises(CanvasRetryExhaustedError) as info:
        await client.get_report("grade_export_csv", report_id)

    assert "HTTP 503" in str(info.value)
    assert "Service Temporarily Unavailable" in str(info.value)
    assert watch.elapsed < 5


async def test_endless_resets_exhaust_a_bounded_budget(canvas: Canvas, client: Client) -> None:
    report_id = await _started(canvas, client)
    canvas.fault("status", "reset", times=None)

    with (
        Stopwatch() as watch,
        pytest.raises(CanvasRetryExhaustedError, match="connection to Canvas was reset"),
    ):
        await client.get_report("grade_export_csv", report_id)

    # aiohttp itself repeats an idempotent request once when a reused keep-alive connection
    # drops, so the server may see up to two requests per attempt.
    assert FAST.max_attempts <= canvas.counters.requests["status"] <= 2 * FAST.max_attempts
    assert watch.elapsed < 5


async def test_max_elapsed_bounds_the_retries(canvas: Canvas, make_client: MakeClient) -> None:
    # Many attempts allowed, little time: the time budget is what stops it.
    policy = replace(FAST, max_attempts=1000, base_delay=0.1, max_delay=0.2, max_elapsed=1.0)
    client = make_client(canvas.hook(policy=policy))
    report_id = await _started(canvas, client)
    canvas.fault("status", "500", times=None)

    with Stopwatch() as watch, pytest.raises(CanvasRetryExhaustedError, match="retry budget"):
        await client.get_report("grade_export_csv", report_id)

    assert watch.elapsed < 3
    assert canvas.counters.requests["status"] < 20


# --- timeouts ----------------------------------------------------------------------------------


async def test_slow_answer_past_the_read_timeout_is_retried(canvas: Canvas, make_client: MakeClient) -> None:
    report_id = await _started(canvas, make_client(canvas.hook()))  # FAST's timeouts (see below)
    # The retry's answer (a few ms) must come within the read timeout even on a loaded machine,
    # or it is retried too; 1 s leaves that margin and is still far below the slow answer's 10 s.
    client = make_client(canvas.hook(policy=replace(FAST, read_timeout=1.0)))
    canvas.fault("status", "slow", times=1, delay=10.0)

    with Stopwatch() as watch:
        report = await client.get_report("grade_export_csv", report_id)

    assert report.id == report_id
    assert canvas.counters.requests["status"] == 2
    assert watch.elapsed < 5.0  # did not wait for the slow answer


async def test_always_slow_exhausts_the_budget(canvas: Canvas, make_client: MakeClient) -> None:
    # Started with FAST's timeouts: a start is never repeated, so under the 0.2 s read timeout a
    # stall of the loaded machine (GC pause, CPU starvation) would fail the setup, not the test.
    report_id = await _started(canvas, make_client(canvas.hook()))
    client = make_client(canvas.hook(policy=replace(FAST, read_timeout=0.2, max_elapsed=1.0)))
    canvas.fault("status", "slow", times=None, delay=1.0)

    with Stopwatch() as watch, pytest.raises(CanvasRetryExhaustedError, match="did not answer in time"):
        await client.get_report("grade_export_csv", report_id)

    assert watch.elapsed < 4


async def test_slow_start_past_the_read_timeout_is_not_repeated(
    canvas: Canvas, make_client: MakeClient
) -> None:
    client = make_client(canvas.hook(policy=replace(FAST, read_timeout=0.2)))
    canvas.fault("start", "slow", times=1, delay=0.6)

    with pytest.raises(StartOutcomeUnknownError, match="did not answer in time"):
        await client.start_report("grade_export_csv")

    assert canvas.counters.requests["start"] == 1
    assert len(canvas.sim.reports) <= 1


async def test_truncated_json_answer_is_retried(canvas: Canvas, client: Client) -> None:
    report_id = await _started(canvas, client)
    canvas.fault("status", "truncate", times=1)

    report = await client.get_report("grade_export_csv", report_id)

    assert report.id == report_id
    assert canvas.counters.requests["status"] == 2


async def test_json_answer_arriving_in_pieces_is_read_whole(canvas: Canvas, client: Client) -> None:
    """A body that stalls halfway (a slow link) is still one complete JSON document."""
    setup = canvas.hook()
    ids = [setup.start_report("grade_export_csv").id for _ in range(20)]
    canvas.fault("index", "stall", times=1, delay=0.3)

    runs = await client.list_reports("grade_export_csv")

    assert [r.id for r in runs] == sorted(ids, reverse=True)
    assert canvas.counters.faults["stall"] == 1
