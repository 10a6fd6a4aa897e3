"""ReportCompleteSensor against the Canvas simulator: deferral, resumption, poke and reschedule."""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    TaskDeferred,
)

from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
from airflow_provider_canvas_reports.operators._common import ReportWaitError
from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor
from airflow_provider_canvas_reports.simulator import CanvasSimulator, Fault
from airflow_provider_canvas_reports.triggers.reports import ReportStatusTrigger
from tests.fixtures.simulator import wait_until
from tests.fixtures.task_instance import FakeTaskInstance

REPORT = "provisioning_csv"


def start(sim: CanvasSimulator, fate: str | None = None) -> int:
    if fate:
        sim.script_report(REPORT, fate)
    return CanvasHook().start_report(REPORT, {"users": True}).id


def sensor(report_id: int | str, **kwargs: Any) -> ReportCompleteSensor:
    kwargs.setdefault("poke_interval", 0.1)
    kwargs.setdefault("timeout", 30)
    return ReportCompleteSensor(task_id="wait", report=REPORT, report_id=report_id, **kwargs)


def event(report_id: int, status: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": status,
        "message": f"message for {status}",
        "summary": "summary",
        "report": REPORT,
        "report_id": report_id,
        "account_id": "self",
        "report_status": extra.pop("report_status", None),
        "report_json": extra.pop("report_json", None),
        **extra,
    }


class TestDeferrable:
    def test_defers_with_a_deadline_and_no_framework_timeout(self, canvas: CanvasSimulator, context):
        report_id = start(canvas, "stuck_running")
        before = time.time()
        task = sensor(str(report_id), deferrable=True, timeout=timedelta(minutes=10), poke_interval=3)
        with pytest.raises(TaskDeferred) as deferred:
            task.execute(context)
        assert deferred.value.timeout is None  # a framework timeout would skip execute_complete
        assert deferred.value.method_name == "execute_complete"
        trigger = deferred.value.trigger
        assert isinstance(trigger, ReportStatusTrigger)
        classpath, kwargs = trigger.serialize()
        assert classpath.endswith("triggers.reports.ReportStatusTrigger")
        assert json.loads(json.dumps(kwargs)) == kwargs
        assert kwargs["report_id"] == report_id
        assert kwargs["report"] == REPORT
        assert kwargs["account_id"] == "self"
        assert kwargs["canvas_conn_id"] == "canvas_default"
        assert kwargs["poll_interval"] == 3.0
        assert kwargs["adaptive_polling"] is True
        assert before + 600 <= kwargs["deadline"] <= time.time() + 600
        assert kwargs["wait_started_at"] <= kwargs["deadline"] - 600 + 1
        # Checked once before deferring; the link's URL is pushed before waiting.
        assert canvas.counters.status_polls[report_id] == 1
        # That check is the wait's first poll: the trigger's first comes one interval after it.
        assert before + 3 <= kwargs["first_poll_at"] <= time.time() + 3
        assert kwargs["last_status"] in ("created", "running")  # what that check saw
        assert context["ti"].xcoms["canvas_reports_url"] == f"{canvas.url}/accounts/self/settings#tab-reports"

    def test_finishes_at_once_when_already_complete(self, canvas: CanvasSimulator, context):
        report_id = start(canvas)
        wait_until(canvas, report_id, "complete")
        result = sensor(report_id, deferrable=True).execute(context)
        assert result["id"] == report_id
        assert result["status"] == "complete"
        assert canvas.counters.status_polls[report_id] == 1

    @pytest.mark.parametrize(
        ("soft_fail", "raised"), [(False, AirflowFailException), (True, AirflowSkipException)]
    )
    def test_fails_at_once_when_already_failed(self, canvas: CanvasSimulator, context, soft_fail, raised):
        report_id = start(canvas, "error")
        wait_until(canvas, report_id, "error")
        with pytest.raises(
            raised, match=f"#{report_id} ended with status 'error': Failed, the report failed"
        ):
            sensor(report_id, deferrable=True, soft_fail=soft_fail).execute(context)

    def test_unknown_report_id(self, canvas: CanvasSimulator, context):
        with pytest.raises(AirflowFailException, match=r"no report provisioning_csv #999 .*wrong"):
            sensor(999, deferrable=True).execute(context)

    @pytest.mark.parametrize("bad", ["", "abc", "{{ ti }}", "-3", None])
    def test_invalid_report_id(self, canvas: CanvasSimulator, context, bad):
        with pytest.raises(AirflowFailException, match="Invalid Canvas report id"):
            sensor(bad, deferrable=True).execute(context)


class TestExecuteComplete:
    def test_success_returns_the_report(self, canvas: CanvasSimulator, context):
        report_json = {"id": 5, "report": REPORT, "status": "complete", "progress": 100}
        result = sensor(5).execute_complete(context, event(5, "success", report_json=report_json))
        assert result == report_json
        assert canvas.counters.total_requests == 0  # nothing more to ask Canvas

    @pytest.mark.parametrize(
        ("soft_fail", "raised"), [(False, AirflowFailException), (True, AirflowSkipException)]
    )
    def test_failure(self, canvas: CanvasSimulator, context, soft_fail, raised):
        with pytest.raises(raised, match="message for failure"):
            sensor(5, soft_fail=soft_fail).execute_complete(
                context, event(5, "failure", report_status="error")
            )

    @pytest.mark.parametrize(
        ("payload", "raised"),
        [
            ({"status": "error"}, ReportWaitError),  # the trigger could not learn the report's state
            (
                {"status": "success", "report_json": {"id": 5, "status": "running"}},
                ReportWaitError,
            ),  # malformed
            ({"status": "failure", "report_status": "error"}, AirflowSkipException),  # Canvas's verdict
            ({"status": "timeout"}, AirflowSkipException),
        ],
        ids=["error", "malformed", "failure", "timeout"],
    )
    def test_soft_fail_skips_on_a_verdict_only_when_resumed_from_the_trigger(
        self, canvas: CanvasSimulator, context, payload, raised
    ):
        # Airflow's resume_execution turns any AirflowException into a skip under soft_fail; poke
        # mode does not. A wait that could not learn the report's state fails in both modes.
        body = {**event(5, payload["status"]), **payload}
        with pytest.raises(raised):
            sensor(5, soft_fail=True).resume_execution("execute_complete", {"event": body}, context)

    def test_error(self, canvas: CanvasSimulator, context):
        with pytest.raises(ReportWaitError, match="message for error"):
            sensor(5).execute_complete(context, event(5, "error"))

    @pytest.mark.parametrize(
        "bad",
        [
            None,
            "success",
            {},
            {"status": "succeeded", "report_id": 5},
            {"status": "success", "report_id": 5},  # success without a complete report
            {"status": "success", "report_id": 5, "report_json": {"status": "running"}},
            {"status": "success", "report_id": 6, "report_json": {"status": "complete"}},
        ],
        ids=["none", "string", "empty", "unknown-status", "no-report", "not-complete", "other-report"],
    )
    def test_missing_or_invalid_event_is_an_error_never_success(self, canvas: CanvasSimulator, context, bad):
        with pytest.raises(ReportWaitError) as raised:
            sensor(5).execute_complete(context, bad)
        assert not isinstance(raised.value, AirflowSkipException)

    def test_timeout_leaves_a_queued_report_then_fails_saying_so(self, canvas: CanvasSimulator, context):
        report_id = start(canvas, "stuck_created")
        with pytest.raises(
            AirflowSensorTimeout,
            match=r"message for timeout Left it queued in Canvas: Canvas cannot stop a report that has not",
        ):
            sensor(report_id).execute_complete(context, event(report_id, "timeout", report_status="created"))
        assert canvas.counters.requests["delete"] == canvas.counters.requests["abort"] == 0
        assert canvas.reports[report_id].status == "created"

    @pytest.mark.simulator(run_seconds=0.2, compile_seconds=60)
    def test_timeout_deletes_a_compiling_report(self, canvas: CanvasSimulator, context):
        # A report of two tables runs in parts, then compiles them: no abort then, a delete stops it.
        report_id = CanvasHook().start_report(REPORT, {"users": True, "courses": True}).id
        wait_until(canvas, report_id, "compiling")
        with pytest.raises(
            AirflowSensorTimeout, match=r"Cancelled it in Canvas: deleted it \(it had started"
        ):
            sensor(report_id).execute_complete(context, event(report_id, "timeout"))
        assert canvas.counters.requests["delete"] == 1
        assert canvas.reports[report_id].status == "deleted"

    def test_timeout_aborts_a_running_report(self, canvas: CanvasSimulator, context):
        report_id = start(canvas, "stuck_running")
        wait_until(canvas, report_id, "running")
        with pytest.raises(AirflowSkipException, match="aborted it"):
            sensor(report_id, soft_fail=True).execute_complete(context, event(report_id, "timeout"))
        assert canvas.counters.requests["abort"] == 1
        assert canvas.reports[report_id].status == "aborted"

    def test_timeout_on_a_report_that_completed_meanwhile_succeeds(self, canvas: CanvasSimulator, context):
        report_id = start(canvas)
        wait_until(canvas, report_id, "complete")
        result = sensor(report_id).execute_complete(context, event(report_id, "timeout"))
        assert result["status"] == "complete"
        assert canvas.counters.requests["abort"] == canvas.counters.requests["delete"] == 0


class TestPokeMode:
    def test_success_returns_the_report_through_poke_return_value(self, canvas: CanvasSimulator, context):
        report_id = start(canvas)
        task = sensor(report_id)
        first = task.poke(context)
        assert first is False
        result = task.execute(context)
        assert result["status"] == "complete"
        assert result["id"] == report_id
        done = task.poke(context)
        assert done.is_done  # type: ignore[union-attr]
        assert done.xcom_value["status"] == "complete"  # type: ignore[union-attr]

    def test_timeout_aborts_the_report_and_fails_saying_so(self, canvas: CanvasSimulator, context):
        report_id = start(canvas, "stuck_running")
        with pytest.raises(
            AirflowSensorTimeout, match=r"did not finish within 1s .*Cancelled it in Canvas: aborted"
        ):
            sensor(report_id, timeout=1, poke_interval=0.2).execute(context)
        assert canvas.counters.requests["abort"] == 1
        assert canvas.reports[report_id].status == "aborted"

    def test_timeout_with_soft_fail_skips_and_still_cancels(self, canvas: CanvasSimulator, context):
        report_id = start(canvas, "stuck_running")
        with pytest.raises(AirflowSkipException, match="aborted it"):
            sensor(report_id, timeout=0.6, poke_interval=0.2, soft_fail=True).execute(context)
        assert canvas.reports[report_id].status == "aborted"

    def test_pokes_that_change_nothing_are_not_logged_at_info(
        self, canvas: CanvasSimulator, context, capsys: pytest.CaptureFixture[str]
    ):
        report_id = start(canvas, "stuck_created")
        # Pokes every 0.05 s: a loaded machine's stalls still leave room for 4 in the second.
        with pytest.raises(AirflowSensorTimeout):
            sensor(report_id, timeout=1, adaptive_polling=False, poke_interval=0.05).execute(context)
        assert canvas.counters.status_polls[report_id] >= 4
        # The first poke says where the report stands; the same answer again is DEBUG only.
        logged = [line for line in capsys.readouterr().out.splitlines() if "status=created" in line]
        assert len(logged) == 1

    @pytest.mark.parametrize("fate", ["error", "aborted_by_other", "deleted_by_other"])
    def test_failed_reports_fail(self, canvas: CanvasSimulator, context, fate):
        report_id = start(canvas, fate)
        with pytest.raises(AirflowFailException, match=f"#{report_id}"):
            sensor(report_id).execute(context)
        assert canvas.counters.requests["abort"] == canvas.counters.requests["delete"] == 0

    def test_transient_failures_are_tolerated(self, canvas: CanvasSimulator, context):
        report_id = start(canvas)
        canvas.faults.add(Fault(endpoint="status", kind="reset", times=4))
        policy = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.02)
        result = sensor(report_id, canvas_retry_policy=policy, max_consecutive_errors=3).execute(context)
        assert result["status"] == "complete"

    def test_too_many_failed_polls_fail_the_try(self, canvas: CanvasSimulator, context):
        report_id = start(canvas)
        canvas.faults.add(Fault(endpoint="status", kind="500", times=None))
        policy = RetryPolicy(max_attempts=1)
        with pytest.raises(ReportWaitError, match="2 consecutive failed polls"):
            sensor(report_id, canvas_retry_policy=policy, max_consecutive_errors=2).execute(context)

    def test_adaptive_interval_never_sleeps_past_the_timeout(self, canvas: CanvasSimulator, context):
        report_id = start(canvas, "stuck_created")
        task = sensor(report_id, poke_interval=0.5, timeout=60, max_poll_interval=40)
        assert task.poke(context) is False
        assert task._get_next_poke_interval(0, lambda: 0.0, 1) == 0.5
        assert task._get_next_poke_interval(0, lambda: 59.8, 1) == pytest.approx(0.2)
        fixed = sensor(report_id, poke_interval=0.5, adaptive_polling=False)
        fixed.poke(context)
        assert fixed._get_next_poke_interval(0, lambda: 1.0, 1) == 0.5

    def test_on_kill_leaves_the_report_when_the_task_state_cannot_be_read(
        self, canvas: CanvasSimulator, context, capsys: pytest.CaptureFixture[str]
    ):
        # on_kill stops the report only for a task Airflow records as given up (failed, ...):
        # SIGTERM comes for a success or a clear too. Unsure (no supervisor answers here), it
        # leaves the report and says where to stop it by hand. The states themselves are checked
        # on a real deployment (tests/system/test_user_actions.py).
        report_id = start(canvas, "stuck_running")
        wait_until(canvas, report_id, "running")
        task = sensor(report_id)
        assert task.poke(context) is False
        task.on_kill()
        assert canvas.reports[report_id].status == "running"
        assert canvas.counters.requests["abort"] == canvas.counters.requests["delete"] == 0
        out = capsys.readouterr().out
        assert f"Leaving Canvas report provisioning_csv #{report_id} running: could not tell" in out
        assert "/accounts/self/settings#tab-reports" in out


class TestRescheduleMode:
    def test_reschedules_at_the_adaptive_interval(self, canvas: CanvasSimulator, context):
        from airflow.exceptions import AirflowRescheduleException

        report_id = start(canvas, "stuck_created")
        task = sensor(report_id, mode="reschedule", poke_interval=2)
        with pytest.raises(AirflowRescheduleException) as raised:
            task.execute(context)
        delay = (raised.value.reschedule_date - datetime.now(timezone.utc)).total_seconds()
        assert 1.0 < delay <= 2.0

    def test_a_failed_poll_fails_the_try(self, canvas: CanvasSimulator, context):
        report_id = start(canvas)
        canvas.faults.add(Fault(endpoint="status", kind="503", times=None))
        task = sensor(report_id, mode="reschedule", canvas_retry_policy=RetryPolicy(max_attempts=1))
        with pytest.raises(ReportWaitError, match="503"):
            task.execute(context)


def test_templated_fields(canvas: CanvasSimulator):
    task = ReportCompleteSensor(
        task_id="wait",
        report="{{ params.kind }}_csv",
        report_id="{{ params.rid }}",
        account_id="{{ params.account }}",
        canvas_conn_id="{{ params.canvas }}",
    )
    assert set(task.template_fields) == {"report", "report_id", "account_id", "canvas_conn_id"}
    task.render_template_fields(
        {"params": {"kind": "provisioning", "rid": 12, "account": 3, "canvas": "canvas_b"}}
    )
    assert (task.report, task.report_id, task.account_id) == ("provisioning_csv", "12", "3")
    assert task.canvas_conn_id == "canvas_b"


class TestExpectedRunTime:
    def finished_run(self, sim: CanvasSimulator, parameters: dict[str, Any]) -> dict[str, Any]:
        report_id = CanvasHook().start_report(REPORT, parameters).id
        wait_until(sim, report_id, "complete")
        return CanvasHook().get_report(REPORT, report_id).as_json()

    def test_deferrable_takes_the_previous_run_with_the_parameters_the_run_echoes(
        self, canvas: CanvasSimulator, context
    ):
        previous = self.finished_run(canvas, {"users": True})
        self.finished_run(canvas, {"users": True, "courses": True})  # newer, another export
        report_id = start(canvas, "stuck_created")
        canvas.counters.reset()

        with pytest.raises(TaskDeferred) as deferred:
            sensor(report_id, deferrable=True).execute(context)

        assert deferred.value.trigger.expected_run_time == pytest.approx(previous["run_time"])
        assert canvas.counters.requests["index"] == 1

    def test_poke_mode_looks_it_up_once_per_try(self, canvas: CanvasSimulator, context):
        self.finished_run(canvas, {"users": True})
        report_id = start(canvas, "stuck_created")
        canvas.counters.reset()
        task = sensor(report_id)

        assert task.poke(context) is False
        assert task.poke(context) is False

        assert task._waiter is not None
        assert task._waiter.expected_run_time is not None
        assert canvas.counters.requests["index"] == 1

    def test_reschedule_mode_never_looks_it_up_on_every_poke(self, canvas: CanvasSimulator, context):
        from airflow.exceptions import AirflowRescheduleException

        self.finished_run(canvas, {"users": True})
        report_id = start(canvas, "stuck_created")
        canvas.counters.reset()
        with pytest.raises(AirflowRescheduleException):
            sensor(report_id, mode="reschedule").execute(context)
        assert canvas.counters.requests["index"] == 0

        # A given value is used, in every mode.
        with pytest.raises(AirflowRescheduleException) as raised:
            sensor(report_id, mode="reschedule", poke_interval=1, timeout=600, expected_run_time=100).execute(
                context
            )
        delay = (raised.value.reschedule_date - datetime.now(timezone.utc)).total_seconds()
        assert delay > 50  # queued, expected to run 100 s: not done within 75 s of starting
        assert canvas.counters.requests["index"] == 0


class RescheduledTaskInstance(FakeTaskInstance):
    """A try whose first poke was earlier: it was rescheduled since."""

    def get_first_reschedule_date(self, context: Any) -> datetime:
        return datetime.now(timezone.utc) - timedelta(minutes=1)


class TestTakingTurns:
    def test_a_mapped_sensor_waits_its_place_before_its_first_check(
        self, canvas: CanvasSimulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ):
        report_id = start(canvas)
        wait_until(canvas, report_id, "complete")
        with caplog.at_level(logging.INFO):
            result = sensor(report_id, deferrable=True, start_spacing=0.05).execute(
                {"ti": FakeTaskInstance(map_index=2)}
            )
        assert result["status"] == "complete"
        logged = caplog.text + capsys.readouterr().out
        assert (
            "Waiting 0.10s before the first request to Canvas: place 2 among the ReportCompleteSensor"
            in logged
        )

    @pytest.mark.parametrize(("ti", "waits"), [(FakeTaskInstance, True), (RescheduledTaskInstance, False)])
    def test_in_reschedule_mode_only_a_trys_first_poke_waits(
        self,
        canvas: CanvasSimulator,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
        ti: type[FakeTaskInstance],
        waits: bool,
    ):
        report_id = start(canvas)
        wait_until(canvas, report_id, "complete")
        with caplog.at_level(logging.INFO):
            sensor(report_id, mode="reschedule", start_spacing=0.05).execute({"ti": ti(map_index=1)})
        assert ("before the first request to Canvas" in caplog.text + capsys.readouterr().out) is waits

    def test_a_bad_report_id_fails_before_any_wait(self, canvas: CanvasSimulator):
        with pytest.raises(AirflowFailException, match="report"):
            sensor("not-an-id", start_spacing=60).execute({"ti": FakeTaskInstance(map_index=49)})
