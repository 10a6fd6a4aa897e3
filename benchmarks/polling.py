"""Canvas API cost: status requests per report, adaptive polling against a fixed-interval poller.

Both pollers are the provider's own ``canvas.polling.Waiter`` (what the trigger, the sensor and
the worker-side wait all run), driven on a simulated clock against a model of a report: it sits
in ``created`` for Q seconds, runs for R seconds while its ``progress`` rises along a profile,
then is ``complete``. The model answers as Canvas does: integer progress capped at 99 while
running, ``started_at``/``ended_at`` with whole seconds. The first look comes when the wait
starts (t = 0, the report just created); each later look is one status request. The fixed
poller's first look is a status request too (the common loop: start, then poll at once); the
provider's is the start's own answer, which the start operator passes to its trigger as the
wait's first poll (``first_poll_at``), so it costs no request.

- provider: ``PollPolicy(poll_interval, adaptive=True)`` (the default), with the expected run
  time the start operator takes from the previous run of the same report with the same
  parameters: the ``last_run`` of the available-reports list its parameter validation already
  read, when that is the previous run (no request), else the first page of the report index (one
  more request per wait, counted);
- reference: ``PollPolicy(poll_interval, adaptive=False)``: a request every poll_interval.

The expected run time (the prior), in four cases, each on the same reports:

- ``previous run`` (the usual case: a nightly report): the previous run took R x a seeded
  factor uniform in [0.8, 1.2], i.e. night-to-night variation of +-20%; it is the list's
  ``last_run`` (no other run of the report type since), so no lookup request;
- ``first run``: ``last_run`` is null, so the index is asked (one request) and has no complete
  run yet: no prior;
- ``2x too long`` / ``2x too short``: the previous run took 2R / R/2 (say the data doubled or
  halved since, or the previous run was slowed down by a busy Canvas): what a wrong prior costs
  (it is still the list's ``last_run``: no lookup request).

When the list's ``last_run`` is another run (another parameter set of the same report type ran
since, or it failed), the start operator asks the index: one request more per report than shown
here; the sensor always asks it (it does not read the list), and its check before deferring is
a status request: two more per report.

Grid: R in 1, 2, 5, 10, 20, 30 minutes x Q in 0.5, 2, 10, 30 minutes x 4 progress profiles
(linear; front-loaded sqrt; back-loaded square; 4 equal steps) x 5 seeded jitters of Q and R.
Goals: the provider makes <= 25% of the fixed poller's requests over the grid, and notices
completion within max(poll_interval, 5% of the report's run time) on every report.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from airflow_provider_canvas_reports.canvas.polling import DEFAULT_MAX_POLL_INTERVAL, PRIOR_FLOOR
from benchmarks._common import arg_parser, emit, say, verdict

GOAL_RATIO = 0.25
BASE = 1_800_000_000.0  # epoch of the simulated wait's start

PROFILES: dict[str, Callable[[float], float]] = {
    "linear": lambda x: x,
    "front-loaded": math.sqrt,
    "back-loaded": lambda x: x * x,
    "steps": lambda x: math.floor(x * 4) / 4,
}
RUN_MINUTES = (1, 2, 5, 10, 20, 30)
QUEUE_MINUTES = (0.5, 2, 10, 30)
# Night-to-night variation of a report's run time, as a +- fraction (uniform).
PRIOR_SPREAD = 0.2
MAIN_CASE = "previous run"
# Expected run time for a report that runs R seconds, given a uniform draw u in [0, 1).
CASES: dict[str, Callable[[float, float], float | None]] = {
    MAIN_CASE: lambda runs, u: runs * (1 - PRIOR_SPREAD + 2 * PRIOR_SPREAD * u),
    "first run": lambda runs, u: None,
    "2x too long": lambda runs, u: 2 * runs,
    "2x too short": lambda runs, u: runs / 2,
    # What-if, not a goal: the run time known exactly, as if the policy's floor were the truth.
    "known exactly": lambda runs, u: runs / PRIOR_FLOOR,
}


# The provider's look at t = 0 is the start's answer, not a status request (see above).
FIRST_LOOK_FROM_THE_START = 1


def lookup_requests(prior: float | None) -> int:
    """Requests that look up the prior, besides the status polls: none when the available-reports
    list's last_run gave it; one index request when last_run is null (a first run)."""
    return 0 if prior is not None else 1


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(math.floor(epoch), tz=timezone.utc).isoformat()


@dataclass(frozen=True)
class ReportModel:
    queued: float
    runs: float
    profile: Callable[[float], float]

    @property
    def done_at(self) -> float:
        return self.queued + self.runs

    def at(self, t: float) -> Any:
        from airflow_provider_canvas_reports.canvas.report import Report

        data: dict[str, Any] = {
            "id": 1,
            "report": "provisioning_csv",
            "created_at": _iso(BASE),
            "parameters": {},
        }
        if t < self.queued:
            data.update(status="created", progress=0)
        elif t < self.done_at:
            progress = min(99, int(100 * self.profile((t - self.queued) / self.runs)))
            data.update(status="running", progress=progress, started_at=_iso(BASE + self.queued))
        else:
            data.update(
                status="complete",
                progress=100,
                started_at=_iso(BASE + self.queued),
                ended_at=_iso(BASE + self.done_at),
                run_time=self.runs,
            )
        return Report.from_json(data)


def wait(
    model: ReportModel,
    poll_interval: float,
    adaptive: bool,
    expected_run_time: float | None = None,
    max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
) -> tuple[int, float, str]:
    """Status requests until complete, how long after completion it was noticed, and the status
    the poll before that one saw (``created``: the whole run fell into one queued interval)."""
    from airflow_provider_canvas_reports.canvas.polling import Outcome, PollPolicy, Waiter

    waiter = Waiter(
        PollPolicy(poll_interval, adaptive=adaptive, max_poll_interval=max_poll_interval),
        report_type="provisioning_csv",
        report_id=1,
        started_at=BASE,
        deadline=None,
        expected_run_time=expected_run_time,
    )
    t, polls, previous = 0.0, 0, ""
    while True:
        polls += 1
        report = model.at(t)
        step = waiter.seen(report, BASE + t)
        if isinstance(step, Outcome):
            return polls, t - model.done_at, previous
        previous = report.status
        t += step.seconds
        if polls > 100_000:
            raise RuntimeError("the wait never ended")


def run_grid(
    poll_interval: float,
    samples: int,
    runs: tuple[float, ...],
    queues: tuple[float, ...],
    max_poll_interval: float = DEFAULT_MAX_POLL_INTERVAL,
) -> dict:
    rng = random.Random(7)
    # Its own generator, so the reports themselves stay those of runs without priors.
    prior_rng = random.Random(11)
    rows: dict[str, list[dict[str, Any]]] = {case: [] for case in CASES}
    for run_min in runs:
        for queue_min in queues:
            for profile_name, profile in PROFILES.items():
                for _ in range(samples):
                    model = ReportModel(
                        queued=queue_min * 60 * rng.uniform(0.8, 1.2),
                        runs=run_min * 60 * rng.uniform(0.8, 1.2),
                        profile=profile,
                    )
                    draw = prior_rng.random()
                    fixed_polls, fixed_late, _ = wait(model, poll_interval, adaptive=False)
                    allowed = max(poll_interval, 0.05 * model.runs)
                    for case, prior_of in CASES.items():
                        prior = prior_of(model.runs, draw)
                        polls, late, seen_before = wait(
                            model,
                            poll_interval,
                            adaptive=True,
                            expected_run_time=prior,
                            max_poll_interval=max_poll_interval,
                        )
                        rows[case].append(
                            {
                                "run_min": run_min,
                                "queue_min": queue_min,
                                "profile": profile_name,
                                "seen_before": seen_before,
                                "fixed": fixed_polls,
                                "adaptive": polls - FIRST_LOOK_FROM_THE_START + lookup_requests(prior),
                                "late": late,
                                "fixed_late": fixed_late,
                                "allowed": allowed,
                            }
                        )
    result = summarise(poll_interval, rows[MAIN_CASE], runs)
    result["prior"] = MAIN_CASE
    # The same reports when the prior comes from the index instead (the sensor; or the list's
    # last_run is another parameter set): one request more each.
    result["ratio_with_index_lookup"] = round(
        (result["adaptive_requests"] + result["reports"]) / result["fixed_requests"], 3
    )
    result["max_poll_interval"] = max_poll_interval
    # A list, so the cases keep their order in the JSON result (its keys are sorted).
    result["cases"] = [
        {
            "case": case,
            **{
                key: value
                for key, value in summarise(poll_interval, case_rows, runs).items()
                if key
                in (
                    "adaptive_requests",
                    "fixed_requests",
                    "ratio",
                    "late_reports",
                    "late_by_profile",
                    "late_whole_run_in_one_queued_interval",
                    "mean_late_s",
                    "max_late_s",
                    "met",
                )
            },
        }
        for case, case_rows in rows.items()
    ]
    return result


def summarise(poll_interval: float, rows: list[dict[str, Any]], runs: tuple[float, ...]) -> dict:
    fixed = sum(r["fixed"] for r in rows)
    adaptive = sum(r["adaptive"] for r in rows)
    late = [r for r in rows if r["late"] > r["allowed"] + 1e-9]
    by_run = []
    for run_min in runs:
        part = [r for r in rows if r["run_min"] == run_min]
        # The report closest to (or furthest past) its own bound: run times are jittered, so
        # each report is allowed max(poll_interval, 5% of its actual run time).
        worst = max(part, key=lambda r: r["late"] - r["allowed"])
        by_run.append(
            {
                "run_min": run_min,
                "fixed_per_report": round(sum(r["fixed"] for r in part) / len(part), 1),
                "adaptive_per_report": round(sum(r["adaptive"] for r in part) / len(part), 1),
                "ratio": round(sum(r["adaptive"] for r in part) / sum(r["fixed"] for r in part), 3),
                "worst_late_s": round(worst["late"], 1),
                "allowed_s": round(worst["allowed"], 1),
            }
        )
    by_profile = {
        name: round(
            sum(r["adaptive"] for r in rows if r["profile"] == name)
            / sum(r["fixed"] for r in rows if r["profile"] == name),
            3,
        )
        for name in PROFILES
    }
    late_by_profile = {name: sum(1 for r in late if r["profile"] == name) for name in PROFILES}
    late_while_queued = sum(1 for r in late if r["seen_before"] == "created")
    return {
        "poll_interval": poll_interval,
        "late_by_profile": late_by_profile,
        "late_whole_run_in_one_queued_interval": late_while_queued,
        "reports": len(rows),
        "fixed_requests": fixed,
        "adaptive_requests": adaptive,
        "ratio": round(adaptive / fixed, 3),
        "late_reports": len(late),
        "worst_late": sorted(
            ({k: (round(v, 1) if isinstance(v, float) else v) for k, v in r.items()} for r in late),
            key=lambda r: -(r["late"] - r["allowed"]),
        )[:5],
        "mean_late_s": round(sum(r["late"] for r in rows) / len(rows), 1),
        "max_late_s": round(max(r["late"] for r in rows), 1),
        "fixed_mean_late_s": round(sum(r["fixed_late"] for r in rows) / len(rows), 1),
        "by_run_minutes": by_run,
        "ratio_by_profile": by_profile,
        "met": adaptive / fixed <= GOAL_RATIO and not late,
    }


def main() -> None:
    parser = arg_parser(__doc__)
    parser.add_argument(
        "--poll-interval", type=float, action="append", help="seconds (repeatable; default 60 and 10)"
    )
    parser.add_argument(
        "--max-poll-interval",
        type=float,
        default=DEFAULT_MAX_POLL_INTERVAL,
        help=f"the provider's cap on an interval, seconds (default {DEFAULT_MAX_POLL_INTERVAL:g})",
    )
    args = parser.parse_args()
    intervals = args.poll_interval or [60.0, 10.0]
    samples = 1 if args.smoke else 5
    runs = (1, 30) if args.smoke else RUN_MINUTES
    queues = (2,) if args.smoke else QUEUE_MINUTES
    results = []
    for interval in intervals:
        result = run_grid(interval, samples, runs, queues, args.max_poll_interval)
        results.append(result)
        say(
            f"poll_interval={interval:g}s (max_poll_interval={args.max_poll_interval:g}s) over {result['reports']} "
            f"reports, expected run time from the {MAIN_CASE}: adaptive {result['adaptive_requests']} requests "
            f"vs fixed {result['fixed_requests']} = {result['ratio']:.1%}; late beyond max(poll_interval, 5% of "
            f"run time): {result['late_reports']} reports: {verdict(result['met'])}"
        )
        say(
            f"  (prior from the list's last_run, no lookup request; from the report index instead, one "
            f"request per report more: {result['ratio_with_index_lookup']:.1%})"
        )
        for row in result["by_run_minutes"]:
            say(
                f"  {row['run_min']:>2} min runs: {row['adaptive_per_report']:>5} vs {row['fixed_per_report']:>5} "
                f"requests per report ({row['ratio']:.1%}), closest to its bound: {row['worst_late_s']}s late "
                f"(allowed {row['allowed_s']}s)"
            )
        say(f"  ratio by progress profile: {result['ratio_by_profile']}")
        for row in result["worst_late"]:
            say(f"  LATE: {row}")
        for figures in result["cases"]:
            say(
                f"  expected run time {figures['case'] + ':':<15} {figures['ratio']:>6.1%} of the fixed poller's requests, "
                f"{figures['late_reports']:>3} late (by profile {figures['late_by_profile']}; "
                f"{figures['late_whole_run_in_one_queued_interval']} ran whole inside one queued interval), "
                f"lateness mean {figures['mean_late_s']}s, worst {figures['max_late_s']}s"
            )
    emit("polling", smoke=args.smoke, intervals=results, met=all(r["met"] for r in results))


if __name__ == "__main__":
    main()
