"""Fault matrix, stage "start": StartAccountReportOperator.execute() against every simulator fault.

Each case states what the task must do: succeed (with exactly one report in Canvas), or fail
with a clear message and no report started; always within the hang guard. Faults hit the
start POST itself, the available-reports list read to validate the parameters, and the report
index read to reconcile a start whose answer was lost.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from canvas_harness import (
    HANG_GUARD,
    REPORT,
    SLOW,
    Sim,
    TaskRun,
    make_context,
    matrix_policy,
    run_task,
    simulator,
    wait_finished,
)

from airflow_provider_canvas_reports.operators.reports import StartAccountReportOperator
from airflow_provider_canvas_reports.simulator import Fault

POLICY = matrix_policy()  # three attempts


def start_operator(**kwargs: Any) -> StartAccountReportOperator:
    kwargs.setdefault("report", REPORT)
    kwargs.setdefault("parameters", {"users": True})
    kwargs.setdefault("canvas_retry_policy", POLICY)
    return StartAccountReportOperator(task_id="start", **kwargs)


LOST = (
    "Canvas may have received the request to start a report on account self, but {why}. It was not "
    "repeated, so that no second report starts; look in the report index before starting again. The "
    "report index shows no matching provisioning_csv report created since the request, so none was "
    "adopted. Retrying or clearing this task looks in the index again before it starts one (the "
    "account's reports: "
)
# The simulator's port varies: the messages that name the Canvas URL are matched as regexes.
ANY_URL = r"http://127\.0\.0\.1:\d+"


def lost(why: str) -> str:
    return re.escape(LOST.format(why=why)) + ANY_URL + re.escape("/accounts/self/settings#tab-reports).")


def unreachable(action: str, why: str) -> str:
    return (
        re.escape(f"Could not {action} on account self: {why}. Check that the Canvas host (")
        + ANY_URL
        + re.escape(") is reachable from the worker; the task can be retried.")
    )


HTML = (
    "Canvas answered HTTP 200 with an HTML page instead of JSON to {action} on account self: Log In to "
    "Canvas Email Password Log In. Check the connection host is the Canvas URL (not an SSO or proxy page)."
)


@dataclass(frozen=True)
class Case:
    endpoint: str
    kind: str
    times: int | None = 1
    delay: float = SLOW
    # "ok": the task returns the started report; "adopt": it returns the report Canvas created
    # although the answer was lost; "fail": it raises `message` (exact text, or a regex if `regex`).
    expect: str = "ok"
    message: str = ""
    regex: bool = False
    starts: int = 1  # reports Canvas holds once the dust settles
    config: dict[str, Any] = field(default_factory=dict)


CASES: dict[str, Case] = {
    # -- the start POST ----------------------------------------------------------------------
    **{
        f"start-{code}": Case(
            "start", code, expect="fail", message=lost(f"Canvas answered HTTP {code}"), regex=True, starts=0
        )
        for code in ("500", "502", "503", "504")
    },
    "start-429-retry-after-burst": Case("start", "throttle", times=2, config={"throttle": "429"}),
    "start-403-rate-limit-burst": Case("start", "throttle", times=2, config={"throttle": "403"}),
    "start-429-without-retry-after-burst": Case("start", "throttle_bare", times=2),
    "start-reset-before-handling": Case(
        "start",
        "reset",
        expect="fail",
        message=lost("the connection to Canvas was reset"),
        regex=True,
        starts=0,
    ),
    "start-reset-after-handling": Case("start", "reset_after_send", expect="adopt"),
    "start-slow-past-read-timeout": Case(
        "start", "slow", expect="fail", message=lost("Canvas did not answer in time"), regex=True, starts=1
    ),
    "start-slow-within-read-timeout": Case("start", "slow", delay=0.3),
    "start-stalled-body": Case("start", "stall", expect="adopt"),
    "start-truncated-body": Case("start", "truncate", expect="adopt"),
    "start-html-login-page": Case(
        "start", "html", expect="fail", message=HTML.format(action="start a report"), starts=0
    ),
    "start-redirect-loop": Case(
        "start",
        "redirect_loop",
        expect="fail",
        message=r"Canvas redirected the request to start a report on account self \(HTTP 302\) to "
        r"http://127\.0\.0\.1:\d+ instead of answering: the connection host is not the Canvas API host .*\.",
        regex=True,
        starts=0,
    ),
    "start-redirect-to-login": Case(
        "start",
        "auth_redirect",
        expect="fail",
        message=r"Canvas redirected the request to start a report on account self \(HTTP 302\) to "
        r"http://127\.0\.0\.1:\d+ instead of answering: the connection host is not the Canvas API host .*\.",
        regex=True,
        starts=0,
    ),
    "start-store-403": Case(
        "start",
        "expired",
        expect="fail",
        message="Canvas answered HTTP 403 to start a report on account self: AccessDenied Request has expired "
        "SIMULATOR.",
        starts=0,
    ),
    "start-404": Case(
        "start",
        "404",
        expect="fail",
        message="Canvas does not know report 'provisioning_csv' on account self. List them with "
        "CanvasHook.list_available_reports().",
        starts=0,
    ),
    "start-401": Case(
        "start",
        "401",
        expect="fail",
        message="Canvas refused to start a report on account self: the API token is missing, invalid or "
        "expired (Canvas said: Invalid access token.). Put a current token in the connection's password "
        "field.",
        starts=0,
    ),
    "start-while1-prefix": Case("start", "while1"),
    # -- the available-reports list (parameter validation, before the start) -----------------
    "available-503-once": Case("available", "503"),
    "available-503-always": Case(
        "available",
        "503",
        times=None,
        expect="fail",
        message="Canvas answered HTTP 503 to list the available reports on account self beyond the retry "
        "budget: 503 Service Temporarily Unavailable. Canvas may be "
        "deploying or overloaded; the task can be retried later.",
        starts=0,
    ),
    "available-reset-always": Case(
        "available",
        "reset",
        times=None,
        expect="fail",
        message=unreachable(
            "list the available reports", "the connection to Canvas was reset after 3 attempts"
        ),
        regex=True,
        starts=0,
    ),
    "available-slow-always": Case(
        "available",
        "slow",
        times=None,
        expect="fail",
        message=unreachable("list the available reports", "Canvas did not answer in time after 3 attempts"),
        regex=True,
        starts=0,
    ),
    "available-429-burst": Case("available", "throttle", times=2),
    "available-html-always": Case(
        "available",
        "html",
        times=None,
        expect="fail",
        message=HTML.format(action="list the available reports"),
        starts=0,
    ),
    "available-truncated-once": Case("available", "truncate"),
    "available-wrong-length-once": Case(
        "available",
        "wrong_length",
        expect="fail",
        message=r"Canvas answered HTTP 200 with 'application/json; charset=utf-8' instead of JSON to list "
        r"the available reports on account self: \[\{.*\.\.\.\. Check the connection host is the Canvas "
        r"URL \(not an SSO or proxy page\)\.",
        regex=True,
        starts=0,
    ),
}


def check_message(run: TaskRun, case: Case) -> None:
    assert run.error is not None, f"expected a failure, got {run.result!r}"
    if case.regex:
        assert re.fullmatch(case.message, run.message, re.DOTALL), run.message
    else:
        assert run.message == case.message


def settle(case: Case) -> None:
    """Let a request the client gave up on end on the server before counting reports."""
    if case.kind in ("slow", "stall") and case.delay > POLICY.read_timeout:
        time.sleep(case.delay)


def posts_expected(case: Case) -> int:
    """Start POSTs Canvas should see: a throttled one is repeated, nothing else ever is."""
    if case.endpoint != "start":
        return 0 if case.expect == "fail" else 1
    return (case.times or 0) + 1 if case.kind in ("throttle", "throttle_bare") else 1


@pytest.mark.parametrize("case_id", list(CASES))
def test_start_fault(case_id: str) -> None:
    case = CASES[case_id]
    with simulator(**case.config) as sim:
        sim.sim.add_fault(Fault(endpoint=case.endpoint, kind=case.kind, times=case.times, delay=case.delay))
        run = run_task(start_operator())
        assert run.elapsed < HANG_GUARD
        if case.expect == "fail":
            check_message(run, case)
        else:
            assert run.error is None, run.message
            assert run.result["status"] == "created" or run.result["status"] in ("running", "complete")
            assert list(sim.sim.reports) == [run.result["id"]]
        settle(case)
        if case.kind == "slow" and case.endpoint == "start" and case.expect == "fail":
            # Whether Canvas still created it depends on whether its server read the body before the
            # client hung up; either way there is at most one, and the retry below never adds another.
            assert sim.starts <= 1
        else:
            assert sim.starts == case.starts
        assert sim.counters.requests["start"] == posts_expected(case)
        if case.expect == "adopt":
            # The answer was lost but the report exists: adopted, never started twice.
            assert sim.counters.requests["index"] == 1
        if (case.expect == "fail" and case.starts == 0) or case.kind == "slow":
            # A failed try leaves nothing in Canvas, and its retry starts exactly one report.
            sim.sim.faults.clear()
            retry = run_task(start_operator(), make_context(try_number=2))
            assert retry.error is None, retry.message
            assert sim.starts == 1


def test_garbled_start_answer_is_reconciled_like_a_lost_one(sim: Sim) -> None:
    """A 2xx start answer whose JSON is cut: Canvas created the report, so it is adopted, not failed."""
    sim.sim.add_fault(Fault(endpoint="start", kind="wrong_length"))
    run = run_task(start_operator())
    assert run.error is None, run.message
    assert run.result["id"] == next(iter(sim.sim.reports))
    assert sim.starts == 1
    assert sim.counters.requests["start"] == 1
    assert sim.counters.requests["index"] == 1


def test_index_failing_while_reconciling_a_lost_start(sim: Sim) -> None:
    """The start's answer is lost and the index cannot be read: fail clearly, start nothing more."""
    sim.sim.add_fault(Fault(endpoint="start", kind="reset_after_send"))
    sim.sim.add_fault(Fault(endpoint="index", kind="503", times=None))
    run = run_task(start_operator())
    assert run.elapsed < HANG_GUARD
    assert run.message == (
        "Canvas answered HTTP 503 to list report runs on account self beyond the retry budget: 503 Service "
        "Temporarily Unavailable. Canvas may be deploying or overloaded; "
        "the task can be retried later."
    )
    assert sim.starts == 1
    assert sim.counters.requests["start"] == 1
    sim.sim.faults.clear()
    retry = run_task(start_operator(), make_context(try_number=2))
    assert retry.error is None
    assert retry.result["id"] == 101
    assert sim.starts == 1


def test_start_then_wait_rides_out_faults_on_every_request(sim: Sim) -> None:
    """One fault on each request kind of a start-and-wait; the task still ends with one complete report."""
    for endpoint, kind in (
        ("available", "503"),
        ("start", "throttle"),
        ("status", "reset"),
        ("status", "html"),
    ):
        sim.sim.add_fault(Fault(endpoint=endpoint, kind=kind))
    run = run_task(start_operator(wait_for_completion=True, deferrable=False, poll_interval=0.1))
    assert run.error is None, run.message
    assert run.result["status"] == "complete"
    assert sim.starts == 1
    assert wait_finished(sim, run.result["id"]) == "complete"
