"""ReportStatusTrigger: waits for a Canvas report in the triggerer, without holding a worker."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_canvas_reports.canvas.errors import ReportNotFoundError
from airflow_provider_canvas_reports.canvas.polling import (
    DEFAULT_MAX_CONSECUTIVE_ERRORS,
    DEFAULT_MAX_POLL_INTERVAL,
    OUTCOMES,
    SUCCESS,
    Outcome,
    PollAgain,
    PollPolicy,
    Waiter,
)
from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.hooks.canvas import CanvasHook

TRIGGER_PATH = "airflow_provider_canvas_reports.triggers.reports.ReportStatusTrigger"
ON_KILL_TIMEOUT = 25.0
T = TypeVar("T")
# A poll that changes nothing (same status and progress) is logged at INFO at most this often,
# at DEBUG otherwise: a report queued for hours still shows in the task log that it is being
# watched, without one line per poll (formatting a line costs ~65 us, a tenth of a poll).
QUIET_POLL_LOG_INTERVAL = 300.0
# Sleeps of COALESCE_FROM seconds or more end on a shared grid of the event loop's clock, so that
# thousands of triggers, each on its own schedule, wake the loop together in batches rather than
# one by one (each wake-up costs a pass of the loop and a system call): about a third less CPU per
# poll with 2,000 triggers (BENCHMARKS.md). The delay is under WAKE_GRID, at most 2% of a sleep.
WAKE_GRID = 0.1
COALESCE_FROM = 5.0


def retry_policy_kwargs(policy: RetryPolicy | None) -> dict[str, float | int] | None:
    """A RetryPolicy as plain numbers, fit for trigger kwargs."""
    return None if policy is None else dataclasses.asdict(policy)


def retry_policy_from_kwargs(values: Mapping[str, Any] | None) -> RetryPolicy | None:
    """The reverse; unknown names are dropped (a triggerer may run another provider version)."""
    if not values:
        return None
    known = {f.name for f in dataclasses.fields(RetryPolicy)}
    return RetryPolicy(**{name: value for name, value in values.items() if name in known})


def event_payload(outcome: Outcome, waiter: Waiter, *, account_id: str, now: float) -> dict[str, Any]:
    """The event both waits produce (the trigger, and the worker-side loop): JSON values only."""
    report = outcome.report
    return {
        "status": outcome.kind,
        "message": outcome.message,
        "summary": waiter.summary(now),
        "report": waiter.report_type,
        "report_id": waiter.report_id,
        "account_id": account_id,
        "report_status": report.status if report is not None else None,
        "report_json": report.as_json() if report is not None else None,
    }


class InvalidEventError(ValueError):
    """The task resumed with an event this provider's trigger cannot have sent."""


@dataclass(frozen=True)
class ReportEvent:
    """A validated event: `status` is one of success, failure, timeout, error."""

    status: str
    message: str
    summary: str
    report: str
    report_id: int
    account_id: str | None
    report_status: str | None
    report_json: dict[str, Any] | None


def parse_event(event: Any, *, report_id: int | str | None) -> ReportEvent:
    """Validate what a task resumed with. A missing or unknown event is an error, never success.

    :param report_id: the report the task waits for; None to take it from the event.
    """
    label = f"#{report_id}" if report_id is not None else "(unknown id)"
    if not isinstance(event, Mapping):
        raise InvalidEventError(
            f"The task resumed without a valid event from ReportStatusTrigger (got {type(event).__name__}); "
            f"the state of Canvas report {label} is unknown. Retry the task."
        )
    status = event.get("status")
    if status not in OUTCOMES:
        raise InvalidEventError(
            f"ReportStatusTrigger sent an unknown event status {str(status)[:40]!r} for Canvas report "
            f"{label}; expected one of {', '.join(sorted(OUTCOMES))}."
        )
    sent_id = str(event.get("report_id"))[:40]
    if not sent_id.isdigit() or (report_id is not None and sent_id != str(report_id)):
        raise InvalidEventError(
            f"ReportStatusTrigger sent an event about report #{sent_id}, but this task waits for "
            f"Canvas report {label}."
        )
    raw = event.get("report_json")
    if raw is not None and not isinstance(raw, Mapping):
        raise InvalidEventError(f"The event for Canvas report #{sent_id} carries a malformed report.")
    if status == SUCCESS and (raw is None or raw.get("status") != "complete"):
        raise InvalidEventError(
            f"ReportStatusTrigger reported success for Canvas report #{sent_id} without a complete report."
        )
    report_status = event.get("report_status")
    return ReportEvent(
        status=status,
        message=str(event.get("message") or ""),
        summary=str(event.get("summary") or ""),
        report=str(event.get("report") or ""),
        report_id=int(sent_id),
        account_id=str(event["account_id"]) if event.get("account_id") not in (None, "") else None,
        report_status=report_status if isinstance(report_status, str) else None,
        report_json=dict(raw) if raw is not None else None,
    )


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
    :param adaptive_polling: stretch the interval while queued and aim at the predicted finish
        while running (see :mod:`airflow_provider_canvas_reports.canvas.polling`).
    :param max_poll_interval: the longest interval adaptive polling may use.
    :param max_consecutive_errors: failed polls in a row tolerated before an ``error`` event.
    :param wait_started_at: when the wait began (epoch seconds), for logs and adaptive polling.
    :param retry_policy: the client's retry bounds as a dict of RetryPolicy fields.
    """

    def __init__(
        self,
        canvas_conn_id: str,
        report: str,
        report_id: int | str,
        account_id: str | None = None,
        poll_interval: float = 60.0,
        deadline: float | None = None,
        adaptive_polling: bool = True,
        max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
        wait_started_at: float | None = None,
        retry_policy: Mapping[str, float | int] | None = None,
    ) -> None:
        super().__init__()
        self.canvas_conn_id = canvas_conn_id
        self.report = report
        self.report_id = int(report_id)
        self.account_id = None if account_id in (None, "") else str(account_id)
        self.poll_interval = float(poll_interval)
        self.deadline = None if deadline is None else float(deadline)
        self.adaptive_polling = bool(adaptive_polling)
        self.max_poll_interval = float(max_poll_interval)
        self.max_consecutive_errors = int(max_consecutive_errors)
        self.wait_started_at = None if wait_started_at is None else float(wait_started_at)
        self.retry_policy = dict(retry_policy) if retry_policy is not None else None
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
        }

    def _hook(self) -> CanvasHook:
        return CanvasHook(self.canvas_conn_id, retry_policy=retry_policy_from_kwargs(self.retry_policy))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # Imported here: the sensor module imports this one, and aiohttp has no place in a DAG parse.
        from airflow_provider_canvas_reports.transport.aio import hold_shared_sessions

        async with hold_shared_sessions():
            hook = self._hook()
            account = await hook.aaccount(self.account_id)
            waiter = Waiter(
                self.policy,
                report_type=self.report,
                report_id=self.report_id,
                started_at=self.wait_started_at if self.wait_started_at is not None else time.time(),
                deadline=self.deadline,
                max_consecutive_errors=self.max_consecutive_errors,
            )
            logged: tuple[str, int | None] | None = None  # (status, progress) last logged at INFO
            logged_at = 0.0
            while True:
                outcome = waiter.before_poll(time.time())
                if outcome is None:
                    step = await self._poll(hook, account, waiter)
                    if isinstance(step, PollAgain):
                        if step.warning:
                            self.log.warning("%s", step.warning)
                        now = time.monotonic()
                        seen = waiter.last if waiter.consecutive_errors == 0 else None
                        state = (seen.status, seen.progress) if seen is not None else None
                        # Failed polls, a new status or progress, and a line every few minutes at
                        # INFO; polls that only say "still the same" at DEBUG.
                        if state is None or state != logged or now - logged_at >= QUIET_POLL_LOG_INTERVAL:
                            self.log.info("%s; next poll in %.1fs", step.line, step.seconds)
                            logged, logged_at = state, now
                        else:
                            self.log.debug("%s; next poll in %.1fs", step.line, step.seconds)
                        await asyncio.sleep(_on_grid(step.seconds, self.deadline))
                        continue
                    outcome = step
                payload = event_payload(outcome, waiter, account_id=account, now=time.time())
                self.log.info("Wait ended (%s): %s", outcome.kind, payload["summary"])
                yield TriggerEvent(payload)
                return

    async def _poll(self, hook: CanvasHook, account: str, waiter: Waiter) -> Outcome | PollAgain:
        left = waiter.time_left(time.time())
        try:
            # A request still retrying at the deadline must not hold the timeout back.
            report = await _within(hook.aget_report(self.report, self.report_id, account), left)
        except asyncio.TimeoutError:
            return waiter.before_poll(time.time()) or waiter.failed(
                TimeoutError("the status request did not finish in time"), time.time()
            )
        except ReportNotFoundError:
            return waiter.gone(time.time())
        except Exception as exc:
            return waiter.failed(exc, time.time())
        return waiter.seen(report, time.time())

    async def on_kill(self) -> None:
        """A user marked the deferred task failed or success, or cleared it: stop the report.

        Airflow 3.3+ calls this only for user actions, never when a triggerer restarts or the
        trigger moves to another triggerer (those cancel ``run()`` and call ``cleanup()``, which
        leave the report alone so the wait can resume). Older versions never call it.
        """
        from airflow_provider_canvas_reports.transport.aio import hold_shared_sessions

        hook = self._hook()
        try:
            # Within the triggerer's own bound ([triggerer] on_kill_timeout, 30 s by default), so
            # that giving up is logged here rather than cut short silently.
            async with hold_shared_sessions():
                result = await asyncio.wait_for(
                    hook.acancel_report(self.report, self.report_id, self.account_id), ON_KILL_TIMEOUT
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
        else:
            self.log.info(
                "Cancelled Canvas report %s #%s because the task was killed: Canvas now says '%s'.",
                self.report,
                self.report_id,
                result.status,
            )


async def _within(awaitable: Awaitable[T], seconds: float | None) -> T:
    """`awaitable`'s result, or asyncio.TimeoutError after `seconds` (None: no bound).

    `asyncio.wait_for` wraps the awaitable in a new task on Python < 3.12; `asyncio.timeout`
    (3.11+) only arms a timer, which matters when thousands of triggers poll.
    """
    if seconds is None:
        return await awaitable
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    return await asyncio.wait_for(awaitable, seconds)


def _on_grid(seconds: float, deadline: float | None) -> float:
    """`seconds`, stretched to end on the next WAKE_GRID tick of the loop's clock (see WAKE_GRID).

    Short sleeps stay exact, and so does a sleep the stretch would carry past the deadline.
    """
    if seconds < COALESCE_FROM:
        return seconds
    now = asyncio.get_running_loop().time()
    stretched = max(seconds, math.ceil((now + seconds) / WAKE_GRID) * WAKE_GRID - now)
    if deadline is not None and time.time() + stretched >= deadline:
        return seconds
    return stretched
