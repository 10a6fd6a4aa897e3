"""What the start operator and the sensor share: waiting in the worker, ending a wait, cancelling.

Both waits (the trigger's and the worker's) end in the same event dict, so one function
(`conclude`) turns it into the task's result or error, whichever side did the waiting.

Every DAG parse imports this module: what only a running task needs (the hook, the trigger and
with it ``airflow.triggers``, the event helpers, Canvas's errors) is imported where it is used.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Final, Literal

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_canvas_reports.canvas.polling import (
    ERROR,
    FAILURE,
    SUCCESS,
    TIMEOUT,
    Outcome,
    PollAgain,
    PollLog,
    PollPolicy,
    Waiter,
    describe_duration,
)
from airflow_provider_canvas_reports.operators._arguments import duration, is_number

if TYPE_CHECKING:
    from airflow_provider_canvas_reports.canvas.report import Report
    from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
    from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
    from airflow_provider_canvas_reports.triggers.events import ReportEvent
    from airflow_provider_canvas_reports.triggers.reports import ReportStatusTrigger

# CanvasHook.default_conn_name, without loading the hook (and canvas/'s client code) at parse.
DEFAULT_CONN_ID = "canvas_default"

# XCom key pushed right after the start, before any waiting (beside the link's URL, XCOM_KEY).
XCOM_REPORT_ID = "report_id"


class ReportWaitTimeoutError(AirflowException):
    """The report did not finish before the timeout; it was cancelled in Canvas (if possible)."""


class ReportWaitError(RuntimeError):
    """Waiting failed: polls kept failing, or the wait resumed with an invalid event.

    Not an AirflowException on purpose: a deferrable sensor resumed from its trigger turns any
    AirflowException into a skip under ``soft_fail`` (a poking one does not), and this is not a
    verdict on the report but a failure to learn it, which must fail the task in both modes.
    """


def report_id_argument(value: Any) -> int:
    """The `report_id` argument as a Canvas report id. A bad one fails the task without a retry:
    it is usually a template that rendered to nothing ("None", "") because an XCom was missing."""
    from airflow_provider_canvas_reports.canvas import endpoints
    from airflow_provider_canvas_reports.canvas.errors import CanvasConfigError

    try:
        return int(endpoints.report_id_segment(value))
    except CanvasConfigError as exc:
        raise AirflowFailException(str(exc)) from None


# expected_run_time="auto": take it from the previous complete run in the report index.
AUTO: Final = "auto"
ExpectedRunTime = timedelta | float | Literal["auto"] | None


def expected_run_time_setting(value: ExpectedRunTime) -> float | Literal["auto"] | None:
    """The `expected_run_time` argument: "auto", None (no expectation) or positive seconds."""
    if value is None:
        return None
    if value == AUTO:
        return AUTO
    if isinstance(value, str) and not is_number(value):
        raise ValueError(f'expected_run_time must be "auto", None or a positive duration, not {value!r}')
    return duration(value, name="expected_run_time")


@dataclass(frozen=True)
class WaitSettings:
    """How a task waits: the poll policy, the deadline length and the error bound."""

    policy: PollPolicy
    timeout: float
    max_consecutive_errors: int
    retry_policy: RetryPolicy | None = None
    expected_run_time: float | Literal["auto"] | None = AUTO

    def expected(
        self,
        hook: CanvasHook,
        *,
        report: str,
        report_id: int,
        account: str,
        log: logging.Logger | Any,
        waited_for: Report | None = None,
        last_run: Report | None = None,
    ) -> float | None:
        """The expected run time for this wait: as given, or ("auto") the previous run's.

        ``last_run``, from the available-reports list the start already read, serves without a
        request when the index's rule takes it as the previous run of ``waited_for`` (the
        Report with id `report_id`; see `canvas.polling.listed_previous_run`). Otherwise the
        lookup is one request (the first page of the report index). It is an aid: when it fails
        or finds nothing, the wait goes on without an expectation, saying why.
        """
        if self.expected_run_time is None or isinstance(self.expected_run_time, float):
            return self.expected_run_time
        if not self.policy.adaptive:
            return None  # fixed intervals have no use for it
        found, source = None, "the last run in the available-reports list; no index lookup"
        if waited_for is not None and waited_for.id == report_id:
            from airflow_provider_canvas_reports.canvas.polling import listed_previous_run

            found = listed_previous_run(waited_for, last_run)
        if found is None:
            source = "found in the report index"
            try:
                found = hook.previous_run(report, report_id, account)
            except Exception as exc:
                log.warning(
                    "Could not look up the previous run of Canvas report %s in the report index (%s: %s); "
                    "polling without an expected run time.",
                    report,
                    type(exc).__name__,
                    str(exc)[:300],
                )
                return None
            if found is None:
                log.info(
                    "No complete run of Canvas report %s with these parameters on the first page of the "
                    "report index; polling without an expected run time.",
                    report,
                )
                return None
        log.info(
            "Expecting Canvas report %s #%s to run about %s, as run #%s did (%s); adaptive polling plans on it.",
            report,
            report_id,
            describe_duration(found.run_time),
            found.report_id,
            source,
        )
        return found.run_time

    def trigger(
        self,
        *,
        conn_id: str,
        report: str,
        report_id: int,
        account_id: str,
        started_at: float,
        expected_run_time: float | None = None,
        first_poll_at: float | None = None,
        last_status: str | None = None,
    ) -> ReportStatusTrigger:
        from airflow_provider_canvas_reports.triggers.events import retry_policy_kwargs
        from airflow_provider_canvas_reports.triggers.reports import ReportStatusTrigger

        return ReportStatusTrigger(
            canvas_conn_id=conn_id,
            report=report,
            report_id=report_id,
            account_id=account_id,
            poll_interval=self.policy.poll_interval,
            # Absolute, so a triggerer restart or a move keeps the same deadline.
            deadline=started_at + self.timeout,
            adaptive_polling=self.policy.adaptive,
            max_poll_interval=self.policy.max_poll_interval,
            max_consecutive_errors=self.max_consecutive_errors,
            wait_started_at=started_at,
            retry_policy=retry_policy_kwargs(self.retry_policy),
            expected_run_time=expected_run_time,
            first_poll_at=first_poll_at,
            last_status=last_status,
        )

    def waiter(
        self,
        *,
        report: str,
        report_id: int,
        started_at: float,
        expected_run_time: float | None = None,
        deadline: bool = True,
    ) -> Waiter:
        """The wait's rules; `deadline=False` where Airflow enforces the timeout (sensor pokes)."""
        return Waiter(
            self.policy,
            report_type=report,
            report_id=report_id,
            started_at=started_at,
            deadline=started_at + self.timeout if deadline else None,
            max_consecutive_errors=self.max_consecutive_errors,
            expected_run_time=expected_run_time,
        )


def poll_once(hook: CanvasHook, waiter: Waiter, account: str, clock: Callable[[], float]) -> Any:
    """One status request, as the waiter sees it: an Outcome or a PollAgain."""
    answer: Report | Exception
    try:
        answer = hook.get_report(waiter.report_type, waiter.report_id, account)
    except Exception as exc:
        answer = exc
    return waiter.answered(answer, clock())


def next_poll_at(step: Outcome | PollAgain, now: float) -> float | None:
    """When the poll after `step` is due (epoch seconds); None when the step ended the wait."""
    return now + step.seconds if isinstance(step, PollAgain) else None


def wait_in_worker(
    hook: CanvasHook,
    waiter: Waiter,
    account: str,
    log: logging.Logger | Any,
    *,
    first: Report | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """The trigger's loop, in the worker (deferrable=False): same policy, same event, same logs.

    `clock` gives the waiter's times (epoch seconds) and the log's: a change of the wall clock can
    only bring a periodic INFO line early or late.
    """
    from airflow_provider_canvas_reports.triggers.events import event_payload

    quiet = PollLog()
    step: Any = waiter.seen(first, clock()) if first is not None else None
    while True:
        if step is None:
            step = waiter.before_poll(clock()) or poll_once(hook, waiter, account, clock)
        if not isinstance(step, PollAgain):
            return event_payload(step, waiter, account_id=account, now=clock())
        if step.warning:
            log.warning("%s", step.warning)
        log.log(quiet.level(waiter.state, clock()), "%s; next poll in %.1fs", step.line, step.seconds)
        sleep(step.seconds)
        step = None


def cancel_on_kill(
    hook: CanvasHook, report: str, report_id: int, account: str, ti: Any, log: logging.Logger | Any
) -> None:
    """A kill while the worker waits (``on_kill``): stop the report in Canvas if it is given up.

    Airflow calls ``on_kill`` when the task's execution_timeout fires, and on SIGTERM, which comes
    as well when a user marks the task success or clears it, and when the worker shuts down. The
    timeout and a task marked failed give the report up; after a success the download lands it,
    and a cleared or interrupted task's next try reconnects to it, so those leave it to finish:
    the same rule as the trigger's (`task_state.kept_because`).
    """
    from airflow_provider_canvas_reports.task_state import (
        is_execution_timeout,
        kept_because,
        task_state,
        unknown_state_note,
    )

    # Airflow calls on_kill from the except clause that caught its timeout: that is the one at hand.
    if not is_execution_timeout(sys.exc_info()[1]):
        try:
            state = task_state(ti)
        except Exception as exc:
            where = f"on the account's reports page: {hook.reports_page_url(account)}"
            log.warning(
                "Leaving Canvas report %s #%s running: %s", report, report_id, unknown_state_note(exc, where)
            )
            return
        if (why := kept_because(state)) is not None:
            log.info("Not cancelling Canvas report %s #%s: %s.", report, report_id, why)
            return
    describe_cancel(hook, report, report_id, account, log)


def describe_cancel(
    hook: CanvasHook, report: str, report_id: int, account: str, log: logging.Logger | Any
) -> tuple[str, Report | None]:
    """Cancel a report we stop waiting for; say what happened, and return it if it completed meanwhile."""
    from airflow_provider_canvas_reports.canvas.errors import CanvasError
    from airflow_provider_canvas_reports.canvas.report import QUEUED_CANNOT_STOP, Phase

    try:
        result = hook.cancel_report(report, report_id, account)
    except CanvasError as exc:
        log.warning("Could not cancel Canvas report %s #%s: %s", report, report_id, exc)
        return (
            f"Could not cancel it in Canvas ({type(exc).__name__}: {str(exc)[:300]}); cancel it by hand "
            f"on the account's reports page: {hook.reports_page_url(account)}",
            None,
        )
    if result is not None and result.status == "created":
        why = f"{QUEUED_CANNOT_STOP}; a retry of this task reconnects to it instead of queueing another"
        log.warning("Left Canvas report %s #%s queued: %s.", report, report_id, why)
        return f"Left it queued in Canvas: {why}.", None
    if result is not None:
        if result.status == "aborted":
            how = "aborted it (it was running)"
        elif result.status == "deleted":
            # Canvas's answer keeps started_at: a report that had started was deleted because
            # Canvas would not abort it (it had just left running, e.g. to compile its parts).
            how = (
                "deleted it (it was still queued)"
                if result.started_at is None
                else "deleted it (it had started, and Canvas would not abort it)"
            )
        else:
            how = f"asked Canvas to stop it (Canvas now says '{result.status}')"
        log.warning("Cancelled Canvas report %s #%s: %s.", report, report_id, how)
        return f"Cancelled it in Canvas: {how}.", None
    # Nothing to cancel: it ended between the last poll and now. Complete counts as success.
    try:
        final = hook.get_report(report, report_id, account)
    except CanvasError:
        return "It had already ended in Canvas; nothing to cancel.", None
    if final.phase is Phase.SUCCESS:
        return "It completed just at the deadline.", final
    return f"It had already ended in Canvas with status '{final.status}'; nothing to cancel.", None


def conclude(
    payload: Any,
    *,
    hook: CanvasHook,
    report: str,
    report_id: int | str | None,
    log: logging.Logger | Any,
    on_failure: Callable[[str], Exception],
    on_timeout: Callable[[str], Exception],
    on_error: Callable[[str], Exception],
    after_failure: str,
    after_error: str,
) -> dict[str, Any]:
    """The end of a wait, from either side: the final Report dict, or the right exception.

    A timeout cancels the report in Canvas first (abort if running, delete if compiling; a queued
    one is left). A failed report's error ends with `after_failure`, and a failed wait's with
    where the report can be seen and `after_error`: what the person reading the log does next.
    """
    from airflow_provider_canvas_reports.triggers.events import parse_event

    try:
        event: ReportEvent = parse_event(payload, report_id=report_id, report=report)
    except ValueError as exc:
        raise on_error(str(exc)) from None
    if event.summary:
        log.info("Canvas report wait ended (%s): %s", event.status, event.summary)
    if event.status == SUCCESS:
        assert event.report_json is not None  # parse_event guarantees it
        return event.report_json
    if event.status == FAILURE:
        raise on_failure(then(event.message, after_failure))
    if event.status == TIMEOUT:
        account = event.account_id or hook.account(None)
        note, completed = describe_cancel(hook, event.report, event.report_id, account, log)
        if completed is not None:
            log.info("%s", note)
            return completed.as_json()
        raise on_timeout(f"{event.message} {note}")
    assert event.status == ERROR
    # The wait gave up, not the report: it was left as it was, for a retry to pick up.
    raise on_error(then(event.message, f"{_left_running(hook, event)} {after_error}"))


def then(message: str, more: str) -> str:
    """`more` after `message`, as the next sentence. Canvas's own reasons may end without a stop
    ("Report has been aborted") or with a ';' ("... ErrorReport:42;"), which becomes one."""
    message = message.rstrip().removesuffix(";")
    return f"{message}{'' if message.endswith(('.', '!', '?')) else '.'} {more}"


def _left_running(hook: CanvasHook, event: ReportEvent) -> str:
    """Where a report the wait stopped following can be seen (and stopped by hand)."""
    left = f"Canvas report {event.report} #{event.report_id} was not cancelled and may still be running"
    try:
        return f"{left}: {hook.reports_page_url(event.account_id or None)}."
    except Exception:  # the connection itself may be what failed; the rest of the message stands
        return f"{left}."
