"""``kill -9`` of a task's process on a real deployment: mid-download, and between start and wait.

The task runner (process title ``airflow worker -- <ti id>``) is killed the way the OOM killer or
an operator's ``kill -9`` does it: no exception, no ``on_kill``, no cleanup. Its supervisor
reports the try failed, and Airflow retries it.
"""

from __future__ import annotations

import time

import pytest

from airflow_provider_canvas_reports.simulator import Fault

from .conftest import System
from .deployment import wait_for
from .helpers import (
    REPORT,
    FolderWatch,
    expected_objects,
    is_partial,
    kill_task_runner,
    landed,
    one_new_report,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(420)]

# The store sends half the file, then holds the connection this long: the window for the kill.
STALL_SECONDS = 30.0


def _run_and_kill_download(system: System, dag_id: str, run_id: str, *, zipped: bool) -> None:
    sim = system.sims["canvas_big"]
    deployment = system.deployment
    api = system.api
    before = set(sim.sim.reports)
    starts_before = sim.sim.counters.starts[REPORT]
    store_before = sim.sim.counters.requests["store"]
    api.unpause(dag_id)
    api.trigger(dag_id, run_id)

    report_id = one_new_report(sim, before)
    # Only this report's first file request stalls halfway; every other request is normal.
    sim.sim.add_fault(
        Fault(endpoint="store", kind="stall", report_id=report_id, delay=STALL_SECONDS, fraction=0.5, times=1)
    )
    expected = expected_objects(sim, report_id, extract_zip=True)
    assert len(expected) == (3 if zipped else 1)
    folder = system.lake / dag_id / run_id
    watch = FolderWatch(folder, expected).start()
    try:
        land = deployment.wait_task(
            dag_id, run_id, "land_tables", lambda ti: ti["state"] == "running", what="running", timeout=120
        )
        assert land["try_number"] == 1

        # The kill comes while the store holds the body halfway: once a good part of the CSV
        # is in the destination's temp object, or (ZIP) once the spool file in the worker's temp
        # folder exists and 2 s more have passed (its bytes may still sit in a 1 MiB buffer).
        def halfway() -> bool:
            if sim.sim.counters.requests["store"] != store_before + 1:
                return False
            if zipped:
                return bool(list(deployment.tmp.glob("canvas-report-*.spool")))
            return watch.partial_bytes() >= 4 << 20

        wait_for("the download to be halfway", halfway, timeout=60, interval=0.1)
        if zipped:
            time.sleep(2)
        spools_at_kill = {p.name for p in deployment.tmp.glob("canvas-report-*.spool")}
        killed_pid = kill_task_runner(system, land["id"])
        at_kill = dict(watch.partials_seen)

        run = deployment.wait_run(dag_id, run_id, timeout=180)
        # Give the watcher a last look at the final state.
        time.sleep(0.2)
    finally:
        watch.stop()

    assert run["state"] == "success", deployment.describe_run(dag_id, run_id)
    tries = {t["try_number"]: t for t in api.tries(dag_id, run_id, "land_tables")}
    assert tries[1]["state"] == "failed", f"the killed try (pid {killed_pid}) must count as failed: {tries}"
    final = api.task_instance(dag_id, run_id, "land_tables")
    assert final["state"] == "success"
    assert final["try_number"] == 2, "exactly one retry after the kill"

    # The retry landed the right bytes, and nothing else is in the folder.
    assert landed(folder) == expected
    assert not [n for n in landed(folder) if is_partial(n)]
    xcom = api.xcoms(dag_id, run_id, "land_tables")["return_value"]
    assert {o["name"]: (o["size"], o["sha256"]) for o in xcom} == expected
    # At no moment did a final name hold a partial object.
    assert watch.scans > 100
    assert not watch.violations, watch.violations
    # The window was real: the killed try was in the middle of receiving the file.
    first_try_log = "\n".join(
        p.read_text()
        for p in deployment.task_log_files(dag_id, run_id)
        if "land_tables/attempt=1.log" in str(p)
    )
    assert "Landing Canvas report" in first_try_log
    assert "Received the ZIP" not in first_try_log
    assert "Landed" not in first_try_log
    if zipped:
        assert len(spools_at_kill) == 1, spools_at_kill
        # ... and the retry removed the spool file the killed try left in the worker's temp folder.
        assert not list(deployment.tmp.glob("canvas-report-*.spool"))
    else:
        (size,) = expected.values()
        assert len(at_kill) == 1, at_kill
        assert 0 < max(at_kill.values()) < size[0]
    # One Canvas report for the whole run; the retry downloaded it again rather than restarting.
    assert sim.new_reports(before) == [report_id]
    assert sim.sim.counters.starts[REPORT] == starts_before + 1
    assert sim.sim.counters.requests["store"] == store_before + 2
    system.notes[run_id] = {
        "partials_seen": dict(watch.partials_seen),
        "spools_at_kill": sorted(spools_at_kill),
    }


def test_kill_9_mid_download_csv(system: System) -> None:
    """A CSV streams straight into the destination's temp object; kill -9 halfway, retry lands it."""
    _run_and_kill_download(system, "canvas_system_kill_download_csv", "kill-download-csv", zipped=False)


def test_kill_9_mid_download_zip(system: System) -> None:
    """A ZIP spools to local disk first (the nightly shape); kill -9 halfway, retry lands every member."""
    _run_and_kill_download(system, "canvas_system_kill_download_zip", "kill-download-zip", zipped=True)


def test_kill_9_between_start_and_wait(system: System) -> None:
    """wait_for_completion in the worker: kill -9 while it polls a queued report; the retry reconnects."""
    dag_id, run_id, task_id = "canvas_system_kill_start_wait", "kill-start-wait", "start_and_wait"
    sim = system.sims["canvas_queued"]
    api = system.api
    before = set(sim.sim.reports)
    starts_before = sim.sim.counters.starts[REPORT]
    cancels_before = sim.sim.counters.requests["abort"] + sim.sim.counters.requests["delete"]
    api.unpause(dag_id)
    api.trigger(dag_id, run_id)

    report_id = one_new_report(sim, before)
    ti = system.deployment.wait_task(
        dag_id, run_id, task_id, lambda t: t["state"] == "running", what="running", timeout=60
    )
    # The worker is polling the report, which is still queued in Canvas.
    wait_for(
        "the worker to poll the report twice",
        lambda: sim.sim.counters.status_polls[report_id] >= 2,
        timeout=30,
        interval=0.1,
    )
    assert sim.sim.reports[report_id].status == "created"
    kill_task_runner(system, ti["id"])
    polls_at_kill = sim.sim.counters.status_polls[report_id]

    run = system.deployment.wait_run(dag_id, run_id, timeout=180)
    assert run["state"] == "success", system.deployment.describe_run(dag_id, run_id)
    final = api.task_instance(dag_id, run_id, task_id)
    assert final["try_number"] == 2
    # The retry reconnected to the same report: no second start, nothing cancelled, and it
    # returned that report, complete.
    assert sim.new_reports(before) == [report_id]
    assert sim.sim.counters.starts[REPORT] == starts_before + 1
    assert sim.sim.counters.requests["abort"] + sim.sim.counters.requests["delete"] == cancels_before
    assert sim.sim.counters.status_polls[report_id] > polls_at_kill
    assert sim.sim.reports[report_id].status == "complete"
    xcoms = api.xcoms(dag_id, run_id, task_id)
    assert xcoms["return_value"]["id"] == report_id
    assert xcoms["return_value"]["status"] == "complete"
    # Where the retry found the id: Airflow 3.3's task_state_store, written right after the start.
    stored = api.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/state-store/canvas_report")
    assert stored["value"]["report_id"] == report_id
