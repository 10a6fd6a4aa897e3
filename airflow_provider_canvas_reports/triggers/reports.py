"""ReportStatusTrigger: waits for a Canvas report in the triggerer, without holding a worker."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from datetime import timedelta
from typing import Any, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_canvas_reports.canvas import endpoints
from airflow_provider_canvas_reports.canvas.polling import (
    DEFAULT_MAX_CONSECUTIVE_ERRORS,
    DEFAULT_MAX_POLL_INTERVAL,
    SUCCESS,
    Outcome,
    PollAgain,
    PollLog,
    PollPolicy,
    Waiter,
    check_expected_run_time,
    sleep_for,
)
from airflow_provider_canvas_reports.canvas.report import QUEUED_CANNOT_STOP, Report
from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
from airflow_provider_canvas_reports.task_state import kept_because, task_state, unknown_state_note
from airflow_provider_canvas_reports.triggers import wake

# The event helpers live in triggers/events.py, which the operators can import without loading
# airflow.triggers when a DAG is parsed; they stay importable from here too.
from airflow_provider_canvas_reports.triggers.events import InvalidEventError as InvalidEventError
from airflow_provider_canvas_reports.triggers.events import ReportEvent as ReportEvent
from airflow_provider_canvas_reports.triggers.events import event_payload, retry_policy_from_kwargs
from airflow_provider_canvas_reports.triggers.events import parse_event as parse_event
from airflow_provider_canvas_reports.triggers.events import retry_policy_kwargs as retry_policy_kwargs

TRIGGER_PATH = "airflow_provider_canvas_reports.triggers.reports.ReportStatusTrigger"
# Any deadline before this is a duration passed by mistake (it would end the wait at once).
_EPOCH_2001 = 978_307_200.0


def _seconds(value: float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


ON_KILL_TIMEOUT = 25.0
T = TypeVar("T")


class ReportStatusTrigger(BaseTrigger):
    """Polls one Canvas report until it ends, its deadline passes, or polling keeps failing.

    Yields exactly one event, a dict whose ``status`` is ``success`` (report complete),
    ``failure`` (``error``, ``aborted``, ``deleted``, or gone from Canvas), ``timeout`` (the
    deadline passed: the task then cancels the report) or ``error`` (``max_consecutive_errors``
    polls in a row failed, each already retried by the client, or a permanent error such as a
    revoked token). The event also carries ``message``, a one-line ``summary`` for the worker's
    log, and ``report_json`` (the Report as Canvas last sent it).

    Nothing here blocks the event loop: the connection comes from the async API, HTTP goes
    through one aiohttp session per event loop shared by all triggers.

    :param canvas_conn_id: the Canvas connection.
    :param report: the report type, e.g. ``provisioning_csv``.
    :param report_id: the report run's id.
    :param account_id: the account (None: the connection's default, else ``self``).
    :param poll_interval: seconds between polls; with ``adaptive_polling`` the shortest interval.
    :param deadline: absolute time (epoch seconds) after which the wait ends with ``timeout``;
        None for none. The operators always pass one, and defer with ``timeout=None``: a
        framework deferral timeout would skip ``execute_complete`` and leave the report running.
    :param adaptive_polling: poll as rarely as noticing completion within max(``poll_interval``,
        5% of the run time) allows (see :mod:`airflow_provider_canvas_reports.canvas.polling`).
    :param max_poll_interval: the longest interval adaptive polling may use.
    :param max_consecutive_errors: failed polls in a row tolerated before an ``error`` event.
    :param wait_started_at: when the wait began (epoch seconds), for logs and adaptive polling.
    :param retry_policy: the client's retry bounds as a dict of RetryPolicy fields.
    :param expected_run_time: seconds the report is expected to run (the operator and the sensor
        take it from the previous run in the report index before deferring); with
        ``adaptive_polling`` it stretches the intervals while the report cannot be finished yet.
        None (default): no expectation, so polls come every ``poll_interval`` while queued.
    :param first_poll_at: when to poll first (epoch seconds): the worker saw the report just
        before deferring and planned its next look from there. None (default): at once.
    :param last_status: the status the worker saw just before deferring, or None. A 404 on the
        first poll then reads as the report deleted while waited for, not as a wrong report id.
    """

    def __init__(
        self,
        canvas_conn_id: str,
        report: str,
        report_id: int | str,
        account_id: str | None = None,
        poll_interval: float | timedelta = 60.0,
        deadline: float | None = None,
        adaptive_polling: bool = True,
        max_poll_interval: float | timedelta = DEFAULT_MAX_POLL_INTERVAL,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
        wait_started_at: float | None = None,
        retry_policy: Mapping[str, float | int] | None = None,
        expected_run_time: float | None = None,
        first_poll_at: float | None = None,
        last_status: str | None = None,
    ) -> None:
        super().__init__()
        self.canvas_conn_id = canvas_conn_id
        self.report = report
        self.report_id = int(endpoints.report_id_segment(report_id))
        self.account_id = None if account_id in (None, "") else str(account_id)
        self.poll_interval = _seconds(poll_interval)
        if deadline is not None and float(deadline) < _EPOCH_2001:
            raise ValueError(
                f"deadline={deadline!r} is not an absolute time: give epoch seconds, e.g. time.time() + 3600"
            )
        self.deadline = None if deadline is None else float(deadline)
        self.adaptive_polling = bool(adaptive_polling)
        self.max_poll_interval = _seconds(max_poll_interval)
        self.max_consecutive_errors = int(max_consecutive_errors)
        self.wait_started_at = None if wait_started_at is None else float(wait_started_at)
        self.retry_policy = dict(retry_policy) if retry_policy is not None else None
        self.expected_run_time = check_expected_run_time(expected_run_time)
        self.first_poll_at = None if first_poll_at is None else float(first_poll_at)
        self.last_status = None if last_status is None else str(last_status)
        # The account polled: account_id, or the connection's default once looked up (in run()).
        self._account: str | None = self.account_id
        # Validate here, in the worker, rather than in the triggerer.
        self.policy = PollPolicy(self.poll_interval, self.adaptive_polling, self.max_poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # Plain JSON values only: since Airflow 3.2 kwargs go through airflow.sdk.serde (#64609).
        return TRIGGER_PATH, {
            "canvas_conn_id": self.canvas_conn_id,
            "report": self.report,
            "report_id": self.report_id,
            "account_id": self.account_id,
            "poll_interval": self.poll_interval,
            "deadline": self.deadline,
            "adaptive_polling": self.adaptive_polling,
            "max_poll_interval": self.max_poll_interval,
            "max_consecutive_errors": self.max_consecutive_errors,
            "wait_started_at": self.wait_started_at,
            "retry_policy": self.retry_policy,
            "expected_run_time": self.expected_run_time,
            "first_poll_at": self.first_poll_at,
            "last_status": self.last_status,
        }

    def _hook(self) -> CanvasHook:
        return CanvasHook(self.canvas_conn_id, retry_policy=retry_policy_from_kwargs(self.retry_policy))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Imported here: the sensor module imports this one, and aiohttp has no place in a DAG parse.
        from airflow_provider_canvas_reports.transport.aio import hold_shared_sessions

        async with hold_shared_sessions():
            hook = self._hook()
            waiter = Waiter(
                self.policy,
                report_type=self.report,
                report_id=self.report_id,
                started_at=self.wait_started_at if self.wait_started_at is not None else time.time(),
                deadline=self.deadline,
                max_consecutive_errors=self.max_consecutive_errors,
                expected_run_time=self.expected_run_time,
                last_status=self.last_status,
            )
            try:
                # One timer at the deadline bounds the whole wait, a status request still retrying
                # included. A timer per poll would leave a cancelled timer in the loop's heap after
                # every poll, for the cyclic GC to walk with thousands of triggers (BENCHMARKS.md).
                outcome = await _within(self._wait(hook, waiter), waiter.time_left(time.time()))
            except asyncio.TimeoutError:
                outcome = waiter.timed_out()
            payload = event_payload(outcome, waiter, account_id=self._account, now=time.time())
            if outcome.kind == SUCCESS:
                self.log.info("Wait ended (%s): %s", outcome.kind, payload["summary"])
            else:  # the triggerer's log says why, not only the task's
                self.log.warning(
                    "Wait ended (%s): %s (%s)", outcome.kind, outcome.message, payload["summary"]
                )
            yield TriggerEvent(payload)

    async def _wait(self, hook: CanvasHook, waiter: Waiter) -> Outcome:
        """Poll until the report ends or polling keeps failing; the caller bounds it by the deadline."""
        quiet = PollLog()
        # The account comes from the connection when not given: a lookup that can fail like a poll
        # (and must end in an event like one, never in an exception with the report left running).
        while self._account is None:
            try:
                self._account = await hook.aaccount(self.account_id)
            except Exception as exc:
                step = waiter.failed(exc, time.time())
                if not isinstance(step, PollAgain):
                    return step
                self.log.warning("%s", step.line)
                await wake.sleep(step.seconds, self.deadline)
        account = self._account
        await self._until_first_poll()
        while True:
            outcome = waiter.before_poll(time.time())
            if outcome is not None:
                return outcome
            step = await self._poll(hook, account, waiter)
            if not isinstance(step, PollAgain):
                return step
            if step.warning:
                self.log.warning("%s", step.warning)
            level = quiet.level(waiter.state, time.monotonic())
            self.log.log(level, "%s; next poll in %.1fs", step.line, step.seconds)
            await wake.sleep(step.seconds, self.deadline)

    async def _until_first_poll(self) -> None:
        # The worker saw the report a moment ago: polling again at once would learn nothing new,
        # and a trigger that fires within a second or two of the deferral can fail the try
        # (Airflow 3.3.2, apache/airflow#67287). A restarted or moved trigger whose first poll
        # time has passed polls at once.
        if self.first_poll_at is None:
            return
        now = time.time()
        pause = sleep_for(self.first_poll_at - now, now=now, deadline=self.deadline)
        if pause > 0:
            self.log.info("Canvas report %s #%s: first poll in %.1fs.", self.report, self.report_id, pause)
            await wake.sleep(pause, self.deadline)

    async def _poll(self, hook: CanvasHook, account: str, waiter: Waiter) -> Outcome | PollAgain:
        answer: Report | Exception
        try:
            answer = await hook.aget_report(self.report, self.report_id, account)
        except Exception as exc:
            answer = exc
        return waiter.answered(answer, time.time())

    # Stops that outlived on_kill (see there), held so that they are not garbage-collected.
    _stopping: set[asyncio.Task[None]] = set()

    async def on_kill(self) -> None:
        """A user marked the deferred task failed or skipped, its DAG run timed out, or the run was
        deleted: stop the report.

        Marked success, or cleared, the report may still be wanted (a cleared task's next try waits
        for it again; after a success the download can land it once it completes), so it is left
        to finish.

        Airflow 3.3 means this hook for user actions only, but 3.3.2 also calls it for a trigger
        that moved to another triggerer while this one was thought dead (a late heartbeat) and
        came back; that task is still deferred and the other triggerer waits for the report. So
        the report is cancelled only once Airflow says the task is no longer deferred. Restarts
        and shutdowns cancel ``run()`` and call ``cleanup()`` only. Airflow < 3.3 never calls this.
        """
        # Airflow 3.3.2's trigger runner cancels the trigger's task again on each pass of its loop
        # (about every second) until the task ends, which silently cuts on_kill short. Shielded,
        # the state check and the cancel run to their own bound.
        stop = asyncio.ensure_future(self._stop_report())
        self._stopping.add(stop)
        stop.add_done_callback(self._stopping.discard)
        await asyncio.shield(stop)

    async def _stop_report(self) -> None:
        """on_kill's work: ask Airflow for the task's state, then cancel the report or say why not."""
        from airflow_provider_canvas_reports.transport.aio import hold_shared_sessions

        # One budget for the state check and the cancel, under the triggerer's own wait for
        # on_kill ([triggerer] on_kill_timeout, 30 s by default), so that giving up is logged here.
        give_up_at = time.monotonic() + ON_KILL_TIMEOUT
        try:
            state = await self._task_state(within=ON_KILL_TIMEOUT - 10.0)
        except Exception as exc:
            # Aborting a report another triggerer waits for fails that run; a report left
            # running only costs Canvas time. Unsure, leave it.
            self.log.warning(
                "Leaving Canvas report %s #%s running: %s",
                self.report,
                self.report_id,
                unknown_state_note(exc, "in Canvas (Account > Settings > Reports)."),
            )
            return
        if (why := kept_because(state)) is not None:
            # Still deferred: a trigger stopped by mistake, worth a warning; else a user's choice.
            log = self.log.warning if state == "deferred" else self.log.info
            log("Not cancelling Canvas report %s #%s: %s.", self.report, self.report_id, why)
            return
        hook = self._hook()
        try:
            async with hold_shared_sessions():
                result = await asyncio.wait_for(
                    hook.acancel_report(self.report, self.report_id, self.account_id),
                    max(give_up_at - time.monotonic(), 1.0),
                )
        except Exception as exc:
            self.log.warning(
                "Could not cancel Canvas report %s #%s after the task was killed (%s); stop it by hand "
                "in Canvas (Account > Settings > Reports).",
                self.report,
                self.report_id,
                str(exc) or type(exc).__name__,
            )
            return
        if result is None:
            self.log.info(
                "Canvas report %s #%s had already finished; nothing to cancel.", self.report, self.report_id
            )
        elif result.status == "created":
            self.log.warning(
                "Left Canvas report %s #%s queued although the task was killed (task state %s): %s; "
                "clearing the task reconnects to it.",
                self.report,
                self.report_id,
                state,
                QUEUED_CANNOT_STOP,
            )
        else:
            self.log.info(
                "Cancelled Canvas report %s #%s because the task was killed (task state %s): "
                "Canvas now says '%s'.",
                self.report,
                self.report_id,
                state,
                result.status,
            )

    async def _task_state(self, within: float) -> str:
        """The state Airflow now records for the task instance this trigger would resume
        (`task_state`), asked in a thread: the SDK call blocks until the supervisor answers."""
        ti = self.task_instance
        if ti is None:
            raise RuntimeError("the trigger runs without a task instance")
        return await asyncio.wait_for(asyncio.to_thread(task_state, ti), within)


async def _within(awaitable: Awaitable[T], seconds: float | None) -> T:
    """`awaitable`'s result, or asyncio.TimeoutError after `seconds` (None: no bound).

    `asyncio.wait_for` wraps the awaitable in a new task on Python < 3.12; `asyncio.timeout`
    (3.11+) only arms a timer.
    """
    if seconds is None:
        return await awaitable
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)
