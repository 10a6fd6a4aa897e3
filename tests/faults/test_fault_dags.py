"""Fault matrix through dag.test(): a representative subset run as real DAG runs.

start (StartAccountReportOperator) -> wait (ReportCompleteSensor, deferrable: the trigger runs
inline from its serialised form) -> land (DownloadReportOperator into a file:// folder).
Airflow's own retries, task states and XComs are in play here; the other modules of this
folder call execute()/the trigger directly for the full tables.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import DAG
from canvas_harness import HANG_GUARD, REPORT, Sim, listing, matrix_policy

from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.operators.download import DownloadReportOperator
from airflow_provider_canvas_reports.operators.reports import StartAccountReportOperator
from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor
from airflow_provider_canvas_reports.simulator import Fault
from tests.fixtures.dag_runs import DagResult
from tests.fixtures.simulator import queued_until_the_sensor_starts

POLICY = matrix_policy()
REPORT_ID = "{{ ti.xcom_pull(task_ids='start', key='report_id') }}"

RunDag = Callable[..., DagResult]


def pipeline(
    dag_id: str,
    lake: Path,
    *,
    start: dict[str, Any] | None = None,
    wait: dict[str, Any] | None = None,
    policy: RetryPolicy = POLICY,
) -> DAG:
    start_kwargs: dict[str, Any] = {
        "parameters": {"users": True},
        "canvas_retry_policy": policy,
        **(start or {}),
    }
    wait_kwargs: dict[str, Any] = {
        "deferrable": True,
        "poke_interval": 0.1,
        "timeout": 30,
        "canvas_retry_policy": policy,
        "max_consecutive_errors": 2,
        **(wait or {}),
    }
    with DAG(dag_id, schedule=None, start_date=datetime(2026, 1, 1), catchup=False) as dag:
        first = StartAccountReportOperator(task_id="start", report=REPORT, **start_kwargs)
        second = ReportCompleteSensor(task_id="wait", report=REPORT, report_id=REPORT_ID, **wait_kwargs)
        third = DownloadReportOperator(
            task_id="land",
            report=REPORT,
            report_id=REPORT_ID,
            destination=lake.as_uri(),
            canvas_retry_policy=policy,
            download_attempts=2,
            download_retry_delay=0.05,
        )
        first >> second >> third
    return dag


@pytest.fixture
def output(capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> Callable[[], str]:
    """What dag.test()'s task runner printed plus stdlib log records."""

    def text() -> str:
        captured = capfd.readouterr()
        return captured.out + captured.err + caplog.text

    return text


def timed(run_dag: RunDag, dag: DAG) -> DagResult:
    began = time.monotonic()
    result = run_dag(dag)
    assert time.monotonic() - began < HANG_GUARD
    return result


def test_lost_start_then_faults_on_every_hop_still_land_one_report(
    sim: Sim, dag_runner: RunDag, lake: Path, output: Callable[[], str]
) -> None:
    """503 on the start POST (Airflow retries the task), a reset on a poll, a truncated body."""
    sim.sim.add_fault(Fault(endpoint="start", kind="503"))
    sim.sim.add_fault(Fault(endpoint="status", kind="reset"))
    sim.sim.add_fault(Fault(endpoint="store", kind="truncate"))
    dag = pipeline("faults_recovered", lake, start={"retries": 1, "retry_delay": timedelta(0)})
    result = timed(dag_runner, dag)
    assert result.states() == {"start": "success", "wait": "success", "land": "success"}
    assert result["start"].try_number == 2
    assert sim.starts == 1
    report_id = result["start"].xcoms["report_id"]
    attachment = sim.sim.reports[report_id].attachment
    assert listing(lake) == {attachment.display_name: Path(attachment.file.path).read_bytes()}
    assert sim.counters.files_auth_headers == 0
    text = output()
    assert (
        "Canvas may have received the request to start a report on account self, but Canvas answered HTTP 503"
        in text
    )
    assert "The download of report" in text
    assert "Nothing was written; retry the task." in text


@pytest.mark.simulator(
    throttle="403", bucket_capacity=120, request_cost=50, actual_cost=35, leak_per_second=10
)
def test_legacy_403_throttle_storm_across_the_whole_pipeline(
    sim: Sim, dag_runner: RunDag, lake: Path
) -> None:
    """A small leaky bucket throttles start, polls and the download hop with Canvas's legacy 403.

    The 403 has no Retry-After, so the client's own backoff must outlast the bucket (5 s to drain
    here); the download hop recognises it by `x-rate-limit-remaining: 0.0` (it never reads bodies).
    """
    storm = RetryPolicy(max_attempts=8, base_delay=0.5, max_delay=2.0, max_elapsed=40, read_timeout=5.0)
    wait = {"adaptive_polling": False, **queued_until_the_sensor_starts(sim.sim)}  # polls in a burst
    dag = pipeline("faults_403_storm", lake, wait=wait, policy=storm)
    result = timed(dag_runner, dag)
    assert result.states() == {"start": "success", "wait": "success", "land": "success"}
    assert sim.counters.throttled > 0
    assert sim.starts == 1
    assert len(listing(lake)) == 1


def test_stuck_running_is_aborted_at_the_deadline_and_nothing_lands(
    sim: Sim, dag_runner: RunDag, lake: Path, output: Callable[[], str]
) -> None:
    sim.sim.script_report(REPORT, "stuck_running")
    result = timed(dag_runner, pipeline("faults_stuck_running", lake, wait={"timeout": 1.5}))
    assert result.states() == {"start": "success", "wait": "failed", "land": "upstream_failed"}
    report_id = result["start"].xcoms["report_id"]
    assert sim.status(report_id) == "aborted"
    assert sim.running_reports() == []
    assert listing(lake) == {}
    text = output()
    assert f"Canvas report provisioning_csv #{report_id} did not finish within 2s (the timeout)" in text
    assert "Cancelled it in Canvas: aborted it (it was running)." in text


def test_polls_failing_in_the_triggerer_fail_the_sensor_and_nothing_lands(
    sim: Sim, dag_runner: RunDag, lake: Path, output: Callable[[], str]
) -> None:
    sim.sim.add_fault(Fault(endpoint="status", kind="503", times=None))
    result = timed(dag_runner, pipeline("faults_status_503", lake))
    assert result.states() == {"start": "success", "wait": "failed", "land": "upstream_failed"}
    assert listing(lake) == {}
    assert sim.starts == 1
    text = output()
    assert "Gave up waiting for Canvas report provisioning_csv #101 after 2 consecutive failed polls" in text
    assert (
        "Canvas answered HTTP 503 to read the report status on account self (report provisioning_csv #101) "
        "beyond the retry budget" in text
    )


def test_store_down_fails_the_download_and_the_lake_stays_empty(
    sim: Sim, dag_runner: RunDag, lake: Path, output: Callable[[], str]
) -> None:
    sim.sim.add_fault(Fault(endpoint="store", kind="503", times=None))
    result = timed(dag_runner, pipeline("faults_store_down", lake))
    assert result.states() == {"start": "success", "wait": "success", "land": "failed"}
    assert listing(lake) == {}
    assert "Could not download report #101: the file host answered HTTP 503 after 3 attempts" in output()


def test_report_error_fails_the_waiting_start_with_canvas_reason(
    sim: Sim, dag_runner: RunDag, lake: Path, output: Callable[[], str]
) -> None:
    sim.sim.script_report(REPORT, "error")
    dag = pipeline(
        "faults_report_error",
        lake,
        start={"wait_for_completion": True, "deferrable": True, "poll_interval": 0.1},
    )
    result = timed(dag_runner, dag)
    assert result.states() == {"start": "failed", "wait": "upstream_failed", "land": "upstream_failed"}
    assert sim.starts == 1
    assert listing(lake) == {}
    assert (
        "Canvas report provisioning_csv #101 ended with status 'error': Failed, the report failed to generate "
        "a file. Please try again." in output()
    )


@pytest.mark.simulator(run_seconds=2.0)  # deleted 1 s after it starts: the sensor sees it alive first
def test_deleted_by_someone_else_fails_the_poking_sensor(
    sim: Sim, dag_runner: RunDag, lake: Path, output: Callable[[], str]
) -> None:
    sim.sim.script_report(REPORT, "deleted_by_other")
    wait = {"deferrable": False, "mode": "poke", **queued_until_the_sensor_starts(sim.sim)}
    result = timed(dag_runner, pipeline("faults_deleted", lake, wait=wait))
    assert result.states() == {"start": "success", "wait": "failed", "land": "upstream_failed"}
    assert sim.counters.requests["abort"] == sim.counters.requests["delete"] == 0
    assert listing(lake) == {}
    assert "no longer exists in Canvas (HTTP 404 while waiting; last status" in output()
