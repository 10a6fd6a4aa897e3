"""A user marks a waiting sensor failed or success through the REST API.

Airflow 3.3 calls the trigger's ``on_kill`` when a user changes a deferred task's state;
``ReportStatusTrigger.on_kill`` cancels the report: abort while it runs. A queued report is left
where it is (Canvas cannot stop it before it starts), and the task's log says so.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from .conftest import System
from .deployment import wait_for
from .helpers import REPORT, one_new_report

pytestmark = [pytest.mark.system, pytest.mark.timeout(300)]

SENSOR = "wait_for_export"


def sensor_waiting(system: System, dag_id: str, sim: Any, run_id: str, state: str) -> int:
    """Trigger the DAG, and return its report's id once the sensor is `state` (deferred, or
    running in the worker) and has polled the report again since: the wait is under way."""
    counters = sim.sim.counters
    before = set(sim.sim.reports)
    system.api.unpause(dag_id)
    system.api.trigger(dag_id, run_id)
    report_id = one_new_report(sim, before)
    system.deployment.wait_task(
        dag_id, run_id, SENSOR, lambda ti: ti["state"] == state, what=state, timeout=120
    )
    # A deferring sensor checks once in the worker first: the poll after that is the trigger's.
    # (Marked failed before a triggerer runs it, a trigger never gets an on_kill call: see
    # RELIABILITY.md.)
    polls = counters.status_polls[report_id]
    wait_for(
        "the sensor to poll the report",
        lambda: counters.status_polls[report_id] > polls,
        timeout=60,
        interval=0.2,
    )
    return report_id


def wait_for_log(system: System, dag_id: str, run_id: str, text: str) -> None:
    """Until the sensor's first try's log holds `text` (what on_kill did to the report)."""
    wait_for(
        f"the task log to say {text!r}",
        lambda: text in system.api.log(dag_id, run_id, SENSOR, 1),
        timeout=60,
        interval=0.5,
        on_timeout=lambda: system.deployment.describe_run(dag_id, run_id),
    )


@pytest.mark.parametrize(
    ("dag_id", "conn_id", "status_when_marked", "cancel_call", "final_status", "logged"),
    [
        pytest.param(
            "canvas_system_long_wait",
            "canvas_long",
            "running",
            "abort",
            "aborted",
            "because the task was killed",
            id="running",
        ),
        pytest.param(
            "canvas_system_queued_wait",
            "canvas_queued",
            "created",
            None,
            "created",
            "queued although the task was killed",
            id="queued",
        ),
    ],
)
def test_marking_a_deferred_sensor_failed_cancels_the_report(
    system: System,
    dag_id: str,
    conn_id: str,
    status_when_marked: str,
    cancel_call: str | None,
    final_status: str,
    logged: str,
) -> None:
    sim = system.sims[conn_id]
    counters = sim.sim.counters
    api = system.api
    run_id = f"mark-failed-{status_when_marked}"
    before = set(sim.sim.reports)
    calls_before = {name: counters.requests[name] for name in ("abort", "delete")}
    starts_before = counters.starts[REPORT]
    report_id = sensor_waiting(system, dag_id, sim, run_id, "deferred")
    assert sim.sim.reports[report_id].status == status_when_marked

    api.set_task_state(dag_id, run_id, SENSOR, "failed")

    # The trigger's on_kill logs what it did to the report, in the task's log.
    wait_for_log(system, dag_id, run_id, f"#{report_id} {logged}")
    assert sim.sim.reports[report_id].status == final_status
    for call in ("abort", "delete"):
        assert counters.requests[call] == calls_before[call] + (call == cancel_call)
    assert api.task_instance(dag_id, run_id, SENSOR)["state"] == "failed"
    run = system.deployment.wait_run(dag_id, run_id, timeout=60)
    assert run["state"] == "failed"
    # Nothing polls the cancelled report any more, and nothing started another one.
    polls = counters.status_polls[report_id]
    time.sleep(3)
    assert counters.status_polls[report_id] == polls
    assert sim.new_reports(before) == [report_id]
    assert counters.starts[REPORT] == starts_before + 1


@pytest.mark.parametrize(
    ("new_state", "final_status", "logged"),
    [
        pytest.param("failed", "aborted", "aborted it (it was running)", id="failed"),
        # After a success the download lands the report once it completes: it must go on.
        pytest.param("success", "running", "its task is now 'success'", id="success"),
    ],
)
def test_marking_a_poking_sensor_stops_its_report_only_if_it_failed(
    system: System, new_state: str, final_status: str, logged: str
) -> None:
    """In the worker, Airflow's SIGTERM calls on_kill alike for both; the task's state decides."""
    dag_id = "canvas_system_long_poke"
    sim = system.sims["canvas_long"]
    aborts_before = sim.sim.counters.requests["abort"]
    run_id = f"mark-poking-{new_state}"
    report_id = sensor_waiting(system, dag_id, sim, run_id, "running")
    assert sim.sim.reports[report_id].status == "running"

    system.api.set_task_state(dag_id, run_id, SENSOR, new_state)

    wait_for_log(system, dag_id, run_id, logged)
    assert sim.sim.reports[report_id].status == final_status
    assert sim.sim.counters.requests["abort"] == aborts_before + (new_state == "failed")
    assert system.api.task_instance(dag_id, run_id, SENSOR)["state"] == new_state
