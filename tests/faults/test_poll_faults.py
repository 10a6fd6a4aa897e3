"""Fault matrix, stage "poll": waiting for a report while Canvas misbehaves.

Two tables:

- every simulator fault on the status request, for the sensor in poke mode (the worker polls
  with requests) and in deferrable mode (the fault is armed when the task defers, so it hits the
  triggerer's aiohttp polls, not the worker's first check);
- every scripted report fate (stuck in created, stuck in running, error, aborted or deleted by
  someone else) for the four waits: the sensor poking or deferred, and the start operator's
  wait_for_completion in the worker or deferred.

A task that gives up on a report at its deadline must have cancelled it in Canvas (deleted if
queued, aborted if running). A wait that fails because polling keeps failing leaves the report
alone on purpose: the task's retry reconnects to it (no cancel request is made, and the report
still finishes on its own).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import pytest
from canvas_harness import (
    HANG_GUARD,
    REPORT,
    SLOW,
    Sim,
    TaskRun,
    matrix_policy,
    run_task,
    simulator,
    start_report,
    wait_finished,
)

from airflow_provider_canvas_reports.operators.reports import StartAccountReportOperator
from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor
from airflow_provider_canvas_reports.simulator import Fault

POLICY = matrix_policy(max_attempts=2, max_retry_after=2)


def sensor(report_id: int, **kwargs: Any) -> ReportCompleteSensor:
    kwargs.setdefault("poke_interval", 0.1)
    kwargs.setdefault("timeout", 30)
    kwargs.setdefault("canvas_retry_policy", POLICY)
    kwargs.setdefault("max_consecutive_errors", 2)
    return ReportCompleteSensor(task_id="wait", report=REPORT, report_id=report_id, **kwargs)


def matches(run: TaskRun, pattern: str) -> None:
    assert run.error is not None, f"expected a failure, got {run.result!r}"
    assert re.fullmatch(pattern, run.message, re.DOTALL), run.message


# -- faults on the status request ------------------------------------------------------------------

GAVE_UP = (
    r"Gave up waiting for Canvas report provisioning_csv #101 after 2 consecutive failed polls \(each "
    r"one already retried by the client\)\. Last error: "
)
# The status request, as errors name it.
READING = r"read the report status on account self \(report provisioning_csv #101\)"
# How a wait that gave up ends: the report was left for a retry, and here is where to see it.
LEFT = (
    r" Canvas report provisioning_csv #101 was not cancelled and may still be running: "
    r"http://127\.0\.0\.1:\d+/accounts/self/settings#tab-reports\. Retrying or clearing this task waits "
    r"for it again\."
)
REACHABLE = (
    r"Check that the Canvas host \(http://127\.0\.0\.1:\d+\) is reachable from the worker; the task can "
    r"be retried\."
)
NOT_JSON = r"Check the connection host is the Canvas URL \(not an SSO or proxy page\)\."
# A reset before the answer and a truncated body end the same way.
RESET = (
    GAVE_UP + r"CanvasRetryExhaustedError: Could not " + READING + r": the connection to Canvas was reset "
    r"after 2 attempts\. " + REACHABLE + LEFT
)
# A redirect loop and a redirect to a login page are both a wrong connection host.
REDIRECTED = (
    GAVE_UP + r"CanvasResponseError: Canvas redirected the request to " + READING + r" \(HTTP 302\) to "
    r"http://127\.0\.0\.1:\d+ instead of answering: the connection host is not the Canvas API host \(a "
    r"vanity domain, http instead of https, or an SSO page\)\. Set the connection host to the Canvas URL "
    r"itself\." + LEFT
)
# A failed report: the sensor cannot start another one.
NEW_ONE = r" Waiting again cannot change that: clear the task that started it to start a new one\."


@dataclass(frozen=True)
class StatusCase:
    kind: str
    times: int | None = 1
    delay: float = SLOW
    message: str | None = None  # a regex of the whole error; None: the wait succeeds
    throttle: str = "429"
    # Persistent faults cost whole retry budgets: the worker's poke path runs them all, the
    # triggerer's aiohttp path a representative few (it shares the decisions with the worker).
    modes: tuple[str, ...] = ("poke", "deferrable")


STATUS_CASES: dict[str, StatusCase] = {
    **{f"{code}-once": StatusCase(code) for code in ("500", "502", "503", "504")},
    "500-always": StatusCase(
        "500",
        None,
        message=GAVE_UP + r"CanvasRetryExhaustedError: Canvas answered HTTP 500 to " + READING + r" beyond "
        r"the retry budget: An error occurred\.\. Canvas may be deploying or overloaded; the task can be "
        r"retried later\." + LEFT,
        modes=("poke",),
    ),
    "503-always": StatusCase(
        "503",
        None,
        message=GAVE_UP + r"CanvasRetryExhaustedError: Canvas answered HTTP 503 to " + READING + r" beyond "
        r"the retry budget: 503 Service Temporarily Unavailable\. Canvas "
        r"may be deploying or overloaded; the task can be retried later\." + LEFT,
    ),
    "429-retry-after-burst": StatusCase("throttle", 2),
    "403-rate-limit-burst": StatusCase("throttle", 2, throttle="403"),
    "429-without-retry-after-burst": StatusCase("throttle_bare", 2),
    "429-always": StatusCase(
        "throttle",
        None,
        message=GAVE_UP
        + r"CanvasRetryExhaustedError: Canvas kept throttling the request to "
        + READING
        + r" \(HTTP 429\) beyond the retry budget\. Lower the number of concurrent tasks sharing this token, "
        r"or raise the retry budget\." + LEFT,
        modes=("poke",),
    ),
    "reset-before-handling-once": StatusCase("reset"),
    "reset-before-handling-always": StatusCase(
        "reset",
        None,
        message=RESET,
    ),
    "reset-after-handling-once": StatusCase("reset_after_send"),
    "slow-past-read-timeout-once": StatusCase("slow"),
    "slow-past-read-timeout-always": StatusCase(
        "slow",
        None,
        message=GAVE_UP + r"CanvasRetryExhaustedError: Could not " + READING + r": Canvas did not answer in "
        r"time after 2 attempts\. " + REACHABLE + LEFT,
        modes=("poke",),
    ),
    "stalled-body-once": StatusCase("stall"),
    "truncated-body-once": StatusCase("truncate"),
    "truncated-body-always": StatusCase(
        "truncate",
        None,
        message=RESET,
        modes=("poke",),
    ),
    "wrong-content-length-once": StatusCase("wrong_length"),
    "wrong-content-length-always": StatusCase(
        "wrong_length",
        None,
        message=GAVE_UP + r"CanvasResponseError: Canvas answered HTTP 200 with 'application/json; "
        r"charset=utf-8' instead of JSON to " + READING + r": \{\"id\":101,.*\.\.\.\. " + NOT_JSON + LEFT,
    ),
    "html-login-page-once": StatusCase("html"),
    "html-login-page-always": StatusCase(
        "html",
        None,
        message=GAVE_UP + r"CanvasResponseError: Canvas answered HTTP 200 with an HTML page instead of JSON "
        r"to " + READING + r": Log In to Canvas Email Password Log In\. " + NOT_JSON + LEFT,
    ),
    "redirect-loop-always": StatusCase(
        "redirect_loop",
        None,
        message=REDIRECTED,
        modes=("poke",),
    ),
    "redirect-to-login-always": StatusCase(
        "auth_redirect",
        None,
        message=REDIRECTED,
        modes=("poke",),
    ),
    "store-403-always": StatusCase(
        "expired",
        None,
        message=GAVE_UP + r"CanvasResponseError: Canvas answered HTTP 403 to " + READING + r": AccessDenied "
        r"Request has expired SIMULATOR\." + LEFT,
        modes=("poke",),
    ),
    # Poking, the 404 is the first answer: the id may be wrong. Deferred, the worker's check saw
    # the report running just before, so the triggerer's 404 means it was deleted meanwhile.
    "404-once": StatusCase(
        "404",
        message=r"Canvas has no report provisioning_csv #101 \(HTTP 404\): it was deleted, or the report id "
        r"or report type is wrong\." + NEW_ONE,
        modes=("poke",),
    ),
    "404-once-after-the-worker-saw-it": StatusCase(
        "404",
        message=r"Canvas report provisioning_csv #101 no longer exists in Canvas \(HTTP 404 while waiting; "
        r"last status '(created|running)'\): it was deleted, so it will never complete\." + NEW_ONE,
        modes=("deferrable",),
    ),
    "401-once": StatusCase(
        "401",
        message=r"Could not read the status of Canvas report provisioning_csv #101: InvalidTokenError: Canvas "
        r"refused to " + READING + r": the API token is missing, invalid or expired \(Canvas said: Invalid "
        r"access token\.\)\. Put a current token in the connection's password field\." + LEFT,
    ),
    "while1-prefix-always": StatusCase("while1", None),
}


@pytest.mark.parametrize(
    ("case_id", "mode"), [(case_id, mode) for case_id, case in STATUS_CASES.items() for mode in case.modes]
)
def test_status_fault(case_id: str, mode: str) -> None:
    case = STATUS_CASES[case_id]
    deferrable = mode == "deferrable"
    # Deferrable: the worker's check must find the report still running, however slowly the task
    # gets there on a loaded machine (0.4 s was once too short: it saw the report complete).
    with simulator(run_seconds=2.0 if deferrable else 0.4, throttle=case.throttle) as sim:
        report_id = start_report()
        fault = Fault(endpoint="status", kind=case.kind, times=case.times, delay=case.delay)

        def arm() -> None:
            sim.sim.add_fault(fault)

        if not deferrable:
            arm()
        run = run_task(sensor(report_id, deferrable=deferrable), on_defer=arm if deferrable else None)

        assert run.elapsed < HANG_GUARD
        if deferrable:
            # The worker's first check saw the report queued or running; the fault hit the triggerer.
            assert run.deferred
            assert fault.used >= 1
        if case.message is None:
            assert run.error is None, run.message
            assert run.result["status"] == "complete"
            assert run.result["id"] == report_id
        else:
            matches(run, case.message)
        # Never a second report; a wait that gave up on polling leaves the report for the retry,
        # which still finishes in Canvas.
        assert sim.starts == 1
        assert sim.counters.requests["abort"] == sim.counters.requests["delete"] == 0
        sim.sim.faults.clear()
        assert wait_finished(sim, report_id) == "complete"


# -- scripted report fates -------------------------------------------------------------------------

WAITS = ("sensor-poke", "sensor-deferrable", "start-wait-in-worker", "start-wait-deferrable")


def waiting_task(wait: str, sim: Sim) -> Any:
    if wait.startswith("sensor"):
        return sensor(start_report(), deferrable=wait.endswith("deferrable"), timeout=1, poke_interval=0.1)
    return StartAccountReportOperator(
        task_id="start",
        report=REPORT,
        parameters={"users": True},
        wait_for_completion=True,
        deferrable=wait.endswith("deferrable"),
        poll_interval=0.1,
        timeout=1,
        canvas_retry_policy=POLICY,
    )


def timeout_message(wait: str, status: str, verb: str) -> str:
    """The timeout's message; `verb` says what the cancel did, or LEFT_QUEUED for a queued report."""
    if wait == "sensor-poke":
        seen = rf"\(the sensor's timeout\); last status '{status}'"
    else:
        seen = rf"\(the timeout\); last status '{status}', progress \d+%"
    queued = QUEUED if status == "created" else ""
    outcome = verb if verb == LEFT_QUEUED else rf"Cancelled it in Canvas: {verb}"
    return rf"Canvas report provisioning_csv #101 did not finish within 1s {seen}\.{queued} {outcome}\."


# Canvas cannot stop a report before it starts: a timeout leaves a queued one for a retry to reconnect to.
LEFT_QUEUED = (
    r"Left it queued in Canvas: Canvas cannot stop a report that has not started \(deleting it only "
    r"hides it until its turn comes, and then it runs anyway\); a retry of this task reconnects to it "
    r"instead of queueing another"
)


# A timeout while queued says why a report may never start.
QUEUED = (
    r" It never started: Canvas runs one report at a time per root account, so others were ahead of it, "
    r"or its job workers are stopped\."
)


FAILED_WITH = r"Canvas report provisioning_csv #101 ended with status '{status}': {reason}"
FATES: dict[str, tuple[str, str, str]] = {
    # fate: (error class for a sensor / for the start operator, message regex, final status in Canvas)
    "stuck_created": (
        "AirflowSensorTimeout/ReportWaitTimeoutError",
        "created|" + LEFT_QUEUED,
        "created",
    ),
    "stuck_running": (
        "AirflowSensorTimeout/ReportWaitTimeoutError",
        "running|aborted it \\(it was running\\)",
        "aborted",
    ),
    "error": (
        "AirflowFailException/ReportFailedError",
        FAILED_WITH.format(
            status="error", reason=r"Failed, the report failed to generate a file\. Please try again\."
        ),
        "error",
    ),
    "aborted_by_other": (
        "AirflowFailException/ReportFailedError",
        FAILED_WITH.format(status="aborted", reason=r"Report has been aborted\."),  # the stop is ours
        "aborted",
    ),
    "deleted_by_other": (
        "AirflowFailException/ReportFailedError",
        r"Canvas report provisioning_csv #101 no longer exists in Canvas \(HTTP 404 while waiting; last "
        r"status '(created|running)'\): it was deleted, so it will never complete\.",
        "deleted",
    ),
}


@pytest.mark.parametrize("wait", WAITS)
@pytest.mark.parametrize("fate", list(FATES))
def test_report_fate(fate: str, wait: str) -> None:
    errors, pattern, final = FATES[fate]
    with simulator(run_seconds=0.4) as sim:
        sim.sim.script_report(REPORT, fate)
        run = run_task(waiting_task(wait, sim))
        assert run.elapsed < HANG_GUARD
        sensor_error, start_error = errors.split("/")
        assert type(run.error).__name__ == (sensor_error if wait.startswith("sensor") else start_error)
        if fate.startswith("stuck"):
            status, verb = pattern.split("|")
            pattern = timeout_message(wait, status, verb)
            # Timed out: cancelled in Canvas, exactly once, the right way for its state; a queued
            # report cannot be stopped, so it is left for a retry to reconnect to.
            action = None if fate == "stuck_created" else "abort"
            for call in ("abort", "delete"):
                assert sim.counters.requests[call] == (call == action)
        else:
            # Ended by Canvas or someone else: nothing to cancel; the message says what starts another.
            assert sim.counters.requests["abort"] == sim.counters.requests["delete"] == 0
            pattern += (
                NEW_ONE
                if wait.startswith("sensor")
                else r" Retrying or clearing this task starts a new report\."
            )
        matches(run, pattern)
        assert sim.status(101) == final
        assert sim.running_reports() == ([101] if fate == "stuck_created" else [])
        assert sim.starts == 1


# -- faults while cancelling at the deadline -------------------------------------------------------


def test_cancel_retried_through_a_5xx_and_the_report_is_aborted(sim: Sim) -> None:
    sim.sim.script_report(REPORT, "stuck_running")
    sim.sim.add_fault(Fault(endpoint="abort", kind="503"))
    run = run_task(sensor(start_report(), timeout=1))
    assert run.elapsed < HANG_GUARD
    matches(run, timeout_message("sensor-poke", "running", r"aborted it \(it was running\)"))
    assert sim.counters.requests["abort"] == 2  # the 503, then the abort that took
    assert sim.status(101) == "aborted"


@pytest.mark.parametrize("mode", ["poke", "deferrable"])
def test_cancel_impossible_says_so_and_links_the_reports_page(mode: str) -> None:
    """Canvas refuses every abort: the task still fails at its deadline and says where to cancel by hand."""
    with simulator(run_seconds=0.4) as sim:
        sim.sim.script_report(REPORT, "stuck_running")
        sim.sim.add_fault(Fault(endpoint="abort", kind="503", times=None))
        run = run_task(sensor(start_report(), timeout=1, deferrable=mode == "deferrable"))
        assert run.elapsed < HANG_GUARD
        last = (
            r"\(the sensor's timeout\); last status 'running'"
            if mode == "poke"
            else r"\(the timeout\); last status 'running', progress \d+%"
        )
        matches(
            run,
            rf"Canvas report provisioning_csv #101 did not finish within 1s {last}\. Could not cancel it in "
            r"Canvas \(CanvasRetryExhaustedError: Canvas answered HTTP 503 to abort a report on account self "
            r"\(report provisioning_csv #101\) beyond the retry budget: 503 Service Temporarily Unavailable\. "
            r"Canvas may be deploying or overloaded; the task can be retried later\.\); cancel it "
            rf"by hand on the account's reports page: {re.escape(sim.url)}/accounts/self/settings#tab-reports",
        )
        assert sim.counters.requests["abort"] == POLICY.max_attempts  # the client's budget, then the message
        assert sim.status(101) == "running"  # nothing more the task could do


def test_report_leaving_running_between_status_and_abort_is_deleted_instead(sim: Sim) -> None:
    """Canvas answers 404 to an abort once the report is no longer running: the cancel deletes it."""
    sim.sim.script_report(REPORT, "stuck_running")
    sim.sim.add_fault(Fault(endpoint="abort", kind="404"))
    run = run_task(sensor(start_report(), timeout=1))
    matches(
        run,
        timeout_message(
            "sensor-poke", "running", r"deleted it \(it had started, and Canvas would not abort it\)"
        ),
    )
    assert sim.counters.requests["delete"] == 1
    assert sim.status(101) == "deleted"


def test_deadline_holds_while_every_poll_hangs() -> None:
    """Polls that never answer in time cannot push the deferred wait past its deadline by much."""
    with simulator(run_seconds=0.4) as sim:
        sim.sim.script_report(REPORT, "stuck_running")
        report_id = start_report()
        began = time.monotonic()
        run = run_task(
            sensor(report_id, deferrable=True, timeout=2, max_consecutive_errors=50),
            on_defer=lambda: sim.sim.add_fault(Fault(endpoint="status", kind="slow", times=None, delay=SLOW)),
        )
        # The deadline, then one bounded cancel: the status read hangs too, so it aborts blind.
        assert time.monotonic() - began < 2 + 2 * POLICY.max_attempts * POLICY.read_timeout + 5
        matches(
            run,
            # No poll of the trigger's answered: the status is the one the sensor saw before deferring.
            r"Canvas report provisioning_csv #101 did not finish within 2s \(the timeout\); last status "
            r"'running'\. Cancelled it in Canvas: aborted it \(it was running\)\.",
        )
        # Stopped although its status could not be read: not left running.
        assert sim.status(report_id) == "aborted"
