"""The pure wait rules: adaptive intervals, progress estimates, and the Waiter's decisions."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import pytest

from airflow_provider_canvas_reports.canvas.errors import (
    CanvasRetryExhaustedError,
    InvalidTokenError,
)
from airflow_provider_canvas_reports.canvas.polling import (
    ERROR,
    FAILURE,
    SUCCESS,
    TIMEOUT,
    Outcome,
    PollAgain,
    PollPolicy,
    ProgressTracker,
    Waiter,
    describe_duration,
    sleep_for,
)
from airflow_provider_canvas_reports.canvas.report import Report

T0 = 1_800_000_000.0


def report(status: str, progress: int | None = 0, *, started: float | None = None, **extra) -> Report:
    data = {"id": 7, "report": "provisioning_csv", "status": status, "progress": progress, **extra}
    if started is not None:
        data["started_at"] = datetime.fromtimestamp(started, tz=timezone.utc).isoformat()
    return Report.from_json(data)


class TestPollPolicy:
    def test_fixed_interval_is_exactly_poll_interval(self):
        policy = PollPolicy(7.0, adaptive=False, max_poll_interval=300)
        for status, waited in [("created", 0), ("created", 10_000), ("running", 50), ("weird", 3)]:
            assert policy.next_interval(status=status, waited=waited) == 7.0

    def test_queued_interval_grows_by_half_the_wait_up_to_the_max(self):
        policy = PollPolicy(2.0, max_poll_interval=60)
        assert policy.next_interval(status="created", waited=0) == 2.0  # floor
        assert policy.next_interval(status="created", waited=10) == 5.0
        assert policy.next_interval(status="created", waited=40) == 20.0
        assert policy.next_interval(status="created", waited=1_000) == 60.0  # ceiling

    def test_queued_growth_is_about_one_and_a_half_per_poll(self):
        policy = PollPolicy(1.0, max_poll_interval=10_000)
        waited, intervals = 0.0, []
        for _ in range(12):
            interval = policy.next_interval(status="created", waited=waited)
            intervals.append(interval)
            waited += interval
        ratios = [b / a for a, b in itertools.pairwise(intervals[3:])]
        assert all(r == pytest.approx(1.5) for r in ratios)

    def test_running_aims_just_past_the_predicted_finish(self):
        policy = PollPolicy(1.0, max_poll_interval=300)
        tracker = ProgressTracker()
        tracker.observe(report("running", 60, started=T0 - 100), T0)
        tracker.observe(report("running", 70, started=T0 - 100), T0 + 10)  # 1%/s: 30 s left
        estimate = tracker.estimate(T0 + 10)
        assert estimate is not None
        assert estimate.remaining == pytest.approx(30.0)
        assert estimate.running_for == pytest.approx(110.0)
        interval = policy.next_interval(status="running", waited=200, estimate=estimate)
        # 30 s to the predicted finish, plus at most 5% of the run time so far (110 s -> 5.5 s).
        assert 30.0 <= interval <= 35.5

    def test_running_never_sleeps_longer_than_it_has_run(self):
        policy = PollPolicy(1.0, max_poll_interval=300)
        tracker = ProgressTracker()
        tracker.observe(report("running", 10), T0)
        tracker.observe(report("running", 12), T0 + 20)  # 0.1%/s: 880 s left, from 2% of progress
        assert policy.next_interval(status="running", waited=400, estimate=tracker.estimate(T0 + 20)) == 20

    def test_whole_second_started_at_does_not_inflate_the_estimate(self):
        # Started at .9 s, stamped .0 by Canvas: 3% after 0.1 s looked like 3% after 1 s.
        policy = PollPolicy(0.1, max_poll_interval=300)
        tracker = ProgressTracker()
        tracker.observe(report("running", 3, started=T0 - 1), T0)
        estimate = tracker.estimate(T0)
        assert estimate is not None
        assert estimate.remaining is None
        assert policy.next_interval(status="running", waited=0.2, estimate=estimate) <= 1.0

    def test_running_never_exceeds_max_nor_goes_under_poll_interval(self):
        policy = PollPolicy(5.0, max_poll_interval=30)
        tracker = ProgressTracker()
        tracker.observe(report("running", 1, started=T0 - 600), T0)
        tracker.observe(report("running", 2, started=T0 - 600), T0 + 10)  # 0.1%/s: 980 s left
        assert policy.next_interval(status="running", waited=10, estimate=tracker.estimate(T0 + 10)) == 30
        tracker = ProgressTracker()
        tracker.observe(report("running", 1), T0)
        tracker.observe(report("running", 99), T0 + 20)  # 0.2 s left; +5% of 20 s is 1.2 s
        assert policy.next_interval(status="running", waited=20, estimate=tracker.estimate(T0 + 20)) == 5.0

    def test_running_without_moving_progress_grows_like_queued(self):
        policy = PollPolicy(1.0, max_poll_interval=100)
        tracker = ProgressTracker()
        tracker.observe(report("running", 0), T0)
        tracker.observe(report("running", 0), T0 + 8)
        assert policy.next_interval(status="running", waited=8, estimate=tracker.estimate(T0 + 8)) == 4.0

    def test_max_below_floor_keeps_the_floor(self):
        assert PollPolicy(10.0, max_poll_interval=2).next_interval(status="created", waited=1e6) == 10.0

    @pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf")])
    def test_rejects_bad_intervals(self, bad):
        with pytest.raises(ValueError, match="poll_interval"):
            PollPolicy(bad)


class TestProgressTracker:
    def test_no_estimate_before_running(self):
        tracker = ProgressTracker()
        tracker.observe(report("created"), T0)
        assert tracker.estimate(T0) is None

    def test_falls_back_to_started_at_on_a_single_poll(self):
        tracker = ProgressTracker()
        tracker.observe(report("running", 25, started=T0 - 50), T0)  # 0.5%/s: 150 s left
        estimate = tracker.estimate(T0)
        assert estimate is not None
        assert estimate.rate == pytest.approx(0.5)
        assert estimate.remaining == pytest.approx(150.0)
        assert estimate.running_for == pytest.approx(50.0)

    def test_remaining_counts_down_between_polls(self):
        tracker = ProgressTracker()
        tracker.observe(report("running", 0), T0)
        tracker.observe(report("running", 50), T0 + 10)
        assert tracker.estimate(T0 + 14).remaining == pytest.approx(6.0)  # type: ignore[union-attr]


class TestWaiter:
    def make(self, deadline: float | None = T0 + 100, errors: int = 3) -> Waiter:
        return Waiter(
            PollPolicy(1.0, adaptive=False),
            report_type="provisioning_csv",
            report_id=7,
            started_at=T0,
            deadline=deadline,
            max_consecutive_errors=errors,
        )

    def test_complete_is_success(self):
        step = self.make().seen(report("complete", 100), T0 + 1)
        assert isinstance(step, Outcome)
        assert step.kind == SUCCESS

    @pytest.mark.parametrize("status", ["error", "aborted", "deleted"])
    def test_failures_carry_canvas_reason(self, status):
        step = self.make().seen(report(status, 100, parameters={"extra_text": "Failed, because."}), T0)
        assert isinstance(step, Outcome)
        assert step.kind == FAILURE
        assert "#7" in step.message
        assert status in step.message
        assert "Failed, because." in step.message

    def test_progress_100_on_running_is_not_success(self):
        assert isinstance(self.make().seen(report("running", 100), T0), PollAgain)

    def test_unknown_status_keeps_waiting_with_a_warning(self):
        step = self.make().seen(report("paused_for_lunch", 5), T0)
        assert isinstance(step, PollAgain)
        assert step.warning
        assert "paused_for_lunch" in step.warning

    def test_deadline(self):
        waiter = self.make(deadline=T0 + 10)
        waiter.seen(report("running", 40), T0 + 5)
        assert waiter.before_poll(T0 + 9.9) is None
        outcome = waiter.before_poll(T0 + 10)
        assert outcome is not None
        assert outcome.kind == TIMEOUT
        assert "running" in outcome.message
        assert "40%" in outcome.message

    def test_sleep_never_passes_the_deadline(self):
        waiter = self.make(deadline=T0 + 10)
        waiter.policy = PollPolicy(60.0, adaptive=False)
        step = waiter.seen(report("created"), T0 + 4)
        assert isinstance(step, PollAgain)
        assert step.seconds == pytest.approx(6.0)
        assert sleep_for(5, now=T0, deadline=None) == 5

    def test_transient_errors_are_tolerated_up_to_the_bound(self):
        waiter = self.make(errors=3)
        boom = CanvasRetryExhaustedError("Canvas answered HTTP 503 beyond the retry budget")
        assert isinstance(waiter.failed(boom, T0), PollAgain)
        assert isinstance(waiter.failed(boom, T0), PollAgain)
        waiter.seen(report("running", 10), T0)  # a good poll resets the count
        assert isinstance(waiter.failed(boom, T0), PollAgain)
        assert isinstance(waiter.failed(boom, T0), PollAgain)
        outcome = waiter.failed(boom, T0)
        assert isinstance(outcome, Outcome)
        assert outcome.kind == ERROR
        assert "3 consecutive failed polls" in outcome.message
        assert "503" in outcome.message

    def test_permanent_errors_end_at_once(self):
        outcome = self.make().failed(InvalidTokenError("token expired"), T0)
        assert isinstance(outcome, Outcome)
        assert outcome.kind == ERROR

    def test_gone_is_failure(self):
        waiter = self.make()
        first = waiter.gone(T0)
        assert first.kind == FAILURE
        assert "wrong" in first.message
        waiter.seen(report("running", 10), T0)
        assert "deleted" in waiter.gone(T0).message

    def test_summary(self):
        waiter = self.make()
        waiter.failed(CanvasRetryExhaustedError("x"), T0 + 1)
        waiter.seen(report("complete", 100, run_time=12.6), T0 + 65)
        summary = waiter.summary(T0 + 65)
        assert "status=complete" in summary
        assert "1m05s" in summary
        assert "2 polls" in summary
        assert "1 failed polls tolerated" in summary
        assert "13s" in summary


def test_describe_duration():
    assert [describe_duration(s) for s in (None, 0.4, 59, 61, 3600 * 2 + 7 * 60)] == [
        "unknown",
        "0s",
        "59s",
        "1m01s",
        "2h07m",
    ]
