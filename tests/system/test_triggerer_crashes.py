"""Triggerer crashes while deferred sensors wait for Canvas reports.

The sensors of ``canvas_system_long_wait`` defer to ``ReportStatusTrigger`` and wait for reports
that run for 60 s. A triggerer is killed with ``kill -9`` of its process group (the triggerer and
its trigger-runner child: what a lost machine or container looks like), or frozen with
``SIGSTOP`` (alive, but silent past ``triggerer_health_check_threshold``) and thawed.

Two triggerers on SQLite: Airflow hands new triggers out with ``SELECT ... FOR UPDATE SKIP
LOCKED``, which SQLite does not have (Airflow drops the clause there), so two triggerers looking
for unassigned triggers in the same instant can both take one; Airflow 3.3.2 then cancels the
loser's copy *as a user action*, which calls ``on_kill`` (see the freeze test). The failover test
therefore starts the second triggerer once the triggers are assigned: what it checks, the
take-over of a dead triggerer's triggers, is driven by the dead one's stale heartbeat, not by row
locks, so SQLite exercises it faithfully. Only one triggerer is left running after each test.
"""

from __future__ import annotations

import time
from datetime import datetime
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
    # One Canvas report per run, and no trigger cancelled one when its triggerer went away.
    assert after == {**before, "starts": before["starts"] + len(reports)}


def _polls(system: System, reports: dict[str, int]) -> dict[int, int]:
    counters = system.sims["canvas_long"].sim.counters
    return {r: counters.status_polls[r] for r in reports.values()}


def _holders(system: System, reports: dict[str, int]) -> dict[str, Any]:
    """Run id -> job id of the triggerer running its sensor's trigger (None if unassigned)."""
    found = {}
    for run_id in reports:
        ti = system.api.task_instance(DAG_ID, run_id, SENSOR)
        found[run_id] = (ti.get("triggerer_job") or {}).get("id") if ti["state"] == "deferred" else "done"
    return found


def _wait_moved(system: System, reports: dict[str, int], to: Component, timeout: float = 90) -> None:
    def all_moved() -> bool:
        now = _holders(system, reports)
        if "done" in now.values():
            raise DeploymentError(f"a sensor finished before the new triggerer was seen to hold it: {now}")
        return all(job_id == to.job_id for job_id in now.values())

    wait_for(f"the triggers to move to triggerer job {to.job_id}", all_moved, timeout=timeout, interval=0.5)


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


def test_two_triggerers_one_killed_the_other_takes_over(system: System) -> None:
    deployment = system.deployment
    sim = system.sims["canvas_long"].sim
    before = _counters(system)
    (first,) = deployment.live("triggerer")
    reports = _start_waiting_runs(system, "triggerer-failover", 3)
    assert set(_holders(system, reports).values()) == {first.job_id}

    second = deployment.start_triggerer()
    assert {j["id"] for j in deployment.triggerer_jobs()} == {first.job_id, second.job_id}
    time.sleep(2)
    # A live triggerer keeps its triggers: the newcomer takes nothing over.
    assert set(_holders(system, reports).values()) == {first.job_id}

    deployment.kill_hard(first)
    _wait_moved(system, reports, second)
    assert {sim.reports[r].status for r in reports.values()} == {"running"}
    _assert_all_completed(system, reports, before)
    assert [c.job_id for c in deployment.live("triggerer")] == [second.job_id]


class TriggerMoveAbortedReportError(AssertionError):
    """A trigger that moved to another triggerer cancelled its Canvas report on the way out."""


def _left_running(system: System, report_id: int, triggerer: Component) -> list[str]:
    """The lines in which a trigger on ``triggerer`` said it left report ``report_id`` running.

    In the task's trigger log, or in the triggerer's own log when the stop outlived the trigger
    (``on_kill`` shields it from Airflow's repeated cancellation; the trigger's log is closed
    once the trigger has ended).
    """
    paths = [
        path
        for path in system.deployment.task_log_files(DAG_ID)
        if path.name.endswith(f".trigger.{triggerer.job_id}.log")
    ]
    text = f"#{report_id}: its task is still deferred"
    return [
        line
        for path in [*paths, triggerer.log_path]
        for line in path.read_text(errors="replace").splitlines()
        if text in line
    ]


def _heartbeat(system: System, job_id: int) -> str | None:
    for job in system.deployment.triggerer_jobs(alive_only=False):
        if job["id"] == job_id:
            return job["latest_heartbeat"]
    return None


def test_frozen_triggerer_comes_back_after_its_triggers_moved(system: System) -> None:
    """A triggerer freezes past the health threshold (SIGSTOP), another takes over, it thaws.

    Airflow 3.3.2 then cancels the moved triggers on the thawed triggerer as a user action and
    calls ``on_kill``; the trigger sees its task still deferred and leaves the report. The reports
    keep running and every run completes, as after a kill -9.
    """
    deployment = system.deployment
    sim = system.sims["canvas_long"].sim
    before = _counters(system)
    (frozen,) = deployment.live("triggerer")
    assert frozen.job_id is not None
    reports = _start_waiting_runs(system, "triggerer-freeze", 2)
    assert set(_holders(system, reports).values()) == {frozen.job_id}
    other = deployment.start_triggerer()
    try:
        deployment.freeze_between_writes(frozen)
        try:
            _wait_moved(system, reports, other)
            assert {sim.reports[r].status for r in reports.values()} == {"running"}
            time.sleep(2)
        finally:
            deployment.thaw(frozen)
        # The thawed triggerer catches up with the DB: give it time to act on what moved.
        wait_for(
            "the thawed triggerer to heartbeat again",
            lambda: (
                (hb := _heartbeat(system, frozen.job_id)) is not None
                and datetime.fromisoformat(hb.replace("Z", "+00:00")).timestamp() > time.time() - 5
            ),
            timeout=60,
        )
        # It cancels the moved triggers as a user action; each on_kill asks for its task's state
        # first (the triggerer's execution API may take seconds to answer its first request).
        wait_for(
            "the thawed triggerer's on_kill calls to leave the reports or cancel them",
            lambda: (
                _counters(system)["abort"] > before["abort"]
                or all(_left_running(system, r, frozen) for r in reports.values())
            ),
            timeout=60,
            interval=0.5,
        )
        time.sleep(2)
        aborted = _counters(system)["abort"] - before["abort"]
        if aborted:
            evidence = [
                f"{path.name}: {line[:300]}"
                for run_id in reports
                for path in deployment.task_log_files(DAG_ID, run_id)
                for line in path.read_text(errors="replace").splitlines()
                if "on_kill" in line or "Cancelled Canvas report" in line
            ]
            raise TriggerMoveAbortedReportError(
                f"{aborted} Canvas report(s) aborted after their triggers moved: "
                f"{ {r: sim.reports[r].status for r in reports.values()} }\n" + "\n".join(evidence)
            )
        # The thawed triggerer did call on_kill for each moved trigger (the case this test is
        # about), and the trigger said why it left the report alone.
        for report_id in reports.values():
            assert len(_left_running(system, report_id, frozen)) == 1, (
                f"no on_kill on triggerer {frozen.job_id} said why it left report #{report_id} running"
            )
        _assert_all_completed(system, reports, before)
    finally:
        # Leave one triggerer for the next tests (two on SQLite can race for new triggers).
        if frozen.alive():
            deployment.stop_component(frozen)
        for run_id in reports:  # let the runs end before the next test starts its own
            deployment.wait_run(DAG_ID, run_id, timeout=150)
