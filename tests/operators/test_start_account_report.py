"""StartAccountReportOperator against the Canvas simulator (real HTTP), called outside a DAG run.

The DAG-run paths (dag.test, real task_state_store, retries) are in tests/e2e/test_start_and_wait.py.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException, TaskDeferred

from airflow_provider_canvas_reports.canvas.errors import (
    CanvasRetryExhaustedError,
    InvalidParametersError,
    ReportFailedError,
    UnknownReportError,
)
from airflow_provider_canvas_reports.canvas.polling import PollPolicy, Waiter
from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
from airflow_provider_canvas_reports.operators._common import (
    ReportWaitError,
    ReportWaitTimeoutError,
    wait_in_worker,
)
from airflow_provider_canvas_reports.operators.reports import STATE_KEY, StartAccountReportOperator
from airflow_provider_canvas_reports.simulator import CanvasSimulator, Fault
from airflow_provider_canvas_reports.triggers.reports import ReportStatusTrigger
from tests.fixtures.simulator import wait_until
from tests.fixtures.task_instance import FakeTaskInstance

REPORT = "provisioning_csv"


class FakeStateStore:
    """Airflow 3.3's task_state_store: get/set of JSON values, kept across tries."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: Any, *, retention: Any = None) -> None:
        self.values[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


class FakeDagRun:
    def __init__(self, start_date: datetime) -> None:
        self.start_date = start_date


def make_context(
    try_number: int = 1,
    store: FakeStateStore | None = None,
    run_start: datetime | None = None,
    map_index: int = -1,
):
    context: dict[str, Any] = {
        "ti": FakeTaskInstance(try_number, map_index),
        "dag_run": FakeDagRun(run_start or datetime.now(timezone.utc) - timedelta(minutes=5)),
    }
    if store is not None:
        context["task_state_store"] = store
    return context


def make_context_of_run(run_id: str, try_number: int = 1) -> dict[str, Any]:
    """A context of another DAG run (another logical date) of the same task."""
    context = make_context(try_number)
    context["ti"] = FakeTaskInstance(try_number, run_id=run_id)
    return context


def operator(**kwargs: Any) -> StartAccountReportOperator:
    kwargs.setdefault("task_id", "start")
    kwargs.setdefault("report", REPORT)
    kwargs.setdefault("parameters", {"users": True})
    kwargs.setdefault("poll_interval", 0.1)
    return StartAccountReportOperator(**kwargs)


class TestStart:
    def test_returns_the_report_as_canvas_sent_it_and_pushes_id_and_link(self, canvas: CanvasSimulator):
        context = make_context()
        result = operator(parameters={"users": True, "enrollment_term_id": "sis_term_id:2026FA"}).execute(
            context
        )
        assert canvas.counters.starts[REPORT] == 1
        assert result["status"] == "created"
        assert result["report"] == REPORT
        # Canvas echoes form values as strings (its job adds locale and extra_text later): returned
        # untouched.
        assert result["parameters"] == {
            "users": "true",
            "enrollment_term_id": "sis_term_id:2026FA",
            "skip_message": "true",
            "airflow_task": result["parameters"]["airflow_task"],
        }
        assert json.loads(json.dumps(result)) == result
        assert "attachment" not in result  # absent until there is a file, and not invented
        assert context["ti"].xcoms == {
            "report_id": result["id"],
            "canvas_reports_url": f"{canvas.url}/accounts/self/settings#tab-reports",
        }
        assert canvas.token not in json.dumps(context["ti"].xcoms)

    def test_account_and_skip_message(self, canvas: CanvasSimulator):
        context = make_context()
        result = operator(account_id=3, skip_message=False).execute(context)
        assert "skip_message" not in result["parameters"]  # any value of it skips the e-mail
        assert context["ti"].xcoms["canvas_reports_url"].endswith("/accounts/3/settings#tab-reports")
        CanvasHook().get_report(REPORT, result["id"], account_id=3)  # it lives on account 3

    @pytest.mark.parametrize(
        ("report", "parameters", "error", "match"),
        [
            ("no_such_report_csv", {}, UnknownReportError, "does not offer report 'no_such_report_csv'"),
            (REPORT, {"users": True, "colour": "blue"}, InvalidParametersError, "no parameter.*colour"),
            ("mgp_grade_export_csv", {}, InvalidParametersError, "requires parameter.*enrollment_term_id"),
            (REPORT, {"include_deleted": True}, InvalidParametersError, "at least one table flag"),
            (REPORT, "users=true", InvalidParametersError, "must be a mapping"),
        ],
        ids=["unknown-report", "unknown-parameter", "missing-required", "no-table", "not-a-mapping"],
    )
    def test_invalid_parameters_start_nothing(
        self, canvas: CanvasSimulator, report, parameters, error, match
    ):
        with pytest.raises(error, match=match):
            operator(report=report, parameters=parameters).execute(make_context())
        assert sum(canvas.counters.starts.values()) == 0
        assert canvas.counters.requests["start"] == 0

    def test_validation_can_be_skipped(self, canvas: CanvasSimulator):
        operator(validate_parameters=False).execute(make_context())
        assert canvas.counters.requests["available"] == 0
        assert canvas.counters.starts[REPORT] == 1

    def test_start_jitter_waits_then_starts_one_report(
        self, canvas: CanvasSimulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ):
        task = operator(start_jitter=timedelta(seconds=0.2))
        assert task.start_jitter == 0.2
        with caplog.at_level(logging.INFO):
            result = task.execute(make_context())
        # The pause is drawn in [0, start_jitter] and said before the first request.
        pause = _logged_pause(caplog.text + capsys.readouterr().out)
        assert 0.0 <= pause <= 0.2
        assert canvas.counters.requests["available"] == 1
        assert canvas.counters.requests["start"] == 1
        assert canvas.counters.starts[REPORT] == 1
        assert result["status"] == "created"

    def test_a_mapped_task_waits_its_place_before_the_first_request(
        self, canvas: CanvasSimulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ):
        task = operator(start_spacing=timedelta(seconds=0.05))
        assert task.start_spacing == 0.05
        started = time.monotonic()
        with caplog.at_level(logging.INFO):
            result = task.execute(make_context(map_index=3))
        assert time.monotonic() - started >= 0.15
        assert _logged_pause(caplog.text + capsys.readouterr().out) == pytest.approx(0.15)
        assert canvas.counters.starts[REPORT] == 1
        assert result["status"] == "created"

    @pytest.mark.parametrize("map_index", [-1, 0])
    def test_unmapped_and_first_mapped_tasks_do_not_wait(
        self,
        canvas: CanvasSimulator,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
        map_index: int,
    ):
        with caplog.at_level(logging.INFO):
            operator(start_spacing=60).execute(make_context(map_index=map_index))
        assert "before the first request" not in caplog.text + capsys.readouterr().out
        assert canvas.counters.starts[REPORT] == 1

    def test_start_tasks_of_different_dags_on_one_host_take_turns(
        self,
        canvas: CanvasSimulator,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ):
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this test's own host ledger
        # A spacing well above what a busy 2-core machine may take between the two threads' starts.
        tasks = [operator(task_id=f"start_{n}", start_spacing=3.0) for n in range(2)]  # in no DAG
        gate = threading.Barrier(2)
        sent: list[float] = []

        def run(task: StartAccountReportOperator) -> None:
            gate.wait()
            task.execute(make_context())
            sent.append(time.monotonic())

        with caplog.at_level(logging.INFO):
            threads = [threading.Thread(target=run, args=(task,)) for task in tasks]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        logged = caplog.text + capsys.readouterr().out
        # One went at once; the other took the host's next turn, about a spacing later.
        waits = re.findall(r"Waiting ([\d.]+)s for this worker's turn on the Canvas token", logged)
        assert len(waits) == 1
        assert 1.5 < float(waits[0]) <= 3.0
        assert abs(sent[1] - sent[0]) > 1.5
        assert canvas.counters.starts[REPORT] == 2

    @pytest.mark.parametrize("name", ["start_jitter", "start_spacing"])
    @pytest.mark.parametrize("bad", [-1, float("nan"), timedelta(seconds=-1)])
    def test_start_pauses_must_not_be_negative(self, name, bad):
        with pytest.raises(ValueError, match=f"{name} must be a duration of 0 or more"):
            operator(**{name: bad})

    def test_templated_fields(self):
        task = operator(
            report="{{ params.kind }}_csv",
            parameters={"users": "{{ params.flag }}", "enrollment_term_id": "sis_term_id:{{ params.term }}"},
            account_id="{{ params.account }}",
            canvas_conn_id="{{ params.canvas }}",
        )
        assert set(task.template_fields) == {"report", "parameters", "account_id", "canvas_conn_id"}
        task.render_template_fields(
            {
                "params": {
                    "kind": "sis_export",
                    "flag": True,
                    "term": "2026FA",
                    "account": 2,
                    "canvas": "canvas_b",
                }
            }
        )
        assert task.canvas_conn_id == "canvas_b"
        assert task.report == "sis_export_csv"
        assert task.parameters == {"users": "True", "enrollment_term_id": "sis_term_id:2026FA"}
        assert task.account_id == "2"


class TestWait:
    def test_deferrable_defers_with_the_deadline_in_the_trigger(self, canvas: CanvasSimulator):
        before = time.time()
        context = make_context()
        task = operator(
            wait_for_completion=True, deferrable=True, timeout=timedelta(hours=2), poll_interval=5
        )
        with pytest.raises(TaskDeferred) as deferred:
            task.execute(context)
        assert deferred.value.timeout is None
        assert deferred.value.method_name == "execute_complete"
        report_id = context["ti"].xcoms["report_id"]  # pushed before deferring
        assert deferred.value.kwargs == {"report_id": report_id}
        trigger = deferred.value.trigger
        assert isinstance(trigger, ReportStatusTrigger)
        _, kwargs = trigger.serialize()
        assert kwargs["report_id"] == report_id
        assert kwargs["poll_interval"] == 5.0
        assert before + 7200 <= kwargs["deadline"] <= time.time() + 7200
        assert canvas.counters.status_polls[report_id] == 0  # the start's answer was the first check
        # ... so the trigger's first poll comes one planned interval (a queued report with no
        # earlier run: poll_interval) after it, not at once.
        assert before + 5 <= kwargs["first_poll_at"] <= time.time() + 5
        assert kwargs["last_status"] == "created"  # a 404 at its first poll then reads as a deletion

    def test_in_the_worker_returns_the_final_report(self, canvas: CanvasSimulator):
        result = operator(wait_for_completion=True, deferrable=False).execute(make_context())
        assert result["status"] == "complete"
        assert result["attachment"]["size"] > 0
        assert canvas.counters.status_polls[result["id"]] >= 1

    @pytest.mark.parametrize(
        ("fate", "match"),
        [
            ("error", "'error': Failed, the report failed to generate a file"),
            ("aborted_by_other", "'aborted': Report has been aborted"),
            ("deleted_by_other", "deleted"),
        ],
    )
    def test_in_the_worker_failures_fail_with_canvas_reason(self, canvas: CanvasSimulator, fate, match):
        canvas.script_report(REPORT, fate)
        with pytest.raises(ReportFailedError, match=match):
            operator(wait_for_completion=True).execute(make_context())

    def test_in_the_worker_timeout_leaves_a_queued_report_then_fails_saying_so(self, canvas: CanvasSimulator):
        canvas.script_report(REPORT, "stuck_created")
        context = make_context()
        with pytest.raises(
            ReportWaitTimeoutError,
            match=r"did not finish within 1s .*Left it queued in Canvas: Canvas cannot stop a report that "
            r"has not started .*a retry of this task reconnects to it",
        ):
            operator(wait_for_completion=True, timeout=1, adaptive_polling=False).execute(context)
        report_id = context["ti"].xcoms["report_id"]
        # Deleting it would not stop it in Canvas, and a retry could no longer find it.
        assert canvas.reports[report_id].status == "created"
        assert canvas.counters.requests["delete"] == 0
        assert canvas.counters.requests["abort"] == 0

    def test_in_the_worker_timeout_aborts_a_running_report_then_fails_saying_so(
        self, canvas: CanvasSimulator
    ):
        canvas.script_report(REPORT, "stuck_running")
        context = make_context()
        with pytest.raises(
            ReportWaitTimeoutError, match=r"did not finish within 1s .*Cancelled it in Canvas: aborted it"
        ):
            operator(wait_for_completion=True, timeout=1, adaptive_polling=False).execute(context)
        report_id = context["ti"].xcoms["report_id"]
        assert canvas.reports[report_id].status == "aborted"
        assert canvas.counters.requests["abort"] == 1

    def test_in_the_worker_polls_that_change_nothing_are_not_logged_at_info(
        self, canvas: CanvasSimulator, capsys: pytest.CaptureFixture[str]
    ):
        canvas.script_report(REPORT, "stuck_created")
        context = make_context()
        # Polls every 0.05 s: a loaded machine's stalls still leave room for 4 in the second.
        task = operator(wait_for_completion=True, timeout=1, adaptive_polling=False, poll_interval=0.05)
        with pytest.raises(ReportWaitTimeoutError):
            task.execute(context)
        polls = canvas.counters.status_polls[context["ti"].xcoms["report_id"]]
        assert polls >= 4
        # The start's answer says where the report stands; the same answer again is DEBUG only.
        logged = [line for line in capsys.readouterr().out.splitlines() if "next poll in" in line]
        assert len(logged) == 1
        assert "status=created" in logged[0]

    @pytest.mark.simulator(queue_seconds=0.6)
    def test_in_the_worker_a_repeated_state_goes_to_debug_and_a_change_to_info(
        self, canvas: CanvasSimulator, caplog: pytest.LogCaptureFixture
    ):
        # The wait itself with a plain logger, to see each line's level (the task logger drops DEBUG).
        hook = CanvasHook()
        first = hook.start_report(REPORT, {"users": True})
        started = time.time()
        waiter = Waiter(
            PollPolicy(0.1, adaptive=False),
            report_type=REPORT,
            report_id=first.id,
            started_at=started,
            deadline=started + 30,
        )
        log = logging.getLogger("tests.wait_in_worker")
        with caplog.at_level(logging.DEBUG, logger=log.name):
            payload = wait_in_worker(hook, waiter, hook.account(None), log, first=first)
        assert payload["status"] == "success"
        lines = [(r.levelno, r.getMessage()) for r in caplog.records if "next poll in" in r.getMessage()]
        queued = [level for level, line in lines if "status=created" in line]
        assert len(queued) >= 3
        assert queued == [logging.INFO] + [logging.DEBUG] * (len(queued) - 1)
        running = [level for level, line in lines if "status=running" in line]
        assert running[0] == logging.INFO  # the status changed

    def test_on_kill_leaves_the_report_when_the_task_state_cannot_be_read(
        self, canvas: CanvasSimulator, capsys: pytest.CaptureFixture[str]
    ):
        # SIGTERM comes for a task marked success or cleared too, so on_kill stops the report only
        # once Airflow says the task gave it up; unsure (no supervisor answers here), it leaves it.
        # The states are checked on a real deployment (tests/system/test_user_actions.py) and the
        # execution_timeout, which does stop it, through dag.test() (tests/e2e).
        canvas.script_report(REPORT, "stuck_running")
        task = operator(wait_for_completion=True, timeout=3, poll_interval=0.1, adaptive_polling=False)
        context = make_context()
        errors: list[BaseException] = []

        def run() -> None:
            try:
                task.execute(context)
            except BaseException as exc:
                errors.append(exc)

        worker = threading.Thread(target=run)
        worker.start()
        until = time.monotonic() + 10
        while not (
            context["ti"].xcoms and canvas.reports[context["ti"].xcoms["report_id"]].status == "running"
        ):
            assert time.monotonic() < until
            time.sleep(0.05)
        task.on_kill()
        report_id = context["ti"].xcoms["report_id"]
        assert canvas.reports[report_id].status == "running"
        assert canvas.counters.requests["abort"] == 0
        assert (
            f"Leaving Canvas report {REPORT} #{report_id} running: could not tell" in capsys.readouterr().out
        )
        worker.join(30)  # the wait goes on to its own deadline, which does stop the report
        assert isinstance(errors[0], ReportWaitTimeoutError)
        assert canvas.reports[report_id].status == "aborted"

    def test_on_kill_without_a_wait_cancels_nothing(self, canvas: CanvasSimulator):
        task = operator()
        task.execute(make_context())
        task.on_kill()
        assert canvas.counters.requests["abort"] == canvas.counters.requests["delete"] == 0


class TestExpectedRunTime:
    def deferred_trigger(self, **kwargs: Any) -> ReportStatusTrigger:
        with pytest.raises(TaskDeferred) as deferred:
            operator(wait_for_completion=True, deferrable=True, **kwargs).execute(make_context())
        trigger = deferred.value.trigger
        assert isinstance(trigger, ReportStatusTrigger)
        return trigger

    def test_auto_takes_the_previous_complete_run_with_the_same_parameters(self, canvas: CanvasSimulator):
        previous = operator(wait_for_completion=True).execute(make_context())
        # Newer, complete, but another export (two tables: a ZIP): not a guide to this one's run time.
        operator(parameters={"users": True, "courses": True}, wait_for_completion=True).execute(
            make_context()
        )
        canvas.counters.reset()

        trigger = self.deferred_trigger()

        assert trigger.expected_run_time == pytest.approx(previous["run_time"])
        assert trigger.serialize()[1]["expected_run_time"] == trigger.expected_run_time
        assert canvas.counters.requests["index"] == 1  # one first page, when the wait starts

    def test_the_nightly_run_takes_the_last_run_of_the_available_list_without_an_index_request(
        self, canvas: CanvasSimulator, capsys: pytest.CaptureFixture[str]
    ):
        previous = operator(wait_for_completion=True).execute(make_context())
        canvas.counters.reset()
        capsys.readouterr()

        trigger = self.deferred_trigger()

        assert trigger.expected_run_time == pytest.approx(previous["run_time"])
        assert canvas.counters.requests["index"] == 0
        assert canvas.counters.requests["available"] == 1  # the validation's, read once
        logged = capsys.readouterr().out
        assert f"as run #{previous['id']} did (the last run in the available-reports list" in logged

    @pytest.mark.parametrize("newest", ["other-parameters", "failed"])
    def test_a_last_run_that_cannot_serve_leaves_it_to_the_index(
        self, canvas: CanvasSimulator, capsys: pytest.CaptureFixture[str], newest: str
    ):
        previous = operator(wait_for_completion=True).execute(make_context())
        # The newest run, so the list's last_run: another export of the same report, or a failure.
        if newest == "other-parameters":
            operator(parameters={"courses": True}, wait_for_completion=True).execute(make_context())
        else:
            canvas.script_report(REPORT, "error")
            with pytest.raises(ReportFailedError):
                operator(wait_for_completion=True).execute(make_context())
        canvas.counters.reset()
        capsys.readouterr()

        trigger = self.deferred_trigger()

        assert trigger.expected_run_time == pytest.approx(previous["run_time"])
        assert canvas.counters.requests["index"] == 1
        assert f"as run #{previous['id']} did (found in the report index)" in capsys.readouterr().out

    def test_a_retry_that_adopts_the_newest_run_never_takes_it_as_its_own_prior(
        self, canvas: CanvasSimulator, capsys: pytest.CaptureFixture[str]
    ):
        previous = operator(wait_for_completion=True).execute(make_context())
        canvas.script_report(REPORT, "stuck_running")
        with pytest.raises(TaskDeferred) as first:
            # The first try started its report, then died (no task_state_store: Airflow < 3.3).
            operator(wait_for_completion=True, deferrable=True, expected_run_time=None).execute(
                make_context()
            )
        adopted = first.value.trigger.report_id
        canvas.counters.reset()
        capsys.readouterr()

        with pytest.raises(TaskDeferred) as retry:
            operator(wait_for_completion=True, deferrable=True).execute(make_context(try_number=2))

        # The list's last_run was the adopted report itself: the prior comes from the index.
        assert retry.value.trigger.report_id == adopted
        assert retry.value.trigger.expected_run_time == pytest.approx(previous["run_time"])
        assert canvas.counters.starts[REPORT] == 0
        assert canvas.counters.requests["index"] == 2  # the adoption's look, then the lookup
        assert f"as run #{previous['id']} did (found in the report index)" in capsys.readouterr().out

    def test_auto_without_a_previous_run_waits_without_one(self, canvas: CanvasSimulator):
        assert self.deferred_trigger().expected_run_time is None
        assert canvas.counters.requests["index"] == 1

    @pytest.mark.parametrize("given", [300, 300.0, timedelta(minutes=5)])
    def test_a_given_expected_run_time_needs_no_lookup(self, canvas: CanvasSimulator, given):
        assert self.deferred_trigger(expected_run_time=given).expected_run_time == 300.0
        assert canvas.counters.requests["index"] == 0

    def test_none_means_no_expectation_and_no_lookup(self, canvas: CanvasSimulator):
        operator(wait_for_completion=True).execute(make_context())
        canvas.counters.reset()
        assert self.deferred_trigger(expected_run_time=None).expected_run_time is None
        assert canvas.counters.requests["index"] == 0

    def test_fixed_intervals_need_no_lookup(self, canvas: CanvasSimulator):
        assert self.deferred_trigger(adaptive_polling=False).expected_run_time is None
        assert canvas.counters.requests["index"] == 0

    def test_a_failed_lookup_never_fails_the_task(
        self, canvas: CanvasSimulator, capsys: pytest.CaptureFixture[str]
    ):
        canvas.faults.add(Fault(endpoint="index", kind="401", times=None))

        result = operator(wait_for_completion=True, deferrable=False).execute(make_context())

        assert result["status"] == "complete"
        assert canvas.counters.requests["index"] == 1
        logged = capsys.readouterr().out
        assert "Could not look up the previous run" in logged
        assert "polling without an expected run time" in logged
        assert canvas.token not in logged

    def test_the_wait_in_the_worker_uses_it(
        self, canvas: CanvasSimulator, capsys: pytest.CaptureFixture[str]
    ):
        previous = operator(wait_for_completion=True).execute(make_context())
        capsys.readouterr()

        operator(wait_for_completion=True, deferrable=False).execute(make_context())

        logged = capsys.readouterr().out
        assert f"as run #{previous['id']} did" in logged
        assert "expected_run_time=" in logged  # in the per-poll line

    @pytest.mark.parametrize("bad", ["soon", -1, 0, timedelta(0)])
    def test_invalid_values_fail_when_the_dag_is_parsed(self, bad):
        with pytest.raises(ValueError, match="expected_run_time"):
            operator(wait_for_completion=True, expected_run_time=bad)


class TestExecuteComplete:
    def event(self, report_id: int, status: str, **extra: Any) -> dict[str, Any]:
        return {
            "status": status,
            "message": f"said {status}",
            "summary": "s",
            "report": REPORT,
            "report_id": report_id,
            "account_id": "self",
            **extra,
        }

    def test_success_returns_the_final_report(self, canvas: CanvasSimulator):
        final = {"id": 9, "status": "complete", "report": REPORT}
        assert (
            operator().execute_complete({}, self.event(9, "success", report_json=final), report_id=9) == final
        )

    def test_failure(self, canvas: CanvasSimulator):
        with pytest.raises(ReportFailedError, match="said failure"):
            operator().execute_complete({}, self.event(9, "failure"), report_id=9)

    def test_error(self, canvas: CanvasSimulator):
        with pytest.raises(ReportWaitError, match="said error"):
            operator().execute_complete({}, self.event(9, "error"))

    def test_timeout_aborts_then_fails(self, canvas: CanvasSimulator):
        canvas.script_report(REPORT, "stuck_running")
        report_id = CanvasHook().start_report(REPORT, {"users": True}).id
        wait_until(canvas, report_id, "running")
        with pytest.raises(ReportWaitTimeoutError, match="said timeout Cancelled it in Canvas: aborted it"):
            operator().execute_complete({}, self.event(report_id, "timeout"))
        assert canvas.reports[report_id].status == "aborted"

    @pytest.mark.parametrize(
        "bad",
        [None, {}, {"status": "done", "report_id": 9}, {"status": "success", "report_id": 9}, ["success"]],
        ids=["missing", "empty", "unknown-status", "success-without-report", "not-a-dict"],
    )
    def test_missing_or_unknown_event_is_an_error(self, canvas: CanvasSimulator, bad):
        with pytest.raises(ReportWaitError):
            operator().execute_complete({}, bad, report_id=9)

    @pytest.mark.parametrize(
        ("change", "said"),
        [
            (
                {"report": "sis_export_csv"},
                "about a 'sis_export_csv' report #9, but this task waits for a 'provisioning_csv' report",
            ),
            ({"report": ""}, "about a '' report #9"),
            (
                {"report_json": {"id": 999, "report": REPORT, "status": "complete"}},
                "carries report #999 instead",
            ),
        ],
        ids=["other-type", "no-type", "other-report-inside"],
    )
    def test_an_event_about_another_report_is_never_taken_for_this_one(
        self, canvas: CanvasSimulator, change, said
    ):
        # A success with another report's JSON would be returned as this task's result; a timeout
        # naming another type would cancel (or fail to cancel) the wrong report.
        good = {**self.event(9, "success"), "report_json": {"id": 9, "report": REPORT, "status": "complete"}}
        with pytest.raises(ReportWaitError, match=re.escape(said)):
            operator().execute_complete({}, {**good, **change}, report_id=9)
        assert operator().execute_complete({}, good, report_id=9)["id"] == 9

    def test_event_about_another_report_is_an_error(self, canvas: CanvasSimulator):
        final = {"id": 10, "status": "complete"}
        with pytest.raises(ReportWaitError, match="waits for Canvas report #9"):
            operator().execute_complete({}, self.event(10, "success", report_json=final), report_id=9)


def crashed_try(store: FakeStateStore, **kwargs: Any) -> int:
    """A first try that started its report and handed the wait to a triggerer that then died."""
    context = make_context(store=store)
    with pytest.raises(TaskDeferred):
        operator(wait_for_completion=True, deferrable=True, **kwargs).execute(context)
    return context["ti"].xcoms["report_id"]


class TestNoDuplicates:
    def test_state_store_holds_the_report_before_any_waiting(self, canvas: CanvasSimulator):
        store = FakeStateStore()
        report_id = crashed_try(store)
        assert store.values[STATE_KEY] == {"report_id": report_id, "report": REPORT, "account_id": "self"}

    def test_with_an_empty_store_a_retry_looks_in_the_index_once(self, canvas: CanvasSimulator):
        store = FakeStateStore()
        operator().execute(make_context(store=store, try_number=2))  # nothing stored, nothing found: start
        assert canvas.counters.starts[REPORT] == 1
        assert canvas.counters.requests["index"] == 1

    def test_with_a_store_a_retry_adopts_a_report_whose_id_was_never_saved(self, canvas: CanvasSimulator):
        # The first try's start reached Canvas but its answer was lost, and the index could not be
        # read to find it: the try fails with nothing saved. Its retry must not start a second one.
        canvas.faults.add(Fault(endpoint="start", kind="reset_after_send", times=1))
        canvas.faults.add(Fault(endpoint="index", kind="503", times=None))
        store = FakeStateStore()
        brief = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01)
        with pytest.raises(CanvasRetryExhaustedError, match="list report runs"):
            operator(lost_start_rechecks=(), canvas_retry_policy=brief).execute(make_context(store=store))
        assert store.values == {}
        [first_id] = canvas.reports
        canvas.faults.clear()

        again = operator().execute(make_context(try_number=2, store=store))

        assert again["id"] == first_id
        assert canvas.counters.starts[REPORT] == 1
        assert store.values[STATE_KEY]["report_id"] == first_id

    def test_retry_reconnects_to_a_waiting_report(self, canvas: CanvasSimulator):
        canvas.script_report(REPORT, "stuck_running")
        store = FakeStateStore()
        # No expected-run-time lookup (it reads the index too): only a reconcile could read it.
        first_id = crashed_try(store, expected_run_time=None)
        context = make_context(try_number=2, store=store)
        with pytest.raises(TaskDeferred) as deferred:
            operator(wait_for_completion=True, deferrable=True, expected_run_time=None).execute(context)
        assert deferred.value.trigger.report_id == first_id
        assert canvas.counters.starts[REPORT] == 1
        assert canvas.counters.requests["index"] == 0  # found through the store, not the index
        assert context["ti"].xcoms["report_id"] == first_id  # pushed again for this try

    @pytest.mark.parametrize("with_store", [True, False], ids=["store", "index"])
    def test_a_retry_after_a_timeout_while_queued_reconnects_instead_of_queueing_another(
        self, canvas: CanvasSimulator, with_store: bool
    ):
        # Canvas cannot stop a queued report: the timeout leaves it, and the retry waits for it
        # (through the store on Airflow 3.3, through the report index before it).
        canvas.script_report(REPORT, "stuck_created")
        store = FakeStateStore() if with_store else None
        first = make_context(store=store)
        with pytest.raises(ReportWaitTimeoutError, match="Left it queued in Canvas"):
            operator(wait_for_completion=True, timeout=1, adaptive_polling=False).execute(first)
        first_id = first["ti"].xcoms["report_id"]
        context = make_context(try_number=2, store=store)
        with pytest.raises(TaskDeferred) as deferred:
            operator(wait_for_completion=True, deferrable=True, expected_run_time=None).execute(context)
        assert deferred.value.trigger.report_id == first_id
        assert canvas.counters.starts[REPORT] == 1
        assert canvas.reports[first_id].status == "created"

    def test_retry_returns_a_completed_report(self, canvas: CanvasSimulator):
        store = FakeStateStore()
        first_id = crashed_try(store, expected_run_time=None)  # its lookup would read the index
        wait_until(canvas, first_id, "complete")
        again = operator(wait_for_completion=True).execute(make_context(try_number=2, store=store))
        assert again["id"] == first_id
        assert again["status"] == "complete"
        assert canvas.counters.starts[REPORT] == 1
        assert canvas.counters.requests["index"] == 0

    def test_retry_starts_afresh_after_a_failed_report(self, canvas: CanvasSimulator):
        canvas.script_report(REPORT, "error")
        store = FakeStateStore()
        with pytest.raises(ReportFailedError):
            operator(wait_for_completion=True).execute(make_context(store=store))
        first_id = store.values[STATE_KEY]["report_id"]
        again = operator().execute(make_context(try_number=2, store=store))
        assert again["id"] != first_id
        assert canvas.counters.starts[REPORT] == 2

    def test_retry_starts_afresh_when_the_parameters_changed(
        self, canvas: CanvasSimulator, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
    ):
        canvas.script_report(REPORT, "stuck_running")
        store = FakeStateStore()
        first_id = crashed_try(store)
        wait_until(canvas, first_id, "running")
        with caplog.at_level(logging.INFO):
            again = operator(parameters={"users": True, "terms": True}).execute(
                make_context(try_number=2, store=store)
            )
        assert again["id"] != first_id
        assert canvas.counters.starts[REPORT] == 2
        # The edited task will never wait for the old report: the log says it is left running.
        assert canvas.reports[first_id].status == "running"
        assert _left_running_lines(caplog.text + capsys.readouterr().out) == [
            f"#{first_id}, which an earlier try of this task started with other parameters, is still running "
            "and is left to run; cancel it on the account's reports page if it is no longer needed: "
            f"{canvas.url}/accounts/self/settings#tab-reports"
        ]

    @pytest.mark.parametrize("whose", ["this-task", "another-run"])
    def test_without_a_store_a_retry_names_its_earlier_report_with_other_parameters(
        self,
        canvas: CanvasSimulator,
        caplog: pytest.LogCaptureFixture,
        capsys: pytest.CaptureFixture[str],
        whose: str,
    ):
        canvas.script_report(REPORT, "stuck_running")
        first_context = (
            make_context() if whose == "this-task" else make_context_of_run("scheduled__2026-11-27")
        )
        first = operator().execute(first_context)
        wait_until(canvas, first["id"], "running")
        with caplog.at_level(logging.INFO):
            again = operator(parameters={"users": True, "terms": True}).execute(make_context(try_number=2))
        assert again["id"] != first["id"]
        lines = _left_running_lines(caplog.text + capsys.readouterr().out)
        # Only this task instance's own earlier report is named; a sibling run's is its own business.
        assert len(lines) == (1 if whose == "this-task" else 0)
        assert canvas.reports[first["id"]].status == "running"

    def test_an_unreadable_store_falls_back_to_the_index(self, canvas: CanvasSimulator):
        class Broken(FakeStateStore):
            def get(self, key: str, default: Any = None) -> Any:
                raise RuntimeError("state store unavailable")

        first = operator().execute(make_context())
        again = operator().execute(make_context(try_number=2, store=Broken()))
        assert again["id"] == first["id"]
        assert canvas.counters.starts[REPORT] == 1

    def test_without_a_store_a_retry_adopts_the_earlier_tries_report(self, canvas: CanvasSimulator):
        first = operator(parameters={"users": True, "courses": True}).execute(make_context())
        again = operator(parameters={"courses": True, "users": True}).execute(make_context(try_number=2))
        assert again["id"] == first["id"]
        assert canvas.counters.starts[REPORT] == 1
        assert canvas.counters.requests["index"] == 1

    @pytest.mark.parametrize(
        "case", ["other-parameters", "before-the-run", "failed", "first-try"], ids=lambda case: case
    )
    def test_without_a_store_only_matching_recent_unfailed_reports_are_adopted(
        self, canvas: CanvasSimulator, case
    ):
        if case == "failed":
            canvas.script_report(REPORT, "error")
        first = operator().execute(make_context())
        if case == "failed":
            wait_until(canvas, first["id"], "error")
        run_start = datetime.now(timezone.utc) - timedelta(minutes=5)
        if case == "before-the-run":
            run_start = datetime.now(timezone.utc) + timedelta(minutes=1)
        params = {"users": True, "courses": True} if case == "other-parameters" else {"users": True}
        try_number = 1 if case == "first-try" else 2
        again = operator(parameters=params).execute(make_context(try_number=try_number, run_start=run_start))
        assert again["id"] != first["id"]
        assert canvas.counters.starts[REPORT] == 2
        assert canvas.counters.requests["index"] == (0 if case == "first-try" else 1)

    def test_the_start_names_its_task_instance_and_canvas_echoes_it(self, canvas: CanvasSimulator):
        result = operator().execute(make_context(map_index=3))
        assert result["parameters"]["airflow_task"] == "test_dag/manual__test/start[3]"

    def test_a_retry_never_adopts_the_report_of_another_run_of_the_dag(self, canvas: CanvasSimulator):
        # Catchup: two runs of one DAG start the same report with the same parameters. A retry of
        # the first (no task_state_store) must find its own report, not the newer sibling's.
        ours = operator().execute(make_context())
        sibling = operator().execute(make_context_of_run("scheduled__2026-11-27"))
        assert sibling["id"] > ours["id"]
        again = operator().execute(make_context(try_number=2))
        assert again["id"] == ours["id"]
        assert canvas.counters.starts[REPORT] == 2

    def test_a_retry_with_only_a_siblings_report_starts_its_own(self, canvas: CanvasSimulator):
        sibling = operator().execute(make_context_of_run("scheduled__2026-11-27"))
        again = operator().execute(make_context(try_number=2))
        assert again["id"] != sibling["id"]
        assert again["parameters"]["airflow_task"] == "test_dag/manual__test/start"
        assert canvas.counters.starts[REPORT] == 2

    def test_airflow_task_is_the_operators_parameter(self, canvas: CanvasSimulator):
        # A value of the user's would be overwritten, and no retry would then find its report.
        with pytest.raises(InvalidParametersError, match="'airflow_task' is this operator's"):
            operator(parameters={"users": True, "airflow_task": "mine"}).execute(make_context())
        assert sum(canvas.counters.starts.values()) == 0

    def test_a_report_that_names_no_task_instance_is_still_adopted(self, canvas: CanvasSimulator):
        # Started by hand, or by an older version of this provider, in the retry's window.
        started = CanvasHook().start_report(REPORT, {"users": True})
        again = operator().execute(make_context(try_number=2))
        assert again["id"] == started.id
        assert canvas.counters.starts[REPORT] == 1

    def test_lost_start_answer_adopts_the_report_canvas_created(self, canvas: CanvasSimulator):
        canvas.faults.add(Fault(endpoint="start", kind="reset_after_send", times=1))
        context = make_context()
        result = operator().execute(context)
        assert canvas.counters.starts[REPORT] == 1
        assert canvas.counters.requests["start"] == 1  # never repeated blindly
        assert result["id"] == next(iter(canvas.reports))
        assert context["ti"].xcoms["report_id"] == result["id"]

    def test_lost_start_that_created_nothing_fails_without_starting(self, canvas: CanvasSimulator):
        canvas.faults.add(Fault(endpoint="start", kind="reset", times=1))
        with pytest.raises(AirflowException, match="none was adopted"):
            operator(lost_start_rechecks=(0.01, 0.01)).execute(make_context())
        assert sum(canvas.counters.starts.values()) == 0
        # One look right away, then one after each pause: Canvas may still be handling the start.
        assert canvas.counters.requests["index"] == 3


def _left_running_lines(logged: str) -> list[str]:
    """What the operator said of earlier tries' reports it leaves running, once per report."""
    return re.findall(rf"Canvas report {REPORT} (#\d+, which an earlier try .*?#tab-reports)", logged)


def _logged_pause(logged: str) -> float:
    """The pause the operator said it takes before its first request to Canvas."""
    found = re.search(r"Waiting (\d+\.\d+)s before the first request to Canvas", logged)
    assert found is not None, logged
    return float(found[1])
