"""ReportCompleteSensor: waits until a Canvas report is complete."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowFailException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_canvas_reports.canvas.polling import (
    DEFAULT_MAX_CONSECUTIVE_ERRORS,
    DEFAULT_MAX_POLL_INTERVAL,
    Outcome,
    PollAgain,
    PollLog,
    PollPolicy,
    Waiter,
    describe_duration,
    never_started,
)
from airflow_provider_canvas_reports.links.canvas import XCOM_KEY, CanvasReportsLink, remember_link
from airflow_provider_canvas_reports.operators._arguments import count, duration, flag, retry_policy
from airflow_provider_canvas_reports.operators._common import (
    AUTO,
    DEFAULT_CONN_ID,
    ExpectedRunTime,
    ReportWaitError,
    WaitSettings,
    cancel_on_kill,
    conclude,
    describe_cancel,
    expected_run_time_setting,
    next_poll_at,
    poll_once,
    report_id_argument,
)
from airflow_provider_canvas_reports.operators._turns import take_turn

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
    from airflow_provider_canvas_reports.hooks.canvas import CanvasHook

# Every DAG parse imports this module: the hook, Canvas's errors and the event helpers load when a
# task runs (inside the methods), so that a parse pays for the constructor only.


class ReportCompleteSensor(BaseSensorOperator):
    """Wait until a Canvas report is ``complete``; return the final Report dict (XCom).

    The return value is the Report JSON as Canvas sent it (less the download verifier: see
    ``Report.as_json``), in poke, reschedule and deferrable modes alike. ``error``, ``aborted``
    and ``deleted`` (or the report vanishing from Canvas) fail the task with the report id,
    status and Canvas's reason, or skip it with ``soft_fail``. An unknown status keeps the
    sensor waiting, with a warning.

    At ``timeout`` the report is cancelled in Canvas (aborted if running, deleted if still
    queued) before the task fails (or skips with ``soft_fail``) saying so. In reschedule mode
    the timeout counts from the first try, as for every Airflow sensor; in deferrable mode it
    becomes an absolute deadline carried by the trigger.

    :param report: the report type, e.g. ``provisioning_csv`` (templated).
    :param report_id: the report run's id, e.g. ``"{{ ti.xcom_pull(task_ids='start',
        key='report_id') }}"`` (templated).
    :param deferrable: wait in the triggerer (default from ``[operators] default_deferrable``).
        The sensor checks once first and finishes at once if the report is already over.
    :param poke_interval: seconds between polls. With ``adaptive_polling`` (default) this is
        the *shortest* interval: completion is noticed within max(``poke_interval``, 5% of the
        run time), with as few polls as that allows, up to ``max_poll_interval`` apart. Airflow's
        ``exponential_backoff`` replaces adaptive polling in poke and reschedule modes.
    :param adaptive_polling: False polls exactly every ``poke_interval``.
    :param max_poll_interval: the longest interval adaptive polling may use.
    :param expected_run_time: how long the report is expected to run (seconds or timedelta).
        With it, adaptive polling stretches its intervals while the report cannot be finished
        yet: a run is taken to last at least 3/4 of it. ``"auto"`` (default): the run time of
        the most recent complete run of this report with the same parameters (those the run
        echoes), from the first page of the report index: one request when the wait starts (in
        poke mode once per try; in reschedule mode each poke is a new start, so there "auto"
        means none: pass a value). If the lookup fails or finds nothing, the wait goes on
        without. None: no expectation; then completion is noticed within
        max(``poke_interval``, 5% of the run time), at the cost of more polls.
    :param max_consecutive_errors: failed polls in a row (each already retried by the client)
        tolerated before the task fails. In reschedule mode each poke is its own try, so a
        failed poll fails that try (Airflow's ``retries`` apply).
    :param canvas_conn_id: the Canvas connection (templated).
    :param account_id: the account (templated); default: the connection's, else ``self``.
    :param canvas_retry_policy: the client's bounds for retries on throttling, 5xx and resets.
    :param start_spacing: sensors released together take turns for their first check, as start
        tasks do: each waits its place times this (seconds or timedelta, default 0.2 s) before it.
        Its place is its rank, by task_id, among the DAG's sensors of this kind with the same
        upstream tasks, plus its map index when mapped (all instances of a sensor mapped over a
        mapped start are released together), counted modulo 50: at most 9.8 s at the default. In
        reschedule mode only the first poke of a try waits. Then it takes its worker host's next
        turn on the token, as start tasks do. A sensor alone never waits; 0 turns both off.
    """

    template_fields: Sequence[str] = ("report", "report_id", "account_id", "canvas_conn_id")
    operator_extra_links = (CanvasReportsLink(),)
    ui_color = "#e4f0e8"

    def __init__(
        self,
        *,
        report: str,
        report_id: int | str,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: timedelta | float = 60.0,
        adaptive_polling: bool = True,
        max_poll_interval: timedelta | float = DEFAULT_MAX_POLL_INTERVAL,
        expected_run_time: ExpectedRunTime = AUTO,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
        canvas_conn_id: str = DEFAULT_CONN_ID,
        account_id: str | int | None = None,
        canvas_retry_policy: RetryPolicy | Mapping[str, float] | None = None,
        start_spacing: timedelta | float = 0.2,
        **kwargs: Any,
    ) -> None:
        # Airflow's own check of these two takes no string, as Variable.get() gives them.
        if "timeout" in kwargs:
            kwargs["timeout"] = duration(kwargs["timeout"], name="timeout")
        super().__init__(poke_interval=duration(poke_interval, name="poke_interval", default=60.0), **kwargs)
        self.report = report
        self.report_id = report_id
        self.deferrable = flag(deferrable, name="deferrable")
        self.adaptive_polling = flag(adaptive_polling, name="adaptive_polling")
        self.max_poll_interval = duration(
            max_poll_interval, name="max_poll_interval", default=DEFAULT_MAX_POLL_INTERVAL
        )
        self.max_consecutive_errors = count(max_consecutive_errors, name="max_consecutive_errors")
        self.canvas_conn_id = canvas_conn_id
        self.account_id = account_id
        self.canvas_retry_policy = retry_policy(canvas_retry_policy)
        self.expected_run_time = expected_run_time
        self.start_spacing = duration(start_spacing, name="start_spacing", allow_zero=True)
        self.wait = WaitSettings(
            policy=PollPolicy(
                duration(self.poke_interval, name="poke_interval", default=60.0),
                self.adaptive_polling,
                self.max_poll_interval,
            ),
            # 0 would time out at the first poke and cancel a report that is running fine.
            timeout=duration(self.timeout, name="timeout"),
            max_consecutive_errors=self.max_consecutive_errors,
            retry_policy=self.canvas_retry_policy,
            expected_run_time=expected_run_time_setting(expected_run_time),
        )
        self._waiter: Waiter | None = None
        self._account: str | None = None
        self._next_interval: float | None = None
        self._poll_log = PollLog()  # pokes that repeat the last state go to DEBUG (poke mode)
        # True while the last poke saw the report still running: a timeout or a kill then cancels
        # it. It keeps that value while the next poke polls, so that a kill then still cancels.
        self._pending = False
        # True from a poke's start until it returns or ends the wait: an exception meanwhile is
        # the poke's own, never the base sensor's timeout.
        self._in_poke = False
        self._ti: Any = None  # for on_kill: whether the task still waits for the report

    @cached_property
    def hook(self) -> CanvasHook:
        from airflow_provider_canvas_reports.hooks.canvas import CanvasHook

        return CanvasHook(self.canvas_conn_id, retry_policy=self.canvas_retry_policy)

    def _report_id(self) -> int:
        return report_id_argument(self.report_id)

    def _account_id(self) -> str:
        if self._account is None:
            self._account = self.hook.account(self.account_id)
        return self._account

    # -- how a wait ends -------------------------------------------------------------------
    def _failed(self, message: str) -> Exception:
        # A failed report stays failed: retrying the sensor would not help.
        return AirflowSkipException(message) if self.soft_fail else AirflowFailException(message)

    def _timed_out(self, message: str) -> Exception:
        return AirflowSkipException(message) if self.soft_fail else AirflowSensorTimeout(message)

    def _conclude(self, payload: Any) -> dict[str, Any]:
        return conclude(
            payload,
            hook=self.hook,
            report=self.report,
            report_id=self._report_id(),
            log=self.log,
            on_failure=self._failed,
            on_timeout=self._timed_out,
            on_error=ReportWaitError,
            after_failure="Waiting again cannot change that: clear the task that started it to start a new one.",
            after_error="Retrying or clearing this task waits for it again.",
        )

    # -- execute ---------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        self._ti = context["ti"]
        remember_link(self, None)  # until the connection gives a URL
        url = self.hook.reports_page_url(self._account_id())
        remember_link(self, url)
        # In any case: a deferred wait resumes in a new try, whose link reads it (see the start's).
        context["ti"].xcom_push(key=XCOM_KEY, value=url)
        self._report_id()  # a bad id fails before any wait
        # A rescheduled poke keeps the place its try's first poke took.
        if not self.reschedule or context["ti"].get_first_reschedule_date(context) is None:
            take_turn(
                self,
                context,
                kind=ReportCompleteSensor,
                spacing=self.start_spacing,
                jitter=0.0,
                key=self.hook.turn_key,
            )
        if self.deferrable:
            return self._execute_deferrable()
        try:
            return super().execute(context)
        except (AirflowSensorTimeout, AirflowSkipException):
            if self._in_poke or not self._pending:
                raise  # not the timeout: raised by poke itself
            return self._after_timeout()

    def _after_timeout(self) -> dict[str, Any]:
        """BaseSensorOperator's timeout hit while the report still ran: cancel it, then fail."""
        report_id = self._report_id()
        account = self._account_id()
        last = self._waiter.last if self._waiter is not None else None
        seen = f"; last status '{last.status}'" if last is not None else ""
        note, completed = describe_cancel(self.hook, self.report, report_id, account, self.log)
        if completed is not None:
            self.log.info("%s", note)
            return completed.as_json()
        message = (
            f"Canvas report {self.report} #{report_id} did not finish within "
            f"{describe_duration(self.timeout)} (the sensor's timeout){seen}."
            f"{never_started(last.status if last is not None else None)} {note}"
        )
        # From None: the framework's own timeout message says less than this one.
        raise self._timed_out(message) from None

    def _execute_deferrable(self) -> Any:
        report_id = self._report_id()
        account = self._account_id()
        started = time.time()
        waiter = self.wait.waiter(report=self.report, report_id=report_id, started_at=started)
        # One check first: a report already over ends the task without a trip to the triggerer.
        step = poll_once(self.hook, waiter, account, time.time)
        polled_at = time.time()
        if isinstance(step, Outcome):
            from airflow_provider_canvas_reports.triggers.events import event_payload

            return self._conclude(event_payload(step, waiter, account_id=account, now=time.time()))
        self.log.info("%s; deferring to the triggerer.", step.line)
        expected = self.wait.expected(
            self.hook, report=self.report, report_id=report_id, account=account, log=self.log
        )
        self.defer(
            trigger=self.wait.trigger(
                conn_id=self.canvas_conn_id,
                report=self.report,
                report_id=report_id,
                account_id=account,
                started_at=started,
                expected_run_time=expected,
                first_poll_at=next_poll_at(step, polled_at),
                last_status=waiter.seen_status,
            ),
            method_name="execute_complete",
            # The trigger carries the deadline: a framework timeout would skip execute_complete
            # and leave the report running in Canvas (apache/airflow#61467).
            timeout=None,
        )

    def execute_complete(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Resume after the trigger: validate its event, return the final Report or fail."""
        return self._conclude(event)

    # -- poke and reschedule modes ---------------------------------------------------------
    def _get_waiter(self, context: Context) -> Waiter:
        if self._waiter is None:
            started = time.time()
            if self.reschedule:
                # The wait began at the first try: adaptive polling and logs count from there.
                first = context["ti"].get_first_reschedule_date(context)
                if isinstance(first, str):  # early Airflow 3.1 releases' dag.test() (apache/airflow#58777)
                    import pendulum

                    first = pendulum.parse(first)
                if first is not None:
                    started = first.timestamp()
            if self.reschedule and self.wait.expected_run_time == AUTO:
                # Each poke would pay the index lookup again: "auto" means none here.
                expected = None
            else:
                expected = self.wait.expected(
                    self.hook,
                    report=self.report,
                    report_id=self._report_id(),
                    account=self._account_id(),
                    log=self.log,
                )
            # BaseSensorOperator enforces the timeout in these modes, so no deadline here.
            self._waiter = self.wait.waiter(
                report=self.report,
                report_id=self._report_id(),
                started_at=started,
                expected_run_time=expected,
                deadline=False,
            )
        return self._waiter

    def poke(self, context: Context) -> bool | PokeReturnValue:
        waiter = self._get_waiter(context)
        self._in_poke = True
        step = poll_once(self.hook, waiter, self._account_id(), time.time)
        if isinstance(step, PollAgain):
            if waiter.consecutive_errors and self.reschedule:
                raise ReportWaitError(step.line)
            if step.warning:
                self.log.warning("%s", step.warning)
            self.log.log(self._poll_log.level(waiter.state, time.monotonic()), "%s", step.line)
            self._next_interval = step.seconds
            self._pending, self._in_poke = True, False
            return False
        self._pending, self._in_poke = False, False
        # The wait is over: the same ending as a deferred wait's, from the same event.
        from airflow_provider_canvas_reports.triggers.events import event_payload

        payload = event_payload(step, waiter, account_id=self._account_id(), now=time.time())
        return PokeReturnValue(is_done=True, xcom_value=self._conclude(payload))

    def _get_next_poke_interval(
        self, started_at: Any, run_duration: Callable[[], float], poke_count: int
    ) -> float:
        # Airflow's exponential_backoff, when asked for, replaces adaptive polling.
        if self.exponential_backoff or self._next_interval is None:
            return super()._get_next_poke_interval(started_at, run_duration, poke_count)
        # Land the last poke at the timeout rather than sleeping past it.
        return max(0.0, min(self._next_interval, self.timeout - run_duration()))

    def on_kill(self) -> None:
        """Killed while poking: stop the report in Canvas unless it is still wanted, by the same
        rule as the trigger's when deferred (`cancel_on_kill`)."""
        if not self._pending:
            return
        cancel_on_kill(self.hook, self.report, self._report_id(), self._account_id(), self._ti, self.log)
