"""One report for several sub-accounts at once, with dynamic task mapping.

Each day it runs ``last_user_access_csv`` for every sub-account listed in the Variable
``canvas_sub_accounts`` (a JSON list, default ``[2, 3, 4]``: the simulator's two colleges and a
department of the second, whose users are also in its college's file): one mapped
task instance per account starts the report and waits for it on the triggerer, then one mapped
download per account lands its CSV under ``<lake>/canvas/last_user_access/<ds>/account=<id>/``.
Adding an account is a Variable change, not a code change. Every CSV is announced through the
default asset alias ``canvas-reports``.

Same lake settings as ``example_canvas_nightly_provisioning`` (Variable ``canvas_lake_url`` /
env ``CANVAS_LAKE_URL``, Variable ``canvas_lake_conn_id``, env ``CANVAS_POLL_INTERVAL``).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Variable, task

from airflow_provider_canvas_reports.operators.reports import (
    DownloadReportOperator,
    StartAccountReportOperator,
)

REPORT = "last_user_access_csv"
DEFAULT_SUB_ACCOUNTS = [2, 3, 4]
DEFAULT_LAKE_URL = os.environ.get("CANVAS_LAKE_URL") or (
    (Path(__file__).resolve().parents[1] / ".demo" / "lake").as_uri() + "/"
)
POLL_INTERVAL = float(os.environ.get("CANVAS_POLL_INTERVAL", "60"))


def lake(*parts: Any) -> str:
    """A folder URL under the lake; called when the task's templates render, not at parse time."""
    base = str(Variable.get("canvas_lake_url", default=DEFAULT_LAKE_URL))
    path = "/".join(str(p).strip("/") for p in parts if str(p).strip("/"))
    return f"{base.rstrip('/')}/{path}/" if path else base.rstrip("/") + "/"


def download_kwargs(started_and_account: tuple[dict[str, Any], Any]) -> dict[str, Any]:
    """Pair each started report (its Canvas JSON) with the account it was started on."""
    report, account_id = started_and_account
    return {"report_id": report["id"], "account_id": account_id}


with DAG(
    dag_id="example_canvas_mapped_reports",
    description="last_user_access_csv for several sub-accounts in parallel (dynamic task mapping)",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": timedelta(minutes=5)},
    user_defined_macros={"lake": lake},
    tags=["canvas", "example"],
) as dag:

    @task
    def sub_accounts() -> list[Any]:
        """The accounts to report on, read at run time so the list can change without a deploy."""
        accounts = Variable.get("canvas_sub_accounts", default=DEFAULT_SUB_ACCOUNTS, deserialize_json=True)
        if not isinstance(accounts, list) or not accounts:
            raise ValueError("Variable canvas_sub_accounts must be a non-empty JSON list of account ids")
        return accounts

    accounts = sub_accounts()

    # One mapped instance per account: each starts its report and waits for it (deferred).
    started = StartAccountReportOperator.partial(
        task_id="run_report",
        report=REPORT,
        parameters={"skip_message": True},
        wait_for_completion=True,
        deferrable=True,
        poll_interval=POLL_INTERVAL,
        timeout=2 * 3600,
    ).expand(account_id=accounts)

    DownloadReportOperator.partial(
        task_id="land_report",
        report=REPORT,
        destination="{{ lake('canvas/last_user_access', ds, 'account=' ~ task.account_id) }}",
        dest_conn_id="{{ var.value.get('canvas_lake_conn_id', '') }}",
    ).expand_kwargs(started.output.zip(accounts).map(download_kwargs))
