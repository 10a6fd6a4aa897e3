"""DAGs for the system tests: the nightly export's shape (start >> wait >> land) with small timings.

Copied into the system deployment's dags folder next to ``example_canvas_nightly_provisioning``.
The example itself waits 5 minutes between retries and polls every minute; these DAGs keep its
structure and operators but retry after seconds, so a crash and its recovery fit in a test.

Configuration comes from the deployment's environment (connections ``canvas_big``,
``canvas_queued``, ``canvas_long`` point at differently configured Canvas simulators) and
``CANVAS_SYSTEST_LAKE`` (a ``file://`` folder URL).
"""

from __future__ import annotations

import os
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_canvas_reports.operators.reports import (
    DownloadReportOperator,
    StartAccountReportOperator,
)
from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor

REPORT = "provisioning_csv"
LAKE = os.environ.get("CANVAS_SYSTEST_LAKE", "file:///tmp/canvas-systest-lake/").rstrip("/")
START = pendulum.datetime(2026, 1, 1, tz="UTC")
REPORT_ID = "{{ ti.xcom_pull(task_ids='start_export')['id'] }}"
# A retry waits this long (the example: 5 minutes).
RETRY_DELAY = timedelta(seconds=3)


def _export_dag(dag_id: str, conn_id: str, tables: tuple[str, ...], *, retries: int = 2) -> DAG:
    """start_export >> wait_for_export (deferred) >> land_tables, as in the nightly example."""
    with DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=START,
        catchup=False,
        default_args={"retries": retries, "retry_delay": RETRY_DELAY},
        tags=["canvas", "system-test"],
    ) as dag:
        start = StartAccountReportOperator(
            task_id="start_export",
            canvas_conn_id=conn_id,
            report=REPORT,
            parameters={**dict.fromkeys(tables, True), "skip_message": True},
        )
        wait = ReportCompleteSensor(
            task_id="wait_for_export",
            canvas_conn_id=conn_id,
            report=REPORT,
            report_id=REPORT_ID,
            deferrable=True,
            poke_interval=1,
            adaptive_polling=False,
            timeout=600,
        )
        land = DownloadReportOperator(
            task_id="land_tables",
            canvas_conn_id=conn_id,
            report=REPORT,
            report_id=REPORT_ID,
            destination=LAKE + "/" + dag_id + "/{{ run_id }}/",
            extract_zip=True,
            download_retry_delay=1.0,
        )
        start >> wait >> land
    return dag


# kill -9 of the download: one CSV streamed straight into the destination folder ...
kill_download_csv = _export_dag("canvas_system_kill_download_csv", "canvas_big", ("users",))
# ... and a ZIP spooled to local disk, then extracted member by member (the nightly shape).
kill_download_zip = _export_dag(
    "canvas_system_kill_download_zip", "canvas_big", ("users", "courses", "enrollments")
)

# kill -9 while the start operator waits in the worker (wait_for_completion, not deferrable).
with DAG(
    dag_id="canvas_system_kill_start_wait",
    schedule=None,
    start_date=START,
    catchup=False,
    default_args={"retries": 1, "retry_delay": RETRY_DELAY},
    tags=["canvas", "system-test"],
) as kill_start_wait:
    StartAccountReportOperator(
        task_id="start_and_wait",
        canvas_conn_id="canvas_queued",
        report=REPORT,
        parameters={"users": True, "skip_message": True},
        wait_for_completion=True,
        deferrable=False,
        poll_interval=1,
        adaptive_polling=False,
        timeout=600,
    )

# Sensors waiting on long reports: deferred (triggerer crashes, failover, a user marking failed),
# and poking in the worker (a user marking it success or failed: SIGTERM, then on_kill).
for _conn_id, _dag_id, _deferrable in (
    ("canvas_long", "canvas_system_long_wait", True),
    ("canvas_queued", "canvas_system_queued_wait", True),
    ("canvas_long", "canvas_system_long_poke", False),
):
    with DAG(
        dag_id=_dag_id,
        schedule=None,
        start_date=START,
        catchup=False,
        max_active_runs=16,
        tags=["canvas", "system-test"],
    ) as _dag:
        _start = StartAccountReportOperator(
            task_id="start_export",
            canvas_conn_id=_conn_id,
            report=REPORT,
            parameters={"users": True, "skip_message": True},
        )
        _wait = ReportCompleteSensor(
            task_id="wait_for_export",
            canvas_conn_id=_conn_id,
            report=REPORT,
            report_id=REPORT_ID,
            deferrable=_deferrable,
            poke_interval=1,
            adaptive_polling=False,
            timeout=600,
        )
        _start >> _wait
    globals()[_dag_id] = _dag

# Start tasks released together take turns (their rank in this DAG, read by the task runner).
with DAG(
    dag_id="canvas_system_take_turns",
    schedule=None,
    start_date=START,
    catchup=False,
    tags=["canvas", "system-test"],
) as take_turns:
    for _table in ("courses", "terms", "users"):
        StartAccountReportOperator(
            task_id=f"start_{_table}",
            canvas_conn_id="canvas_default",
            report=REPORT,
            parameters={_table: True, "skip_message": True},
        )
