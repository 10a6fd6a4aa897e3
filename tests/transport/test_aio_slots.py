"""The async transport's slots: a request to the Canvas host takes its pace once it holds one.

Thousands of triggers share one session and one pacer per token. A request that waited for a slot
must see the `X-Rate-Limit-Remaining` of the answers that came in meanwhile, or every queued
request goes out back-to-back when the bucket runs low.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from airflow_provider_canvas_reports.canvas import api
from airflow_provider_canvas_reports.canvas.errors import DownloadError
from airflow_provider_canvas_reports.canvas.exchange import PACING
from airflow_provider_canvas_reports.canvas.report import Report
from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.simulator import CanvasSimulator, Fault, RunningSimulator
from airflow_provider_canvas_reports.transport import aio
from airflow_provider_canvas_reports.transport.settings import CanvasSettings

POLICY = RetryPolicy(connect_timeout=2.0, read_timeout=5.0, max_elapsed=30.0)


@pytest.fixture(autouse=True)
async def one_slot(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[None]:
    """One request in flight per token (configuration, read when the loop's session is made)."""
    monkeypatch.setattr(aio, "CONNECTIONS_PER_HOST", 1)
    yield
    await aio.close_shared_sessions()


def simulator(**config: Any) -> Iterator[RunningSimulator]:
    with CanvasSimulator(users=12, run_seconds=0.0, **config).run_in_thread() as running:
        yield running


@pytest.fixture
def low_bucket() -> Iterator[RunningSimulator]:
    # A 140-unit bucket that leaks 100 a second; each request holds 50 while it runs and costs 30.
    # Every answer reports less than `low_remaining` (150) left, so the pacer asks for 0.27 s or
    # more after each. Sent back-to-back, the fifth request finds 120 units taken and is refused;
    # sent after the pace the answer before it asked for, the bucket has drained by then.
    yield from simulator(
        throttle="429", bucket_capacity=140.0, request_cost=50.0, actual_cost=30.0, leak_per_second=100.0
    )


async def test_requests_queued_for_a_slot_are_sent_after_the_pace_the_answers_before_them_asked_for(
    low_bucket: RunningSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim = low_bucket.simulator
    transport = aio.AsyncTransport(CanvasSettings(low_bucket.url, low_bucket.token, POLICY))
    caplog.set_level(logging.DEBUG, logger=aio.log.name)

    # All six pass the pacer before any answer has come in, then queue for the one slot.
    results = await asyncio.gather(*(transport.call(api.available("self")) for _ in range(6)))

    assert all(results)
    # Each request was sent once and none found the bucket full: every one behind the first waited,
    # holding the slot, for the pace the answer before it asked for.
    assert sim.counters.requests["available"] == 6
    assert sim.counters.throttled == 0
    paced = [r for r in caplog.records if PACING in r.getMessage()]
    assert len(paced) >= 5


@pytest.fixture
def canvas() -> Iterator[RunningSimulator]:
    yield from simulator(throttle=None)


@pytest.fixture
def direct() -> Iterator[RunningSimulator]:
    yield from simulator(throttle=None, direct_download=True)


@dataclass
class Downloading:
    """A transport with one finished report to download, and its token's slots."""

    transport: aio.AsyncTransport
    report: Report
    slots: asyncio.Semaphore

    async def poll(self) -> Report:
        return await self.transport.call(api.status("self", "grade_export_csv", self.report.id))

    async def read(self) -> bytes:
        async with self.transport.download(self.report) as download:
            return b"".join([chunk async for chunk in download.chunks])


async def downloading(running: RunningSimulator, policy: RetryPolicy = POLICY) -> Downloading:
    transport = aio.AsyncTransport(CanvasSettings(running.url, running.token, policy))
    report = await transport.call(api.start("self", "grade_export_csv", {}))
    ready = Downloading(transport, report, transport._shared().slots)
    while ready.report.status != "complete":
        await asyncio.sleep(0.05)
        ready.report = await ready.poll()
    return ready


async def test_a_download_from_the_files_host_frees_the_canvas_slot_while_it_streams(
    canvas: RunningSimulator,
) -> None:
    ready = await downloading(canvas)

    async with ready.transport.download(ready.report) as download:
        # The Canvas hop was a redirect, released at the next hop: polls go on during the download.
        assert not ready.slots.locked()
        assert (await ready.poll()).id == ready.report.id
        body = b"".join([chunk async for chunk in download.chunks])

    assert body
    assert canvas.simulator.counters.requests["download"] == 1
    assert canvas.simulator.counters.requests["store"] == 1


async def test_a_file_canvas_serves_itself_holds_the_slot_until_it_is_closed(
    direct: RunningSimulator,
) -> None:
    ready = await downloading(direct)

    async with ready.transport.download(ready.report) as download:
        assert ready.slots.locked()  # the body streams over the one connection to Canvas
        body = b"".join([chunk async for chunk in download.chunks])

    assert body
    assert not ready.slots.locked()
    assert (await ready.poll()).id == ready.report.id


async def test_failed_and_refused_canvas_hops_give_their_slot_back(canvas: RunningSimulator) -> None:
    sim = canvas.simulator
    ready = await downloading(canvas)

    # A reset is retried from the Canvas hop; a login page ends the download.
    sim.add_fault(Fault(endpoint="download", kind="reset", times=1))
    assert await ready.read()
    assert not ready.slots.locked()

    sim.add_fault(Fault(endpoint="download", kind="html", times=1))
    with pytest.raises(DownloadError):
        await ready.read()
    assert not ready.slots.locked()
    assert sim.counters.faults == {"reset": 1, "html": 1}


async def test_a_canvas_hop_answered_with_an_error_frees_its_slot_during_the_backoff(
    canvas: RunningSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    sim = canvas.simulator
    # The first retry of a download waits at least base_delay / 2 (2 s).
    ready = await downloading(canvas, replace(POLICY, base_delay=4.0, max_delay=4.0))
    sim.add_fault(Fault(endpoint="download", kind="503", times=1))
    caplog.set_level(logging.WARNING, logger=aio.log.name)

    reading = asyncio.create_task(ready.read())
    while not any("retrying in" in r.getMessage() for r in caplog.records):
        assert not reading.done(), reading.result()
        await asyncio.sleep(0.01)

    # The download waits out its backoff; the one slot is free for the polls meanwhile.
    assert not ready.slots.locked()
    assert (await ready.poll()).id == ready.report.id
    assert await reading
    assert sim.counters.requests["download"] == 2
    assert not ready.slots.locked()
