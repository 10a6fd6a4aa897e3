"""ReportStatusTrigger against the Canvas simulator, over real HTTP, in a real event loop."""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import timedelta
from typing import Any

import pytest

from airflow_provider_canvas_reports.canvas.errors import CanvasConfigError
from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
from airflow_provider_canvas_reports.simulator import CanvasSimulator, Fault
from airflow_provider_canvas_reports.simulator.state import Snapshot
from airflow_provider_canvas_reports.transport import aio
from airflow_provider_canvas_reports.triggers.reports import (
    TRIGGER_PATH,
    ReportStatusTrigger,
    parse_event,
    retry_policy_kwargs,
)

# Quick retries inside one poll, so that failed polls pile up in seconds, not minutes.
FAST_RETRIES = RetryPolicy(max_attempts=2, base_delay=0.02, max_delay=0.05, max_retry_after=0.2)


@pytest.fixture(autouse=True)
async def _close_sessions():
    yield
    await aio.close_shared_sessions()


def start(report: str = "provisioning_csv", params: dict[str, Any] | None = None) -> int:
    return CanvasHook().start_report(report, params if params is not None else {"users": True}).id


def start_queued(canvas: CanvasSimulator) -> int:
    """A report that stays queued (`created`) until the test ends."""
    canvas.script_report("provisioning_csv", "stuck_created")
    return start()


def trigger(report_id: int, **kwargs: Any) -> ReportStatusTrigger:
    kwargs.setdefault("poll_interval", 0.1)
    kwargs.setdefault("deadline", time.time() + 30)
    kwargs.setdefault("adaptive_polling", False)
    return ReportStatusTrigger(
        canvas_conn_id="canvas_default", report="provisioning_csv", report_id=report_id, **kwargs
    )


async def first_event(trig: ReportStatusTrigger, *, within: float = 30) -> dict[str, Any]:
    """Run the trigger from its serialised form, as the triggerer (and dag.test) does."""
    classpath, kwargs = trig.serialize()
    assert classpath == TRIGGER_PATH
    rebuilt = ReportStatusTrigger(**json.loads(json.dumps(kwargs)))
    gen = rebuilt.run()
    event = await asyncio.wait_for(anext(gen), within)
    await gen.aclose()
    return event.payload


class TestSerialization:
    def test_kwargs_are_plain_json_and_rebuild_the_same_trigger(self):
        original = ReportStatusTrigger(
            canvas_conn_id="canvas_x",
            report="sis_export_csv",
            report_id="42",
            account_id=7,
            poll_interval=2,
            deadline=1_900_000_000.5,
            adaptive_polling=False,
            max_poll_interval=120,
            max_consecutive_errors=3,
            wait_started_at=1_899_999_000.0,
            retry_policy=retry_policy_kwargs(FAST_RETRIES),
            expected_run_time=600,
            first_poll_at=1_899_999_060.0,
            last_status="running",
        )
        classpath, kwargs = original.serialize()
        assert classpath == "airflow_provider_canvas_reports.triggers.reports.ReportStatusTrigger"
        text = json.dumps(kwargs)  # raises on anything that is not plain JSON
        assert json.loads(text) == kwargs
        assert kwargs["report_id"] == 42
        assert kwargs["account_id"] == "7"
        assert kwargs["deadline"] == 1_900_000_000.5
        assert kwargs["expected_run_time"] == 600.0
        assert kwargs["first_poll_at"] == 1_899_999_060.0
        assert kwargs["last_status"] == "running"
        rebuilt = ReportStatusTrigger(**json.loads(text))
        assert rebuilt.serialize() == (classpath, kwargs)
        assert rebuilt.policy == original.policy

    def test_round_trip_through_airflow_serde(self):
        # 3.2+ encode trigger kwargs with airflow.sdk.serde; 3.1 has the same API in airflow.serialization.
        try:
            from airflow.sdk import serde
        except ImportError:
            from airflow.serialization import serde  # type: ignore[no-redef]
        _, kwargs = trigger(5, deadline=None, retry_policy={"max_attempts": 3}).serialize()
        restored = serde.deserialize(serde.serialize(kwargs))
        assert restored == kwargs
        assert ReportStatusTrigger(**restored).serialize()[1] == kwargs

    def test_round_trip_through_base_serialization(self):
        from airflow.serialization.serialized_objects import BaseSerialization

        _, kwargs = trigger(5).serialize()
        assert BaseSerialization.deserialize(BaseSerialization.serialize(kwargs)) == kwargs

    def test_no_token_in_kwargs(self, canvas: CanvasSimulator):
        assert canvas.token not in json.dumps(trigger(1).serialize())

    def test_invalid_poll_interval_fails_when_built_not_in_the_triggerer(self):
        with pytest.raises(ValueError, match="poll_interval"):
            trigger(1, poll_interval=0)
        with pytest.raises(ValueError, match="expected_run_time"):
            trigger(1, expected_run_time=-3)

    def test_a_trigger_built_by_hand_says_what_is_wrong(self):
        with pytest.raises(CanvasConfigError, match="Invalid Canvas report id 'abc'"):
            trigger("abc")
        with pytest.raises(ValueError, match=r"deadline=3600 is not an absolute time: give epoch seconds"):
            trigger(1, deadline=3600)
        built = trigger(1, poll_interval=timedelta(seconds=30), max_poll_interval=timedelta(minutes=10))
        assert (built.poll_interval, built.max_poll_interval) == (30.0, 600.0)
        assert json.loads(json.dumps(built.serialize()[1]))["poll_interval"] == 30.0


class TestOutcomes:
    async def test_success(self, canvas: CanvasSimulator, capsys: pytest.CaptureFixture[str]):
        report_id = start()
        payload = await first_event(trigger(report_id))
        event = parse_event(payload, report_id=report_id)
        assert event.status == "success"
        assert event.report_json is not None
        assert event.report_json["status"] == "complete"
        assert event.report_json["id"] == report_id
        assert event.report_json["attachment"]["size"] > 0
        assert "status=complete" in event.summary
        assert "polls" in event.summary
        assert canvas.counters.status_polls[report_id] >= 2
        # Each poll is logged with status, progress, current line and time waited.
        # (Airflow routes trigger logs through structlog to stdout.)
        logged = capsys.readouterr().out
        polls = [line for line in logged.splitlines() if "next poll in" in line]
        assert polls
        assert all("status=" in line and "waited=" in line for line in polls)
        assert any("progress=" in line and "current_line=" in line for line in polls)
        assert canvas.token not in logged
        assert canvas.token not in json.dumps(payload)

    @pytest.mark.parametrize(
        ("fate", "status", "reason"),
        [
            ("error", "error", "Failed, the report failed to generate a file"),
            ("aborted_by_other", "aborted", "Report has been aborted"),
        ],
    )
    async def test_failures_carry_canvas_reason(
        self, canvas: CanvasSimulator, fate: str, status: str, reason: str
    ):
        canvas.script_report("provisioning_csv", fate)
        report_id = start()
        payload = await first_event(trigger(report_id))
        assert payload["status"] == "failure"
        assert payload["report_status"] == status
        assert f"#{report_id}" in payload["message"]
        assert reason in payload["message"]
        assert payload["report_json"]["progress"] == 100  # progress 100 and still a failure

    async def test_deleted_by_someone_else(self, canvas: CanvasSimulator):
        canvas.script_report("provisioning_csv", "deleted_by_other")
        report_id = start()
        payload = await first_event(trigger(report_id))
        assert payload["status"] == "failure"
        assert "deleted" in payload["message"]
        assert f"#{report_id}" in payload["message"]

    @pytest.mark.parametrize(
        ("last_status", "said"),
        [
            ("created", r"no longer exists in Canvas \(HTTP 404 while waiting; last status 'created'\)"),
            (
                None,
                r"Canvas has no report provisioning_csv #\d+ \(HTTP 404\): it was deleted, or the report id",
            ),
        ],
    )
    async def test_deleted_before_the_first_poll(
        self, canvas: CanvasSimulator, last_status: str | None, said: str
    ):
        # The worker saw the report and deferred; it was deleted before the trigger's first poll.
        report_id = start()
        CanvasHook().delete_report("provisioning_csv", report_id)
        payload = await first_event(trigger(report_id, last_status=last_status))
        assert payload["status"] == "failure"
        assert re.search(said, payload["message"]), payload["message"]

    async def test_unknown_status_keeps_waiting_with_a_warning(
        self, canvas: CanvasSimulator, capsys: pytest.CaptureFixture[str]
    ):
        canvas.script_report("provisioning_csv", "stuck_running")
        report_id = start()
        state = canvas.reports[report_id]
        state.frozen = Snapshot("on_hold", 40, 0, None, None, "")
        task = asyncio.ensure_future(first_event(trigger(report_id)))
        await asyncio.sleep(0.6)
        assert not task.done()  # an unknown status is not an end
        state.frozen = Snapshot("complete", 100, 0, None, None, "")
        state.attachment = None
        payload = await task
        assert payload["status"] == "success"
        warnings = [line for line in capsys.readouterr().out.splitlines() if "warning" in line]
        assert len([w for w in warnings if "does not know: 'on_hold'" in w]) == 1  # once, not per poll

    async def test_deadline_gives_a_timeout_event(self, canvas: CanvasSimulator):
        report_id = start_queued(canvas)
        began = time.monotonic()
        payload = await first_event(trigger(report_id, poll_interval=5, deadline=time.time() + 0.8))
        assert time.monotonic() - began < 3  # the deadline cuts the 5 s interval short
        assert payload["status"] == "timeout"
        assert payload["report_status"] == "created"
        assert "timeout" in payload["message"]
        assert (
            canvas.counters.requests["abort"] == canvas.counters.requests["delete"] == 0
        )  # the task cancels

    async def test_a_status_request_still_running_at_the_deadline_does_not_hold_it_back(
        self, canvas: CanvasSimulator
    ):
        report_id = start_queued(canvas)
        # The first poll's answer comes 5 s late; the deadline is 0.8 s away.
        canvas.add_fault(Fault(endpoint="status", kind="slow", delay=5.0, report_id=report_id))
        began = time.monotonic()
        payload = await first_event(trigger(report_id, poll_interval=5, deadline=time.time() + 0.8))
        assert time.monotonic() - began < 2.5
        assert payload["status"] == "timeout"
        assert "(the timeout)" in payload["message"]

    async def test_poll_interval_is_honoured(self, canvas: CanvasSimulator):
        report_id = start_queued(canvas)
        await first_event(trigger(report_id, poll_interval=0.25, deadline=time.time() + 1.3))
        # At most one poll per 0.25 s (7 in 1.3 s, the first at once); a loaded machine may fit fewer.
        assert 2 <= canvas.counters.status_polls[report_id] <= 7

    async def test_polls_that_change_nothing_are_not_logged_at_info(
        self, canvas: CanvasSimulator, capsys: pytest.CaptureFixture[str]
    ):
        report_id = start_queued(canvas)
        # Stopped after its 4th poll was answered and logged (the 5th has reached Canvas), not by a
        # wall-clock deadline: a stalled machine would fit fewer polls in a fixed window.
        waiting = asyncio.ensure_future(first_event(trigger(report_id, poll_interval=0.1)))

        async def fifth_poll() -> None:
            while canvas.counters.status_polls[report_id] < 5 and not waiting.done():
                await asyncio.sleep(0.01)

        await asyncio.wait_for(fifth_poll(), 30)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):  # no event: the report is still queued
            await waiting
        assert canvas.counters.status_polls[report_id] >= 5
        # The first poll says where the report stands; the same answer again is DEBUG only.
        logged = [line for line in capsys.readouterr().out.splitlines() if "next poll in" in line]
        assert len(logged) == 1
        assert "status=created" in logged[0]

    async def test_the_first_poll_waits_for_first_poll_at(
        self, canvas: CanvasSimulator, capsys: pytest.CaptureFixture[str]
    ):
        # The worker saw the report just before deferring: the trigger's first look is planned.
        report_id = start_queued(canvas)
        began = time.time()
        running = asyncio.ensure_future(
            first_event(trigger(report_id, first_poll_at=began + 1.0, deadline=began + 1.6))
        )
        await asyncio.sleep(0.6)
        assert canvas.counters.status_polls[report_id] == 0
        payload = await running
        assert payload["status"] == "timeout"
        assert canvas.counters.status_polls[report_id] >= 1
        assert f"#{report_id}: first poll in" in capsys.readouterr().out

    async def test_a_deadline_before_the_first_poll_names_the_status_the_worker_saw(
        self, canvas: CanvasSimulator
    ):
        report_id = start_queued(canvas)
        began = time.time()
        payload = await first_event(
            trigger(report_id, first_poll_at=began + 5, deadline=began + 0.5, last_status="created")
        )
        assert canvas.counters.status_polls[report_id] == 0
        assert payload["status"] == "timeout"
        assert payload["message"] == (
            f"Canvas report provisioning_csv #{report_id} did not finish within 0s (the timeout); "
            "last status 'created'. It never started: Canvas runs one report at a time per root account, "
            "so others were ahead of it, or its job workers are stopped."
        )

    async def test_a_first_poll_time_past_polls_at_once(self, canvas: CanvasSimulator):
        # A restarted or moved trigger keeps its kwargs: its first poll time may be long gone.
        report_id = start()
        payload = await first_event(trigger(report_id, first_poll_at=time.time() - 3600))
        assert payload["status"] == "success"

    async def test_adaptive_polling_stretches_while_queued_by_the_expected_run_time(
        self, canvas: CanvasSimulator
    ):
        report_id = start_queued(canvas)
        began = time.time()
        payload = await first_event(
            trigger(
                report_id,
                poll_interval=0.1,
                adaptive_polling=True,
                deadline=began + 2.5,
                wait_started_at=began,
                expected_run_time=2.0,
            )
        )
        assert payload["status"] == "timeout"
        # Fixed 0.1 s polling would take ~25; a report expected to run 2 s cannot be done within
        # 1.5 s of starting, so a queued one is polled every 1.6 s: at 0 and 1.6 s, then the deadline.
        assert canvas.counters.status_polls[report_id] <= 4


class TestTransientFailures:
    @pytest.mark.parametrize(
        "faults",
        [
            [Fault(endpoint="status", kind="reset", times=4)],
            [Fault(endpoint="status", kind="500", times=3), Fault(endpoint="status", kind="502", times=2)],
            [Fault(endpoint="status", kind="throttle", times=5)],
            [Fault(endpoint="status", kind="html", times=2)],
        ],
        ids=["resets", "5xx", "throttling", "proxy-page"],
    )
    async def test_tolerated(self, canvas: CanvasSimulator, faults: list[Fault]):
        report_id = start()
        for fault in faults:
            canvas.faults.add(fault)
        payload = await first_event(
            trigger(report_id, retry_policy=retry_policy_kwargs(FAST_RETRIES), max_consecutive_errors=5)
        )
        assert payload["status"] == "success", payload["message"]
        assert re.search(r"\d+ polls \(\d+ failed\)", payload["summary"]), payload["summary"]
        assert sum(f.used for f in faults) == sum(f.times or 0 for f in faults)

    async def test_beyond_the_budget_gives_an_error_event(self, canvas: CanvasSimulator):
        report_id = start()
        canvas.faults.add(Fault(endpoint="status", kind="503", times=None))
        payload = await first_event(
            trigger(report_id, retry_policy=retry_policy_kwargs(FAST_RETRIES), max_consecutive_errors=3)
        )
        assert payload["status"] == "error"
        assert "3 consecutive failed polls" in payload["message"]
        assert "503" in payload["message"]
        # Each failed poll was one request plus the client's one retry.
        assert canvas.counters.status_polls[report_id] == 3 * FAST_RETRIES.max_attempts

    @pytest.mark.simulator(tokens={"other-token": True})
    async def test_a_revoked_token_is_an_error_at_once(
        self, canvas: CanvasSimulator, monkeypatch: pytest.MonkeyPatch
    ):
        report_id = CanvasHook().start_report("provisioning_csv", {"users": True}).id
        conn = {"conn_type": "canvas", "host": canvas.url, "password": "revoked-token"}
        monkeypatch.setenv("AIRFLOW_CONN_CANVAS_DEFAULT", json.dumps(conn))
        payload = await first_event(trigger(report_id))
        assert payload["status"] == "error"
        assert "InvalidTokenError" in payload["message"]
        assert "revoked-token" not in json.dumps(payload)

    async def test_without_an_account_a_broken_connection_ends_in_an_error_event(
        self, canvas: CanvasSimulator, monkeypatch: pytest.MonkeyPatch
    ):
        # account_id=None: the account comes from the connection, looked up in run(). Its failure
        # must end in an event like a failed poll, never in an exception (no event, report left).
        report_id = start()
        conn = {"conn_type": "canvas", "host": canvas.url}  # no token
        monkeypatch.setenv("AIRFLOW_CONN_CANVAS_DEFAULT", json.dumps(conn))
        payload = await first_event(trigger(report_id, account_id=None))
        assert payload["status"] == "error"
        assert "CanvasConfigError" in payload["message"]
        assert "has no API token" in payload["message"]
        assert canvas.counters.status_polls[report_id] == 0

    async def test_without_an_account_it_polls_the_connections_default(self, canvas: CanvasSimulator):
        report_id = start()
        payload = await first_event(trigger(report_id, account_id=None))
        assert payload["status"] == "success"
        assert payload["account_id"] == "self"


class TestKill:
    async def test_restart_or_move_never_cancels(self, canvas: CanvasSimulator):
        canvas.script_report("provisioning_csv", "stuck_running")
        report_id = start()
        trig = trigger(report_id)
        run = asyncio.ensure_future(anext(trig.run()))
        await asyncio.sleep(0.5)
        run.cancel()  # a triggerer shutting down, or the trigger moving elsewhere
        with pytest.raises(asyncio.CancelledError):
            await run
        await trig.cleanup()
        await asyncio.sleep(0.2)
        assert canvas.counters.requests["abort"] == canvas.counters.requests["delete"] == 0
        assert canvas.reports[report_id].status == "running"


async def test_many_triggers_share_one_session(canvas: CanvasSimulator):
    ids = [start() for _ in range(8)]
    # Held around the eight, as another trigger still waiting in the triggerer's loop would.
    async with aio.hold_shared_sessions():
        payloads = await asyncio.gather(*(first_event(trigger(i)) for i in ids))
        assert [p["status"] for p in payloads] == ["success"] * 8
        shared = aio._SHARED[asyncio.get_running_loop()]
        assert len(shared) == 1  # one (host, token) -> one ClientSession for all eight
        session = next(iter(shared.values())).session
        assert not session.closed
    # The last holder gone, the loop's session is closed rather than leaked.
    assert session.closed
