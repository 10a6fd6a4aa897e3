"""Triggerer crashes while deferred sensors wait for Canvas reports.

The sensors of ``canvas_system_long_wait`` defer to ``ReportStatusTrigger`` and wait for reports
that run for 60 s. A triggerer is killed with ``kill -9`` of its process group (the triggerer and
its trigger-runner child: what a lost machine or container looks like).

Two triggerers on SQLite: Airflow hands triggers out with ``SELECT ... FOR UPDATE SKIP LOCKED``,
which SQLite does not have (Airflow silently drops the clause there), so two triggerers that look
for unassigned triggers in the same instant can both take one until the next assignment loop
sorts it out. Taking over a dead triggerer's triggers does not depend on row locks: they are the
triggers whose triggerer's heartbeat is older than ``triggerer_health_check_threshold``. That
take-over is what the failover test checks; see RELIABILITY.md.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from .conftest import System
from .deployment import Component, DeploymentError, wait_for
from .helpers import REPORT

pytestmark = [pytest.mark.system, pytest.mark.timeout(360)]

DAG_ID = "canvas_system_long_wait"
SENSOR = "wait_for_export"


def _start_waiting_runs(system: System, prefix: str, count: int) -> dict[str, int]:
    """Trigger ``count`` runs; return run id -> Canvas report id once every sensor is deferred
    and its trigger is polling."""
    sim = system.sims["canvas_long"]
    api = system.api
    api.unpause(DAG_ID)
    runs = [f"{prefix}-{n}" for n in range(count)]
    for run_id in runs:
        api.trigger(DAG_ID, run_id)
    reports: dict[str, int] = {}
    for run_id in runs:
        system.deployment.wait_task(
            DAG_ID, run_id, SENSOR, lambda ti: ti["state"] == "deferred", what="deferred", timeout=120
        )
        reports[run_id] = int(api.xcoms(DAG_ID, run_id, "start_export")["return_value"]["id"])
    wait_for(
        "every trigger to poll its report",
        lambda: all(sim.sim.counters.status_polls[r] >= 2 for r in reports.values()),
        timeout=60,
        interval=0.2,
    )
    return reports


def _counters(system: System) -> dict[str, int]:
    counters = system.sims["canvas_long"].sim.counters
    return {
        "starts": counters.starts[REPORT],
        "abort": counters.requests["abort"],
        "delete": counters.requests["delete"],
    }


def _assert_all_completed(system: System, reports: dict[str, int], before: dict[str, int]) -> None:
    sim = system.sims["canvas_long"].sim
    api = system.api
    for run_id, report_id in reports.items():
        run = system.deployment.wait_run(DAG_ID, run_id, timeout=150)
        assert run["state"] == "success", system.deployment.describe_run(DAG_ID, run_id)
        ti = api.task_instance(DAG_ID, run_id, SENSOR)
        assert ti["state"] == "success"
        assert ti["try_number"] == 1, "the wait resumed on another triggerer; no task retry"
        result = api.xcoms(DAG_ID, run_id, SENSOR)["return_value"]
        assert (result["id"], result["status"]) == (report_id, "complete")
        assert sim.reports[report_id].status == "complete"
    after = _counters(system)
    # One Canvas report per run, and no trigger cancelled one when its triggerer died.
    assert after == {**before, "starts": before["starts"] + len(reports)}


def _polls(system: System, reports: dict[str, int]) -> dict[int, int]:
    counters = system.sims["canvas_long"].sim.counters
    return {r: counters.status_polls[r] for r in reports.values()}


def test_kill_9_triggerer_then_restart(system: System) -> None:
    deployment = system.deployment
    sim = system.sims["canvas_long"].sim
    before = _counters(system)
    reports = _start_waiting_runs(system, "triggerer-kill", 3)

    (victim,) = deployment.live("triggerer")
    deployment.kill_hard(victim)
    polls_at_kill = _polls(system, reports)
    time.sleep(3)
    # Nobody polls while no triggerer runs; the tasks stay deferred, the reports keep running.
    assert _polls(system, reports) == polls_at_kill
    for run_id, report_id in reports.items():
        assert system.api.task_instance(DAG_ID, run_id, SENSOR)["state"] == "deferred"
        assert sim.reports[report_id].status == "running"

    deployment.start_triggerer()
    wait_for(
        "the new triggerer to poll every report",
        lambda: all(now > polls_at_kill[r] for r, now in _polls(system, reports).items()),
        timeout=90,
        interval=0.5,
    )
    # It took over while the reports were still running: a real wait, not a late success.
    assert {sim.reports[r].status for r in reports.values()} == {"running"}
    _assert_all_completed(system, reports, before)


def _holders(system: System, reports: dict[str, int]) -> dict[str, Any]:
    """Run id -> job id of the triggerer running its sensor's trigger (None if unassigned)."""
    found = {}
    for run_id in reports:
        ti = system.api.task_instance(DAG_ID, run_id, SENSOR)
        found[run_id] = (ti.get("triggerer_job") or {}).get("id") if ti["state"] == "deferred" else "done"
    return found


def test_two_triggerers_one_killed_the_other_takes_over(system: System) -> None:
    deployment = system.deployment
    before = _counters(system)
    (first,) = deployment.live("triggerer")
    second = deployment.start_triggerer()
    assert first.job_id is not None
    assert second.job_id is not None
    assert {j["id"] for j in deployment.triggerer_jobs()} == {first.job_id, second.job_id}

    reports = _start_waiting_runs(system, "triggerer-failover", 4)
    holders = wait_for(
        "every trigger assigned to a triggerer",
        lambda: (h := _holders(system, reports)) and all(v is not None for v in h.values()) and h,
        timeout=30,
    )
    by_job: dict[Any, list[str]] = {}
    for run_id, job_id in holders.items():
        by_job.setdefault(job_id, []).append(run_id)
    assert set(by_job) <= {first.job_id, second.job_id}, holders
    # Kill the triggerer that runs the most triggers (at least one).
    victim: Component = max((first, second), key=lambda c: len(by_job.get(c.job_id, [])))
    survivor = second if victim is first else first
    moved = by_job[victim.job_id]
    deployment.kill_hard(victim)

    # Its triggers move to the survivor while their reports are still running.
    def all_moved() -> bool:
        now = _holders(system, reports)
        if any(now[run_id] == "done" for run_id in moved):
            raise DeploymentError(f"a moved sensor finished before the survivor was seen to hold it: {now}")
        return all(now[run_id] == survivor.job_id for run_id in moved)

    wait_for("the killed triggerer's triggers to move", all_moved, timeout=90, interval=0.5)
    assert {system.sims["canvas_long"].sim.reports[reports[r]].status for r in moved} == {"running"}
    system.notes["triggerer_failover"] = {"holders": holders, "moved": moved, "survivor": survivor.job_id}
    _assert_all_completed(system, reports, before)
    assert [c.job_id for c in deployment.live("triggerer")] == [survivor.job_id]
