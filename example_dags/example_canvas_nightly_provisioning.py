"""Nightly provisioning export: Canvas -> one object per table in a date-partitioned folder.

Each night it asks Canvas for a provisioning report with six tables (users, courses, sections,
enrollments, terms, accounts), waits for it on the triggerer (no worker slot held), downloads the
ZIP Canvas produces and lands one object per table under ``<lake>/canvas/provisioning/<ds>/``
(``users.csv``, ``courses.csv``, ...). The landed objects are announced as assets through the
alias ``canvas-provisioning``, which ``example_canvas_load_warehouse`` is scheduled on.

Configuration (nothing is read from the metadata DB when the file is parsed):
- connection ``canvas_default``: the Canvas URL and API token;
- Variable ``canvas_lake_url`` (or env ``AIRFLOW_VAR_CANVAS_LAKE_URL``): the lake folder, e.g.
  ``s3://my-lake/`` or ``file:///data/lake/``; else env ``CANVAS_LAKE_URL``; else
  ``file://<project>/.demo/lake/``;
- Variable ``canvas_lake_conn_id``: the connection for the lake (e.g. ``aws_default``), if any;
- env ``CANVAS_POLL_INTERVAL``: seconds between status checks (default 60).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, Variable

from airflow_provider_canvas_reports.operators.reports import (
    DownloadReportOperator,
    StartAccountReportOperator,
)
from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor

REPORT = "provisioning_csv"
TABLES = ("users", "courses", "sections", "enrollments", "terms", "accounts")
ASSET_ALIAS = "canvas-provisioning"
DEFAULT_LAKE_URL = os.environ.get("CANVAS_LAKE_URL") or (
    (Path(__file__).resolve().parents[1] / ".demo" / "lake").as_uri() + "/"
)
POLL_INTERVAL = float(os.environ.get("CANVAS_POLL_INTERVAL", "60"))


def lake(*parts: str) -> str:
    """A folder URL under the lake; called when the task's templates render, not at parse time."""
    base = str(Variable.get("canvas_lake_url", default=DEFAULT_LAKE_URL))
    path = "/".join(str(p).strip("/") for p in parts if str(p).strip("/"))
    return f"{base.rstrip('/')}/{path}/" if path else base.rstrip("/") + "/"


with DAG(
    dag_id="example_canvas_nightly_provisioning",
    description="Nightly Canvas provisioning export, one object per table under <lake>/canvas/provisioning/<ds>/",
    schedule="30 2 * * *",  # after the nightly SIS import, before people start work
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    user_defined_macros={"lake": lake},
    tags=["canvas", "example"],
) as dag:
    start = StartAccountReportOperator(
        task_id="start_export",
        report=REPORT,
        parameters={
            **dict.fromkeys(TABLES, True),
            # Scheduled runs must not e-mail the token's owner every night.
            "skip_message": True,
        },
    )
    wait = ReportCompleteSensor(
        task_id="wait_for_export",
        report=REPORT,
        report_id="{{ ti.xcom_pull(task_ids='start_export')['id'] }}",
        deferrable=True,  # waits on the triggerer: no worker slot for the hours a report can take
        poke_interval=POLL_INTERVAL,
        timeout=4 * 3600,  # then the report is aborted in Canvas and the task fails
    )
    land = DownloadReportOperator(
        task_id="land_tables",
        report=REPORT,
        report_id="{{ ti.xcom_pull(task_ids='start_export')['id'] }}",
        destination="{{ lake('canvas/provisioning', ds) }}",
        dest_conn_id="{{ var.value.get('canvas_lake_conn_id', '') }}",
        extract_zip=True,  # users.csv, courses.csv, ... instead of one ZIP
        asset_alias=ASSET_ALIAS,
    )
    start >> wait >> land
