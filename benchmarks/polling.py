"""Canvas API cost: status requests per report, adaptive polling against a fixed-interval poller.

Both pollers are the provider's own ``canvas.polling.Waiter`` (what the trigger, the sensor and
the worker-side wait all run), driven on a simulated clock against a model of a report: it sits
in ``created`` for Q seconds, runs for R seconds while its ``progress`` rises along a profile,
then is ``complete``. The model answers as Canvas does: integer progress capped at 99 while
running, ``started_at``/``ended_at`` with whole seconds. The first poll comes when the wait
starts (t = 0, the report just created); each poll is one status request.

- provider: ``PollPolicy(poll_interval, adaptive=True)`` (the default);
- reference: ``PollPolicy(poll_interval, adaptive=False)``: a request every poll_interval.

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


def wait(model: ReportModel, poll_interval: float, adaptive: bool) -> tuple[int, float, str]:
    """Status requests until complete, how long after completion it was noticed, and the status
    the poll before that one saw (``created``: the whole run fell into one queued interval)."""
    from airflow_provider_canvas_reports.canvas.polling import Outcome, PollPolicy, Waiter

    waiter = Waiter(
        PollPolicy(poll_interval, adaptive=adaptive),
        report_type="provisioning_csv",
        report_id=1,
        started_at=BASE,
        deadline=None,
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


def run_grid(poll_interval: float, samples: int, runs: tuple[float, ...], queues: tuple[float, ...]) -> dict:
    rng = random.Random(7)
    rows: list[dict[str, Any]] = []
    for run_min in runs:
        for queue_min in queues:
            for profile_name, profile in PROFILES.items():
                for _ in range(samples):
                    model = ReportModel(
                        queued=queue_min * 60 * rng.uniform(0.8, 1.2),
                        runs=run_min * 60 * rng.uniform(0.8, 1.2),
                        profile=profile,
                    )
                    fixed_polls, fixed_late, _ = wait(model, poll_interval, adaptive=False)
                    polls, late, seen_before = wait(model, poll_interval, adaptive=True)
                    allowed = max(poll_interval, 0.05 * model.runs)
                    rows.append(
                        {
                            "run_min": run_min,
                            "queue_min": queue_min,
                            "profile": profile_name,
                            "seen_before": seen_before,
                            "fixed": fixed_polls,
                            "adaptive": polls,
                            "late": late,
                            "fixed_late": fixed_late,
                            "allowed": allowed,
                        }
                    )
    return summarise(poll_interval, rows, runs)


def summarise(poll_interval: float, rows: list[dict[str, Any]], runs: tuple[float, ...]) -> dict:
    fixed = sum(r["fixed"] for r in rows)
    adaptive = sum(r["adaptive"] for r in rows)
    late = [r for r in rows if r["late"] > r["allowed"] + 1e-9]
    by_run = []
    for run_min in runs:
        part = [r for r in rows if r["run_min"] == run_min]
        by_run.append(
            {
                "run_min": run_min,
                "fixed_per_report": round(sum(r["fixed"] for r in part) / len(part), 1),
                "adaptive_per_report": round(sum(r["adaptive"] for r in part) / len(part), 1),
                "ratio": round(sum(r["adaptive"] for r in part) / sum(r["fixed"] for r in part), 3),
                "worst_late_s": round(max(r["late"] for r in part), 1),
                "allowed_s": round(max(poll_interval, 0.05 * run_min * 60), 1),
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
    args = parser.parse_args()
    intervals = args.poll_interval or [60.0, 10.0]
    samples = 1 if args.smoke else 5
    runs = (1, 30) if args.smoke else RUN_MINUTES
    queues = (2,) if args.smoke else QUEUE_MINUTES
    results = []
    for interval in intervals:
        result = run_grid(interval, samples, runs, queues)
        results.append(result)
        say(
            f"poll_interval={interval:g}s over {result['reports']} reports: adaptive "
            f"{result['adaptive_requests']} requests vs fixed {result['fixed_requests']} = {result['ratio']:.1%}; "
            f"late beyond max(poll_interval, 5% of run time): {result['late_reports']} reports: "
            f"{verdict(result['met'])}"
        )
        for row in result["by_run_minutes"]:
            say(
                f"  {row['run_min']:>2} min runs: {row['adaptive_per_report']:>5} vs {row['fixed_per_report']:>5} "
                f"requests per report ({row['ratio']:.1%}), noticed at worst {row['worst_late_s']}s late "
                f"(allowed {row['allowed_s']}s)"
            )
        say(f"  ratio by progress profile: {result['ratio_by_profile']}")
        say(
            f"  late reports by profile: {result['late_by_profile']}; of them "
            f"{result['late_whole_run_in_one_queued_interval']} ran whole inside one queued interval"
        )
        for row in result["worst_late"]:
            say(f"  LATE: {row}")
    emit("polling", smoke=args.smoke, intervals=results, met=all(r["met"] for r in results))


if __name__ == "__main__":
    main()
