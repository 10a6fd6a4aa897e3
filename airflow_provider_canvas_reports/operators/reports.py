"""Operators for Canvas account reports."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowException, BaseOperator, conf

from airflow_provider_canvas_reports.canvas.polling import (
    DEFAULT_MAX_CONSECUTIVE_ERRORS,
    DEFAULT_MAX_POLL_INTERVAL,
    PollPolicy,
)
from airflow_provider_canvas_reports.links.canvas import XCOM_KEY, CanvasReportsLink, remember_link
from airflow_provider_canvas_reports.operators._arguments import count, duration, flag, retry_policy
from airflow_provider_canvas_reports.operators._common import (
    AUTO,
    DEFAULT_CONN_ID,
    XCOM_REPORT_ID,
    ExpectedRunTime,
    ReportWaitError,
    ReportWaitTimeoutError,
    WaitSettings,
    cancel_on_kill,
    conclude,
    expected_run_time_setting,
    next_poll_at,
    then,
    wait_in_worker,
)
from airflow_provider_canvas_reports.operators._turns import take_turn

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_canvas_reports.canvas.report import Report
    from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
    from airflow_provider_canvas_reports.hooks.canvas import CanvasHook

# Every DAG parse imports this module: the hook, Canvas's parameter rules, errors and Report model
# load when a task runs (inside the methods), so that a parse pays for the constructor only.

# ---------------------------------------------------------------------------------------------
# StartAccountReportOperator
# ---------------------------------------------------------------------------------------------

# Key in Airflow 3.3's task_state_store. Renaming it breaks in-flight retries of deployed tasks.
STATE_KEY = "canvas_report"
DEFAULT_TIMEOUT = timedelta(hours=24)
# Pauses (seconds) between index checks after a start whose answer was lost.
LOST_START_RECHECKS = (2.0, 5.0, 10.0)
# Canvas stamps created_at to the second and its clock is not ours: widen the reconcile window.
RECONCILE_MARGIN = timedelta(seconds=15)
# A failed report stays failed; a retry of the start task passes over it and starts another.
RESTART_HINT = "Retrying or clearing this task starts a new report."


class StartAccountReportOperator(BaseOperator):
    """Start a Canvas account report; optionally wait for it (deferring when ``deferrable``).

    Returns (XCom ``return_value``) the Report JSON as Canvas sent it, less the download verifier
    (it opens the file without a token: ``attachment.url``'s query, ``attachment.uuid`` and
    fields that carry it; see ``Report.as_json``): the started report, or
    with ``wait_for_completion`` the final one. It also pushes ``report_id`` and
    ``canvas_reports_url`` right after the start, before any waiting.

    Never starts a second report for one task's tries:

    - Airflow 3.3+: the report id goes into ``task_state_store`` right after the start; a retry
      reconnects to a report still running, returns a completed one, and starts afresh only
      after one that failed (``error``, ``aborted``, ``deleted``). The id stays after success,
      as for every durable Airflow task: clearing a successful task returns its report again
      unless ``[state_store] clear_on_success`` is set (the id could otherwise be forgotten
      before the success is recorded, and a crash in that gap would start a duplicate).
    - Every version: when a start's answer is lost (the POST may have created the report), and
      before starting on a retry where ``task_state_store`` is missing (Airflow < 3.3), it looks
      in the report index (newest first) for a run of the same type with the same parameters,
      created since the try's POST (lost answer) or the DAG run's start (retry), not failed,
      and not started by another task instance, and adopts it. Each start sends the parameter
      ``airflow_task`` (``<dag_id>/<run_id>/<task_id>[<map_index>]``), which Canvas keeps and
      echoes, so the report of another run of this DAG (catchup, backfill) is never taken for
      this one's. Below 3.3 this also means that clearing a successful task while its DAG run
      is still running returns its report again; clearing a finished run restarts it, and the
      search, which counts from the run's start, then starts a new report.

    :param report: the report type, e.g. ``provisioning_csv`` (templated).
    :param parameters: report parameters, e.g. ``{"users": True, "enrollment_term_id":
        "sis_term_id:2026FA"}`` (templated).
    :param wait_for_completion: wait until the report ends; ``error``, ``aborted`` and
        ``deleted`` fail the task with Canvas's own reason.
    :param deferrable: wait in the triggerer instead of the worker (default from
        ``[operators] default_deferrable``).
    :param poll_interval: seconds between status polls. With ``adaptive_polling`` (default)
        this is the *shortest* interval: completion is noticed within max(``poll_interval``, 5%
        of the run time), with as few polls as that allows, up to ``max_poll_interval`` apart.
    :param adaptive_polling: see :mod:`airflow_provider_canvas_reports.canvas.polling`;
        False polls exactly every ``poll_interval``.
    :param max_poll_interval: the longest interval adaptive polling may use.
    :param expected_run_time: how long the report is expected to run (seconds or timedelta).
        With it, adaptive polling stretches its intervals while the report cannot be finished
        yet: a run is taken to last at least 3/4 of it. ``"auto"`` (default): the run time of
        the most recent complete run of this report with the same parameters: the ``last_run``
        of the available-reports list ``validate_parameters`` read, when it is such a run (no
        request), else from the first page of the report index (one request when the wait
        starts; if it fails or finds nothing, the wait goes on without). None: no expectation;
        then completion is noticed within max(``poll_interval``, 5% of the run time), at the
        cost of more polls.
    :param timeout: how long to wait (seconds or timedelta, default 24 hours; there is no
        "no limit": ``None`` is refused). At the deadline the report is cancelled in Canvas
        (aborted if running, deleted if compiling; a queued one, which Canvas cannot stop, is
        left for a retry to reconnect to) and the task fails saying so.
    :param max_consecutive_errors: failed polls in a row (each already retried by the client)
        tolerated before the wait fails.
    :param canvas_conn_id: the Canvas connection (templated).
    :param account_id: the account (templated); default: the connection's, else ``self``.
    :param validate_parameters: check the report and its parameters against the account's
        available reports before starting (unknown report, unknown or missing required
        parameter: a clear error and nothing started).
    :param skip_message: ask Canvas not to e-mail the token's user when the report is done.
    :param canvas_retry_policy: the client's bounds for retries on throttling, 5xx and resets.
    :param lost_start_rechecks: pauses (seconds) between further looks in the report index after a
        start whose answer was lost and which the first look did not find (Canvas may still be
        handling it); then the try fails without starting another report.
    :param start_spacing: start tasks released together take turns for their first request to
        Canvas: each waits its place times this (seconds or timedelta, default 0.2 s). Its place is
        its rank, by task_id, among the DAG's start tasks with the same upstream tasks, plus its map
        index when mapped (``.expand()``), counted modulo 50: at most 9.8 s at the default. Canvas's
        throttle admits about 14 requests at once per token, so tasks released together would
        otherwise send most of their first requests into a full bucket. Then, tasks of any DAG
        on one worker host take turns on the token: each takes the next turn, this long after the
        last one taken on the host (a ledger file in a private directory of the temp dir). A task
        alone (no other start task beside it, unmapped, none just now on its host) never waits;
        0 turns both off.
    :param start_jitter: wait a further random 0 to ``start_jitter`` seconds before the first
        request (default 0: none), for start tasks in *different* DAGs on one token released in
        the same instant on different hosts, which cannot know of each other (see BENCHMARKS.md).
    """

    template_fields: Sequence[str] = ("report", "parameters", "account_id", "canvas_conn_id")
    template_fields_renderers = {"parameters": "json"}
    # This task instance's name, sent with the start as the `airflow_task` parameter (set by execute).
    _started_by: str | None = None
    operator_extra_links = (CanvasReportsLink(),)
    ui_color = "#e4f0e8"

    def __init__(
        self,
        *,
        report: str,
        parameters: Mapping[str, Any] | None = None,
        wait_for_completion: bool = False,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poll_interval: timedelta | float = 60.0,
        adaptive_polling: bool = True,
        max_poll_interval: timedelta | float = DEFAULT_MAX_POLL_INTERVAL,
        expected_run_time: ExpectedRunTime = AUTO,
        timeout: timedelta | float = DEFAULT_TIMEOUT,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
        canvas_conn_id: str = DEFAULT_CONN_ID,
        account_id: str | int | None = None,
        validate_parameters: bool = True,
        skip_message: bool = True,
        canvas_retry_policy: RetryPolicy | Mapping[str, float] | None = None,
        lost_start_rechecks: Sequence[float] = LOST_START_RECHECKS,
        start_jitter: timedelta | float = 0.0,
        start_spacing: timedelta | float = 0.2,
        **kwargs: Any,
    ) -> None:
        inherited = (kwargs.get("default_args") or {}).get("params") or {}
        super().__init__(**kwargs)
        if parameters is None and (own := _own_params(self, inherited)):
            # `params` is Airflow's own argument (values for templates), so the mistake is silent:
            # the report would start with none of the parameters meant for it.
            raise ValueError(
                "StartAccountReportOperator takes the report's parameters as parameters={...}; "
                f"params= ({', '.join(sorted(own))}) is Airflow's template values. Rename it, or pass "
                "parameters={} beside params if the report takes none."
            )
        self.report = report
        self.parameters = parameters
        self.wait_for_completion = flag(wait_for_completion, name="wait_for_completion")
        self.deferrable = flag(deferrable, name="deferrable")
        self.canvas_conn_id = canvas_conn_id
        self.account_id = account_id
        self.validate_parameters = flag(validate_parameters, name="validate_parameters")
        self.skip_message = flag(skip_message, name="skip_message")
        self.canvas_retry_policy = retry_policy(canvas_retry_policy)
        self.lost_start_rechecks = tuple(
            duration(pause, name="lost_start_rechecks", allow_zero=True) for pause in lost_start_rechecks
        )
        self.expected_run_time = expected_run_time
        self.start_jitter = duration(start_jitter, name="start_jitter", allow_zero=True)
        self.start_spacing = duration(start_spacing, name="start_spacing", allow_zero=True)
        self.wait = WaitSettings(
            policy=PollPolicy(
                duration(poll_interval, name="poll_interval", default=60.0),
                flag(adaptive_polling, name="adaptive_polling"),
                duration(max_poll_interval, name="max_poll_interval", default=DEFAULT_MAX_POLL_INTERVAL),
            ),
            timeout=_deadline(timeout),
            max_consecutive_errors=count(max_consecutive_errors, name="max_consecutive_errors"),
            retry_policy=self.canvas_retry_policy,
            expected_run_time=expected_run_time_setting(expected_run_time),
        )
        # The report this try waits for in the worker: on_kill cancels it.
        # (report, id, account, task instance) while the worker waits: what on_kill stops.
        self._waiting_for: tuple[str, int, str, Any] | None = None
        # Earlier tries' reports with other parameters, already named in the log as left running.
        self._told_left_running: set[int] = set()

    @cached_property
    def hook(self) -> CanvasHook:
        from airflow_provider_canvas_reports.hooks.canvas import CanvasHook

        return CanvasHook(self.canvas_conn_id, retry_policy=self.canvas_retry_policy)

    # -- execute ---------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_canvas_reports.canvas import parameters as canvas_parameters

        remember_link(self, None)  # until a report is started
        hook = self.hook
        account = hook.account(self.account_id)
        sent = canvas_parameters.prepare(self.parameters, skip_message=self.skip_message)
        if canvas_parameters.STARTED_BY in sent:
            from airflow_provider_canvas_reports.canvas.errors import InvalidParametersError

            raise InvalidParametersError(
                f"The report parameter '{canvas_parameters.STARTED_BY}' is this operator's: it names the "
                "task instance that started the report, so that a retry finds its own. Remove it from "
                "parameters."
            )
        store = _state_store(context)
        saved, store_ok = _store_get(store, self.log)
        self._started_by = _task_instance_name(context)

        take_turn(
            self,
            context,
            kind=StartAccountReportOperator,
            spacing=self.start_spacing,
            jitter=self.start_jitter,
            key=hook.turn_key,
        )
        # The newest run of this report when the list was read: it may give the wait its prior.
        last_run: Report | None = None
        report = self._resume_from_saved(saved, hook, account, sent)
        if report is None:
            if self.validate_parameters:
                last_run = hook.validate_report(self.report, sent, account)[1].last_run
            # An earlier try may have started a report and died before saving its id: after the
            # start's answer was lost, or between the answer and the save. Without task_state_store
            # (Airflow < 3.3) nothing is ever saved. Either way only the report index can tell.
            if _try_number(context) > 1 and (not store_ok or saved is None):
                since = _dag_run_start(context)
                report = self._reconcile(hook, account, sent, since, why="this is a retry")
            if report is None:
                report = self._start(hook, account, sent)
        self._remember(context, store, report, account)

        if not self.wait_for_completion:
            return report.as_json()
        return self._wait(hook, account, report, last_run=last_run, ti=context["ti"])

    def _start(self, hook: CanvasHook, account: str, sent: dict[str, Any]) -> Report:
        from airflow_provider_canvas_reports.canvas.errors import StartOutcomeUnknownError
        from airflow_provider_canvas_reports.canvas.parameters import STARTED_BY

        posted_at = datetime.now(timezone.utc)
        try:
            # Named after this task instance, so that the index tells its report from a sibling's.
            signed = {**sent, STARTED_BY: self._started_by} if self._started_by else sent
            report = hook.start_report(
                self.report, signed, account_id=account, skip_message=self.skip_message
            )
        except StartOutcomeUnknownError as exc:
            self.log.warning("The start's answer was lost: %s Looking in the report index.", exc)
            found = self._reconcile(hook, account, sent, posted_at, why="the start's answer was lost")
            # Canvas may still be handling a request whose answer timed out: look again a few
            # times, up to about one read timeout, before giving up on it.
            for pause in self.lost_start_rechecks:
                if found is not None:
                    break
                time.sleep(min(pause, hook.retry_policy.read_timeout))
                found = self._reconcile(hook, account, sent, posted_at, why="the start's answer was lost")
            if found is None:
                # Starting again could duplicate a report Canvas is still creating; a retry of
                # this task looks in the index again before it starts anything.
                raise AirflowException(
                    f"{exc} The report index shows no matching {self.report} report created since the "
                    "request, so none was adopted. Retrying or clearing this task looks in the index "
                    f"again before it starts one (the account's reports: {hook.reports_page_url(account)})."
                ) from None
            return found
        self.log.info(
            "Started Canvas report %s #%s on account %s (status %s).",
            report.report,
            report.id,
            account,
            report.status,
        )
        return report

    def _reconcile(
        self, hook: CanvasHook, account: str, sent: Mapping[str, Any], since: datetime | None, *, why: str
    ) -> Report | None:
        """The newest run of this report with these parameters created since `since` that has not
        failed (a failed one is passed over for an older one), or None."""
        from airflow_provider_canvas_reports.canvas import parameters as canvas_parameters
        from airflow_provider_canvas_reports.canvas.report import Phase

        if since is None:
            return None
        bound = since - RECONCILE_MARGIN
        for candidate in hook.list_reports(self.report, account):
            if candidate.created_at is None:
                continue
            if candidate.created_at < bound:
                break  # newest first: everything after this is older still
            if candidate.phase is Phase.FAILURE:
                continue
            theirs = canvas_parameters.started_by(candidate)
            if not canvas_parameters.same_parameters(candidate, sent):
                if theirs is not None and theirs == self._started_by:
                    self._left_running(hook, account, candidate)
                continue
            # Another task instance's report (another run of this DAG: catchup, backfill): never ours.
            # One that names none was started by hand or by an older version: taken as before.
            if theirs is not None and theirs != self._started_by:
                continue
            self.log.warning(
                "Adopting Canvas report %s #%s (status %s, created %s) instead of starting another, because "
                "%s and it has the same type and parameters and was created since %s.",
                candidate.report,
                candidate.id,
                candidate.status,
                candidate.created_at.isoformat(),
                why,
                bound.isoformat(),
            )
            return candidate
        self.log.info("No matching %s report created since %s in the index.", self.report, bound.isoformat())
        return None

    def _resume_from_saved(
        self, saved: Any, hook: CanvasHook, account: str, sent: Mapping[str, Any]
    ) -> Report | None:
        """Airflow 3.3+: the report an earlier try of this task started, unless it failed."""
        from airflow_provider_canvas_reports.canvas import parameters as canvas_parameters
        from airflow_provider_canvas_reports.canvas.errors import ReportNotFoundError
        from airflow_provider_canvas_reports.canvas.report import Phase

        if not isinstance(saved, Mapping) or saved.get("report") != self.report:
            return None
        if str(saved.get("account_id")) != account or not str(saved.get("report_id", "")).isdigit():
            return None
        report_id = int(saved["report_id"])
        try:
            current = hook.get_report(self.report, report_id, account)
        except ReportNotFoundError:
            self.log.warning(
                "The report an earlier try started (#%s) is gone from Canvas; starting afresh.", report_id
            )
            return None
        if not canvas_parameters.same_parameters(current, sent):
            self.log.warning(
                "The report an earlier try started (#%s) has other parameters than this try's; starting afresh.",
                report_id,
            )
            self._left_running(hook, account, current)
            return None
        if current.phase is Phase.FAILURE:
            self.log.warning(
                "The report an earlier try started failed (%s); starting afresh.", current.failure_message()
            )
            return None
        if current.phase is Phase.SUCCESS:
            self.log.info(
                "The report an earlier try started (#%s) is complete; not starting another.", report_id
            )
        else:
            self.log.info(
                "Reconnecting to the report an earlier try started (#%s, status %s) instead of starting another.",
                report_id,
                current.status,
            )
        return current

    def _left_running(self, hook: CanvasHook, account: str, report: Report) -> None:
        """Say that an earlier try's report, which this try will not wait for (its parameters were
        edited since), is still running in Canvas: nothing else will ever cancel it."""
        from airflow_provider_canvas_reports.canvas.report import Phase

        if report.phase is not Phase.WAITING or report.id in self._told_left_running:
            return
        self._told_left_running.add(report.id)
        self.log.warning(
            "Canvas report %s #%s, which an earlier try of this task started with other parameters, is "
            "still %s and is left to run; cancel it on the account's reports page if it is no longer "
            "needed: %s",
            report.report or self.report,
            report.id,
            report.status,
            hook.reports_page_url(account),
        )

    def _remember(self, context: Context, store: Any, report: Report, account: str) -> None:
        """Persist the id for retries, and push what downstream tasks and the link need."""
        _store_set(
            store,
            {"report_id": report.id, "report": report.report or self.report, "account_id": account},
            self.log,
        )
        url = self.hook.reports_page_url(account)
        remember_link(self, url)
        # The link's key goes in any case: a deferred wait resumes in a new try, whose link
        # reads it (Airflow logs an error for a missing one). The page's URL carries no secret.
        context["ti"].xcom_push(key=XCOM_KEY, value=url)
        if self.do_xcom_push:
            context["ti"].xcom_push(key=XCOM_REPORT_ID, value=report.id)

    # -- waiting ---------------------------------------------------------------------------
    def _wait(
        self,
        hook: CanvasHook,
        account: str,
        report: Report,
        *,
        last_run: Report | None = None,
        ti: Any,
    ) -> dict[str, Any]:
        from airflow_provider_canvas_reports.canvas.errors import ReportFailedError
        from airflow_provider_canvas_reports.canvas.report import Phase

        if report.phase is Phase.SUCCESS:
            return report.as_json()
        if report.phase is Phase.FAILURE:
            raise ReportFailedError(then(report.failure_message(), RESTART_HINT))
        started = time.time()
        # An adopted report may itself be last_run: the rule never takes the run waited for.
        expected = self.wait.expected(
            hook,
            report=self.report,
            report_id=report.id,
            account=account,
            log=self.log,
            waited_for=report,
            last_run=last_run,
        )
        waiter = self.wait.waiter(
            report=self.report, report_id=report.id, started_at=started, expected_run_time=expected
        )
        if self.deferrable:
            # The start (or the look that found the report) is the wait's first poll.
            seen_at = time.time()
            self.defer(
                trigger=self.wait.trigger(
                    conn_id=self.canvas_conn_id,
                    report=self.report,
                    report_id=report.id,
                    account_id=account,
                    started_at=started,
                    expected_run_time=expected,
                    first_poll_at=next_poll_at(waiter.seen(report, seen_at), seen_at),
                    last_status=report.status,
                ),
                method_name="execute_complete",
                kwargs={"report_id": report.id},
                # The trigger carries the deadline: a framework timeout would skip execute_complete
                # and leave the report running in Canvas (apache/airflow#61467).
                timeout=None,
            )
        self._waiting_for = (self.report, report.id, account, ti)
        payload = wait_in_worker(hook, waiter, account, self.log, first=report)
        # Kept until the wait returns: Airflow calls on_kill after its execution_timeout has
        # already unwound the wait.
        self._waiting_for = None
        return self._conclude(payload, report.id)

    def execute_complete(
        self, context: Context, event: Any = None, report_id: int | None = None
    ) -> dict[str, Any]:
        """Resume after the trigger: validate its event, return the final Report or fail."""
        return self._conclude(event, report_id)

    def _conclude(self, payload: Any, report_id: int | None) -> dict[str, Any]:
        from airflow_provider_canvas_reports.canvas.errors import ReportFailedError

        return conclude(
            payload,
            hook=self.hook,
            report=self.report,
            report_id=report_id,
            log=self.log,
            on_failure=ReportFailedError,
            on_timeout=ReportWaitTimeoutError,
            on_error=ReportWaitError,
            after_failure=RESTART_HINT,
            after_error="Retrying or clearing this task reconnects to it.",
        )

    def on_kill(self) -> None:
        """Killed while waiting in the worker: stop the report in Canvas too, unless it is still
        wanted (`cancel_on_kill`)."""
        if self._waiting_for is None:
            return
        report, report_id, account, ti = self._waiting_for
        cancel_on_kill(self.hook, report, report_id, account, ti, self.log)


def _deadline(timeout: Any) -> float:
    """The wait's timeout in seconds. None is refused rather than read as the default: written
    out, it reads as "no limit", and a wait without a deadline is what this provider never does."""
    if timeout is None:
        raise TypeError(
            "timeout=None: every wait has a deadline, at which the report is cancelled in Canvas. "
            f"Give a duration (seconds or a timedelta; the default is "
            f"{DEFAULT_TIMEOUT.total_seconds() / 3600:g} hours), e.g. timedelta(days=2) for a long report."
        )
    return duration(timeout, name="timeout")


def _own_params(task: BaseOperator, inherited: Mapping[str, Any]) -> set[str]:
    """The names in the task's `params` given to this task itself. Airflow merges in those of its
    DAG and of every level's default_args (DAG, TaskGroup, the task's), which arrive as
    `inherited`: those are template values meant for many tasks, not a misnamed `parameters`."""
    dag = task.dag if task.has_dag() else None
    return set(task.params) - set(dag.params if dag is not None else ()) - set(inherited)


# -- task state helpers (task_state_store exists from Airflow 3.3) ----------------------------
def _state_store(context: Context) -> Any:
    return context.get("task_state_store")  # type: ignore[misc]


def _store_get(store: Any, log: Any) -> tuple[Any, bool]:
    """The saved value, and whether the store could be read at all."""
    if store is None:
        return None, False
    try:
        return store.get(STATE_KEY), True
    except Exception as exc:  # the store is an aid; the index reconcile then protects the retry
        log.warning("Could not read task_state_store: %s", exc)
        return None, False


def _store_set(store: Any, value: dict[str, Any], log: Any) -> None:
    if store is None:
        return
    try:
        store.set(STATE_KEY, value)
    except Exception as exc:
        log.warning("Could not save the report id in task_state_store: %s", exc)


def _task_instance_name(context: Context) -> str | None:
    """DAG, run, task and map index of this task instance: the same for all its tries."""
    ti = context.get("ti")  # type: ignore[misc]
    parts = [getattr(ti, name, None) for name in ("dag_id", "run_id", "task_id")]
    if not all(isinstance(part, str) and part for part in parts):
        return None
    map_index = getattr(ti, "map_index", None)
    suffix = f"[{map_index}]" if isinstance(map_index, int) and map_index >= 0 else ""
    return "/".join(parts) + suffix  # type: ignore[arg-type]


def _try_number(context: Context) -> int:
    ti = context.get("ti")  # type: ignore[misc]
    try:
        return int(getattr(ti, "try_number", 1) or 1)
    except (TypeError, ValueError):
        return 1


def _dag_run_start(context: Context) -> datetime | None:
    dag_run = context.get("dag_run")  # type: ignore[misc]
    for name in ("start_date", "run_after", "logical_date"):
        value = getattr(dag_run, name, None)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return None


# ---------------------------------------------------------------------------------------------
# End of StartAccountReportOperator
# ---------------------------------------------------------------------------------------------

# DownloadReportOperator is implemented in download.py; the public contract names this module.
from airflow_provider_canvas_reports.operators.download import DownloadReportOperator  # noqa: E402

__all__ = ["DownloadReportOperator", "StartAccountReportOperator"]
