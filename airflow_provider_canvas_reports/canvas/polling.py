"""How often to ask Canvas about a report, and how long it has left: pure functions, no I/O.

The trigger (deferrable mode), the sensor (poke and reschedule modes) and the start operator's
worker-side wait all use these rules, so the three waits behave the same.

The promise of adaptive polling (``adaptive=True``, the default): a report that completes is
seen within max(``poll_interval``, 5% of its run time) of completing, whatever the shape of its
progress, as long as it takes at least ``PRIOR_FLOOR`` (3/4) of the expected run time, when
one is given. Within that promise it polls as rarely as it can:

- the next poll is planned against the *earliest finish still possible*: a queued report may
  start the moment after a poll, and a running one (``started_at`` gives its exact run time so
  far) may finish the moment after; it then waits until that earliest finish plus the allowed
  margin, max(``poll_interval``, 5% of that run time);
- without an expected run time, nothing rules out a finish right after the poll: the interval
  is ``poll_interval`` while queued and max(``poll_interval``, 5% of the run time so far) while
  running (a bound that holds for any progress shape);
- with one (``expected_run_time``: the previous run of the same report took about as long, see
  ``previous_run``), the report cannot finish before ``PRIOR_FLOOR`` x expected after it starts,
  so a queued report is polled about every 3/4 of its expected run time and a running one is
  next polled just after that point;
- progress may only bring a poll *forward*: when the progress rate predicts a finish earlier
  than the expected run time allows (the expectation is wrong), the prediction takes its place.
  Progress never pushes a poll later, because Canvas's progress is not linear (it moves table by
  table, and can sit at one value until the end);
- always within ``[poll_interval, max_poll_interval]``, and never past the deadline.

The policy needs no state between polls beyond the report itself (status, ``started_at``,
progress), so it survives a triggerer restart or a sensor reschedule. Timestamps are Canvas's:
the run time so far assumes Canvas's clock and ours agree within a few seconds (NTP).

With ``adaptive=False`` the interval is exactly ``poll_interval`` (only the deadline cuts it).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

# Every DAG parse loads this module (the operators check their intervals with PollPolicy): the
# Report model, Canvas's errors and the parameter rules are not needed for that, so they load
# when a wait runs.
from airflow_provider_canvas_reports.canvas.states import WAITING_STATES, Phase, classify

if TYPE_CHECKING:
    from airflow_provider_canvas_reports.canvas.report import Report

DEFAULT_MAX_POLL_INTERVAL = 300.0
# The allowed delay in noticing completion, as a fraction of the run time (and never under poll_interval).
OVERSHOOT_FRACTION = 0.05
# A run takes at least this fraction of what is expected of it (night-to-night variation of a
# report's run time is about +-20%; 3/4 leaves a margin for a run a third faster than the last).
PRIOR_FLOOR = 0.75
RUNNING_STATES = frozenset({"running", "compiling"})
# Canvas timestamps have whole seconds and another clock: a rate from started_at needs a long span.
STARTED_AT_MIN_SPAN = 10.0
# Canvas stamps started_at in whole seconds (truncated), so a run time read from it may be up to
# this much longer than the run really is.
STARTED_AT_RESOLUTION = 1.0
# A poll that changes nothing (same status and progress) is logged at INFO at most this often,
# at DEBUG otherwise: a report queued for hours still shows in the task log that it is being
# watched, without one line per poll (formatting a line costs ~65 us, a tenth of a poll).
QUIET_POLL_LOG_INTERVAL = 300.0


@dataclass(frozen=True)
class PollPolicy:
    """When to poll next. All fields are plain numbers (they travel in trigger kwargs)."""

    poll_interval: float
    adaptive: bool = True
    max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL

    def __post_init__(self) -> None:
        if not math.isfinite(self.poll_interval) or self.poll_interval <= 0:
            raise ValueError(
                f"poll_interval must be a positive number of seconds, not {self.poll_interval!r}"
            )
        if not math.isfinite(self.max_poll_interval) or self.max_poll_interval <= 0:
            raise ValueError(
                f"max_poll_interval must be a positive number of seconds, not {self.max_poll_interval!r}"
            )

    @property
    def ceiling(self) -> float:
        # A max below the floor would invert the clamp; the floor wins, as documented.
        return max(self.poll_interval, self.max_poll_interval)

    def margin(self, run_time: float) -> float:
        """How late a report that runs `run_time` seconds may be noticed: the promise."""
        return max(self.poll_interval, OVERSHOOT_FRACTION * max(0.0, run_time))

    def next_interval(
        self,
        *,
        status: str | None,
        estimate: Estimate | None = None,
        expected_run_time: float | None = None,
    ) -> float:
        """Seconds until the next poll, given the status just seen.

        :param estimate: what the polls so far say about the run (time run so far, progress
            rate), once the report has been seen running.
        :param expected_run_time: seconds the report is expected to run (a prior, e.g. the
            previous run's run time); None when unknown.
        """
        if not self.adaptive or status not in WAITING_STATES:
            # A status Canvas did not have when this was written may be any phase of a run, its
            # last included: nothing is known about when it ends, so poll at the base interval.
            return self.poll_interval
        running = status in RUNNING_STATES and estimate is not None
        ran = estimate.running_for if running and estimate is not None else 0.0
        finish = earliest_finish(ran, expected_run_time, estimate if running else None)
        # A report that may finish right now has run at least `ran` less the timestamps' rounding:
        # the promise holds for that shortest run.
        shortest = finish - STARTED_AT_RESOLUTION if running and finish <= ran else finish
        if running and estimate is not None:
            # The earliest finish counts the run from its earliest possible start; the promise is
            # for the run as long as it really is, which may be shorter by that much.
            shortest = max(0.0, shortest - estimate.start_uncertainty)
        target = (finish - ran) + self.margin(shortest)
        return min(self.ceiling, max(self.poll_interval, target))


def earliest_finish(ran: float, expected_run_time: float | None, estimate: Estimate | None) -> float:
    """The shortest total run time still possible for a report that has run `ran` seconds.

    Queued reports have run 0 s (they may start right after the poll). Without an expected run
    time that is `ran` itself: the report may finish the moment after the poll.
    """
    floor = max(0.0, ran)
    if expected_run_time is None or not expected_run_time > 0:
        return floor
    lowest = PRIOR_FLOOR * expected_run_time
    if estimate is not None and estimate.remaining is not None:
        # Progress may show that the expectation is wrong (this run is faster): believe it then.
        lowest = min(lowest, PRIOR_FLOOR * (estimate.running_for + estimate.remaining))
    return max(floor, lowest)


def check_expected_run_time(value: float | None) -> float | None:
    """An expected run time as positive finite seconds, or None."""
    if value is None:
        return None
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expected_run_time must be a positive number of seconds, not {value!r}")
    return seconds


def sleep_for(interval: float, *, now: float, deadline: float | None) -> float:
    """The interval, cut so that the poll after it does not land past the deadline."""
    if deadline is None:
        return max(0.0, interval)
    return max(0.0, min(interval, deadline - now))


@dataclass(frozen=True)
class Estimate:
    """What the polls say: seconds run so far, progress rate in percent per second and seconds
    left (None if unknown)."""

    progress: int | None
    running_for: float
    rate: float | None
    remaining: float | None
    # How much shorter the run so far may really be (no started_at: it began somewhere between
    # the last poll that saw it queued and the first that saw it running).
    start_uncertainty: float = 0.0


@dataclass
class ProgressTracker:
    """Progress rate and time left from the polls seen so far (times are epoch seconds).

    The rate comes from the first and the latest running observations in this process. Before
    progress moves between two of them (a trigger's first poll, a rescheduled sensor's only
    poke), it falls back to Canvas's own ``started_at``: progress over the time since then, once
    that is long enough for Canvas's whole-second timestamps and clock skew not to matter.

    The time run so far comes from ``started_at``; without it, from the last poll that saw the
    report queued (the earliest start possible, for the earliest finish), and the margin of the
    promise is then taken for the shortest run possible (``start_uncertainty``).
    """

    first_at: float | None = None
    first_progress: int | None = None
    last_at: float | None = None
    last_progress: int | None = None
    started_at: float | None = None
    queued_at: float | None = None

    def observe(self, report: Report, now: float) -> None:
        if report.started_at is not None:
            self.started_at = report.started_at.timestamp()
        if report.status == "created":
            self.queued_at = now
        if report.status not in RUNNING_STATES:
            return
        # Without progress there is no rate, but the run time so far still matters.
        progress = report.progress if report.progress is not None else 0
        if self.first_at is None or self.first_progress is None:
            self.first_at, self.first_progress = now, progress
        self.last_at, self.last_progress = now, progress

    def estimate(self, now: float) -> Estimate | None:
        """None until a running report has been seen."""
        if self.last_at is None or self.last_progress is None:
            return None
        progress = self.last_progress
        uncertainty = 0.0
        if self.started_at is not None and self.started_at <= now:
            begun: float | None = self.started_at
        else:
            begun = self.queued_at if self.queued_at is not None else self.first_at
            if self.queued_at is not None and self.first_at is not None:
                uncertainty = max(0.0, self.first_at - self.queued_at)
        running_for = max(0.0, now - (begun if begun is not None else now))
        rate: float | None = None
        if (
            self.first_at is not None
            and self.first_progress is not None
            and progress > self.first_progress
            and self.last_at > self.first_at
        ):
            rate = (progress - self.first_progress) / (self.last_at - self.first_at)
        elif (
            progress > 0
            and self.started_at is not None
            and self.last_at - self.started_at >= STARTED_AT_MIN_SPAN
        ):
            rate = progress / (self.last_at - self.started_at)
        remaining: float | None = None
        if rate is not None and rate > 0:
            remaining = max(0.0, (100 - progress) / rate - (now - self.last_at))
        return Estimate(
            progress=progress,
            running_for=running_for,
            rate=rate,
            remaining=remaining,
            start_uncertainty=uncertainty,
        )


# -- the expected run time (a prior), from an earlier run ------------------------------------------
@dataclass(frozen=True)
class PreviousRun:
    """An earlier complete run of the same report: its id and how long it ran (seconds)."""

    report_id: int
    run_time: float


def run_time_of(report: Report) -> float | None:
    """How long a complete run took: Canvas's ``run_time``, else ``ended_at - started_at``."""
    if report.run_time is not None and math.isfinite(report.run_time) and report.run_time > 0:
        return report.run_time
    if report.started_at is not None and report.ended_at is not None:
        seconds = (report.ended_at - report.started_at).total_seconds()
        return seconds if seconds > 0 else None
    return None


def previous_run(runs: Iterable[Report], report_id: int) -> PreviousRun | None:
    """The most recent complete run of a report in (a page of) its index, newest first.

    Only runs with the parameters of run `report_id` count (a users-only export runs in a
    fraction of the time of a full one); that run shows them when it is on the page (it is the
    newest, or nearly). When it is not, any complete run counts.
    """
    from airflow_provider_canvas_reports.canvas.parameters import as_sent, same_parameters

    runs = list(runs)
    ours = next((run for run in runs if run.id == report_id), None)
    parameters = as_sent(ours) if ours is not None else None
    for run in runs:
        if run.id == report_id or run.status != "complete":
            continue
        if parameters is not None and not same_parameters(run, parameters):
            continue
        took = run_time_of(run)
        if took is not None:
            return PreviousRun(run.id, took)
    return None


def listed_previous_run(waited_for: Report, last_run: Report | None) -> PreviousRun | None:
    """The ``last_run`` of the available-reports list as the previous run of `waited_for`.

    Canvas puts there the newest run of the report type, of any status and any parameters, and
    after a retry adopted a report it may be `waited_for` itself: it counts only by the index's
    rule (`previous_run`), with `waited_for` in front so that its echo gives the parameters.
    """
    return previous_run([waited_for, last_run], waited_for.id) if last_run is not None else None


def never_started(status: str | None) -> str:
    """Why a report may still be queued at a timeout, for its message ("" when it had started)."""
    if status != "created":
        return ""
    return (
        " It never started: Canvas runs one report at a time per root account, so others were "
        "ahead of it, or its job workers are stopped."
    )


def describe_duration(seconds: float | None) -> str:
    """Short human form for logs: 42s, 3m05s, 2h07m."""
    if seconds is None or not math.isfinite(seconds):
        return "unknown"
    total = max(0, round(seconds))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def progress_line(
    report: Report,
    *,
    waited: float,
    estimate: Estimate | None,
    expected_run_time: float | None = None,
    timeout_in: float | None = None,
) -> str:
    """One log line per poll: status, progress, current line, time waited, time left, and how long
    until the wait's deadline cancels the report (`timeout_in`, when the wait has one)."""
    parts = [f"Canvas report {report.report} #{report.id}: status={report.status}"]
    if report.progress is not None:
        parts.append(f"progress={report.progress}%")
    if report.current_line is not None:
        parts.append(f"current_line={report.current_line}")
    parts.append(f"waited={describe_duration(waited)}")
    if classify(report.status) is Phase.WAITING and estimate is not None and estimate.remaining is not None:
        parts.append(f"estimated_left={describe_duration(estimate.remaining)}")
    if expected_run_time is not None and classify(report.status) is Phase.WAITING:
        parts.append(f"expected_run_time={describe_duration(expected_run_time)}")
    if timeout_in is not None and classify(report.status) is Phase.WAITING:
        parts.append(f"timeout_in={describe_duration(timeout_in)}")
    return " ".join(parts)


PollState = tuple[str, int | None]  # (status, progress)


def poll_log_level(
    seen: PollState | None,
    logged: PollState | None,
    logged_at: float | None,
    now: float,
    *,
    every: float = QUIET_POLL_LOG_INTERVAL,
) -> int:
    """The level of a poll's "not finished yet" line, the same in every wait.

    WARNING for a failed poll (`seen` None: the wait ends after a few in a row); INFO for the
    first line (`logged_at` None), a status or progress other than the last INFO line's
    (`logged`), and once `every` seconds have passed since that line; DEBUG for a poll that only
    repeats it. Times come from one clock of the caller's.
    """
    if seen is None:
        return logging.WARNING
    if logged_at is None or seen != logged or now - logged_at >= every:
        return logging.INFO
    return logging.DEBUG


@dataclass
class PollLog:
    """What a wait last logged at INFO, for `poll_log_level`; one per wait."""

    logged: PollState | None = None
    logged_at: float | None = None

    def level(self, seen: PollState | None, now: float) -> int:
        """The level for this poll's line (see `poll_log_level`); an INFO line is remembered."""
        level = poll_log_level(seen, self.logged, self.logged_at, now)
        if level >= logging.INFO:
            self.logged, self.logged_at = seen, now
        return level


# -- the wait itself, as decisions -------------------------------------------------------------
SUCCESS = "success"
FAILURE = "failure"
TIMEOUT = "timeout"
ERROR = "error"
OUTCOMES = frozenset({SUCCESS, FAILURE, TIMEOUT, ERROR})
DEFAULT_MAX_CONSECUTIVE_ERRORS = 5


def is_transient(exc: BaseException) -> bool:
    """Whether a failed poll is worth another poll.

    Auth, configuration and bad-request errors will fail the same way every time; a 404 is
    handled apart (the report is gone). Anything else (throttling or 5xx beyond the transport's
    retry budget, resets, a proxy page instead of JSON) may pass.
    """
    from airflow_provider_canvas_reports.canvas.errors import (
        CanvasAuthError,
        CanvasBadRequestError,
        CanvasConfigError,
        CanvasNotFoundError,
    )

    return not isinstance(
        exc, (CanvasAuthError, CanvasBadRequestError, CanvasConfigError, CanvasNotFoundError)
    )


@dataclass(frozen=True)
class Outcome:
    """The wait is over: one of OUTCOMES, the last report seen (if any) and what to say."""

    kind: str
    message: str
    report: Report | None = None


@dataclass(frozen=True)
class PollAgain:
    """Not finished: wait `seconds`, then poll. `line` is for the log, `warning` if set too."""

    seconds: float
    line: str
    warning: str | None = None


class Waiter:
    """The rules of waiting for one report, driven by a trigger (async) or a worker loop (sync).

    The driver calls `before_poll`, polls Canvas, then `seen`, `gone` or `failed`, and sleeps
    what `PollAgain` says. Times are epoch seconds passed in by the driver.

    :param expected_run_time: seconds the report is expected to run (e.g. the previous run's
        run time, see `previous_run`), or None; it lets adaptive polling stretch its intervals.
    :param last_status: the status an earlier look saw (the worker's, before it deferred), or
        None; with it, a 404 on the first poll says the report was deleted while waited for.
    """

    def __init__(
        self,
        policy: PollPolicy,
        *,
        report_type: str,
        report_id: int,
        started_at: float,
        deadline: float | None,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
        expected_run_time: float | None = None,
        last_status: str | None = None,
    ) -> None:
        if max_consecutive_errors < 1:
            raise ValueError("max_consecutive_errors must be at least 1")
        self.expected_run_time = check_expected_run_time(expected_run_time)
        self.policy = policy
        self.report_type = report_type
        self.report_id = report_id
        self.started_at = started_at
        self.deadline = deadline
        self.max_consecutive_errors = max_consecutive_errors
        self.tracker = ProgressTracker()
        self.polls = 0
        self.consecutive_errors = 0
        self.failed_polls = 0
        self.last: Report | None = None
        self.last_status = last_status
        self._warned: set[str] = set()

    @property
    def name(self) -> str:
        return f"Canvas report {self.report_type} #{self.report_id}"

    @property
    def seen_status(self) -> str | None:
        """The status the latest look at the report saw: a poll's, else the earlier look's."""
        return self.last.status if self.last is not None else self.last_status

    @property
    def state(self) -> PollState | None:
        """Status and progress as the last poll saw them; None when it failed (or none ran yet)."""
        if self.last is None or self.consecutive_errors:
            return None
        return self.last.status, self.last.progress

    def waited(self, now: float) -> float:
        return max(0.0, now - self.started_at)

    def before_poll(self, now: float) -> Outcome | None:
        """The deadline check: a timeout outcome once it has passed."""
        if self.deadline is None or now < self.deadline:
            return None
        return self.timed_out()

    def timed_out(self) -> Outcome:
        """The timeout outcome: the deadline has passed (by the wall clock or a timer's)."""
        if self.deadline is None:
            raise ValueError(f"{self.name} has no deadline to pass")
        # Before its own first poll a trigger still knows what the worker saw when it deferred.
        last = f"; last status '{self.seen_status}'" if self.seen_status is not None else ""
        progress = (
            f", progress {self.last.progress}%"
            if self.last is not None and self.last.progress is not None
            else ""
        )
        return Outcome(
            TIMEOUT,
            f"{self.name} did not finish within {describe_duration(self.deadline - self.started_at)} "
            f"(the timeout){last}{progress}.{never_started(self.seen_status)}",
            self.last,
        )

    def time_left(self, now: float) -> float | None:
        return None if self.deadline is None else max(0.0, self.deadline - now)

    def answered(self, answer: Report | Exception, now: float) -> Outcome | PollAgain:
        """The step after a status request, from what it gave: the Report, or the error it raised."""
        if not isinstance(answer, Exception):
            return self.seen(answer, now)
        from airflow_provider_canvas_reports.canvas.errors import ReportNotFoundError

        return self.gone(now) if isinstance(answer, ReportNotFoundError) else self.failed(answer, now)

    def seen(self, report: Report, now: float) -> Outcome | PollAgain:
        self.polls += 1
        self.consecutive_errors = 0
        self.last = report
        self.tracker.observe(report, now)
        phase = classify(report.status)
        if phase is Phase.SUCCESS:
            return Outcome(
                SUCCESS, f"{self.name} is complete after {describe_duration(self.waited(now))}.", report
            )
        if phase is Phase.FAILURE:
            return Outcome(FAILURE, report.failure_message(), report)
        estimate = self.tracker.estimate(now)
        warning = None
        if not report.is_known_status and report.status not in self._warned:
            self._warned.add(report.status)  # once per status, not on every poll
            warning = (
                f"{self.name} has a status this provider does not know: '{report.status[:40]}'. "
                "Treating it as not finished; the deadline still applies."
            )
        interval = self.policy.next_interval(
            status=report.status, estimate=estimate, expected_run_time=self.expected_run_time
        )
        return PollAgain(
            sleep_for(interval, now=now, deadline=self.deadline),
            progress_line(
                report,
                waited=self.waited(now),
                estimate=estimate,
                expected_run_time=self.expected_run_time,
                timeout_in=self.time_left(now),
            ),
            warning,
        )

    def gone(self, now: float) -> Outcome:
        """Canvas answers 404: the report was deleted (Canvas drops deleted reports from GET)."""
        self.polls += 1
        last_status = self.seen_status
        if last_status is None:
            message = (
                f"Canvas has no {self.name[len('Canvas ') :]} (HTTP 404): it was deleted, or the report id "
                "or report type is wrong."
            )
        else:
            message = (
                f"{self.name} no longer exists in Canvas (HTTP 404 while waiting; last status "
                f"'{last_status}'): it was deleted, so it will never complete."
            )
        return Outcome(FAILURE, message, self.last)

    def failed(self, error: BaseException, now: float) -> Outcome | PollAgain:
        self.polls += 1
        self.failed_polls += 1
        self.consecutive_errors += 1
        what = f"{type(error).__name__}: {str(error)[:500]}"
        if not is_transient(error):
            return Outcome(ERROR, f"Could not read the status of {self.name}: {what}", self.last)
        if self.consecutive_errors >= self.max_consecutive_errors:
            return Outcome(
                ERROR,
                f"Gave up waiting for {self.name} after {self.consecutive_errors} consecutive failed "
                f"polls (each one already retried by the client). Last error: {what}",
                self.last,
            )
        return PollAgain(
            sleep_for(self.policy.poll_interval, now=now, deadline=self.deadline),
            f"Polling {self.name} failed ({self.consecutive_errors} of {self.max_consecutive_errors} "
            f"tolerated in a row): {what}",
        )

    def summary(self, now: float) -> str:
        """One line for the worker's log when the wait ends."""
        state = self.last.summary() if self.last is not None else self.name
        polls = f"{self.polls} poll{'' if self.polls == 1 else 's'}"
        if self.failed_polls:
            polls += f" ({self.failed_polls} failed)"
        parts = [state, f"waited {describe_duration(self.waited(now))}", polls]
        if self.last is not None and self.last.run_time is not None:
            # Canvas counts a report's run_time from its creation until it starts.
            what = "queued for" if self.last.started_at is None else "Canvas run time"
            parts.append(f"{what} {describe_duration(self.last.run_time)}")
        return "; ".join(parts)
