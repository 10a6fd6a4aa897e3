"""What a DAG file using the provider loads when it is parsed, in a fresh interpreter.

Every DAG file is parsed again and again by the dag-processor, so the operator and sensor modules
load only what their constructors need; the hook, the HTTP clients, the trigger (and with it
``airflow.triggers``) and the storage package's I/O modules load when a task runs. The set is
pinned: a new module-level import on the parse path fails here (benchmarks/imports.py measures
the cost).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "airflow_provider_canvas_reports"

# Everything of ours a parse loads: what the constructors use to check their arguments.
PARSE_MODULES = {
    f"{PACKAGE}.canvas",
    f"{PACKAGE}.canvas.polling",  # PollPolicy checks the intervals
    f"{PACKAGE}.canvas.states",
    f"{PACKAGE}.links",
    f"{PACKAGE}.links.canvas",  # the extra link is a class attribute
    f"{PACKAGE}.operators",
    f"{PACKAGE}.operators._arguments",  # checks durations, switches and counts
    f"{PACKAGE}.operators._common",
    f"{PACKAGE}.operators._turns",  # take_turn, imported with the operator modules
    f"{PACKAGE}.operators.download",
    f"{PACKAGE}.operators.reports",
    f"{PACKAGE}.sensors",
    f"{PACKAGE}.sensors.reports",
    f"{PACKAGE}.storage",  # the package itself only: its names load lazily
    f"{PACKAGE}.storage.model",  # OverwritePolicy and ZipLimits check overwrite= and zip_limits=
}
# A few of what a parse must not load, named so that a failure says what came back.
TASK_ONLY = [
    "aiohttp",
    "requests",
    "airflow.triggers.base",
    f"{PACKAGE}.hooks.canvas",
    f"{PACKAGE}.triggers.reports",
    f"{PACKAGE}.canvas.report",
    f"{PACKAGE}.canvas.errors",
    f"{PACKAGE}.storage.writer",
    f"{PACKAGE}.storage.zipfiles",
]

DAG_FILE = """
import json, sys
import airflow.sdk

before = set(sys.modules)

from airflow.sdk import DAG

from airflow_provider_canvas_reports.operators.reports import DownloadReportOperator, StartAccountReportOperator
from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor

with DAG("parse_cost", schedule=None):
    StartAccountReportOperator(
        task_id="start", report="provisioning_csv", parameters={"users": True},
        wait_for_completion=True, deferrable=True, timeout=3600,
    )
    ReportCompleteSensor(
        task_id="wait", report="provisioning_csv", report_id="{{ ti.xcom_pull('start')['id'] }}",
        deferrable=True, timeout=600, max_poll_interval=120,
    )
    DownloadReportOperator(
        task_id="land", report="provisioning_csv", report_id="1", destination="file:///tmp/lake/",
        overwrite="skip_identical", zip_limits={"max_members": 10},
    )
print(json.dumps(sorted(set(sys.modules) - before)))
"""

BAD_ARGUMENTS = """
import json, sys
from airflow_provider_canvas_reports.operators.reports import DownloadReportOperator

errors = []
for bad in ({"overwrite": "sometimes"}, {"zip_limits": {"max_members": 0}}, {"zip_limits": {"max_member": 5}}):
    try:
        DownloadReportOperator(task_id="land", report="r", report_id="1", destination="file:///tmp/", **bad)
    except (TypeError, ValueError) as exc:
        errors.append(str(exc))
storage = sorted(m for m in sys.modules if m.startswith("airflow_provider_canvas_reports.storage."))
print(json.dumps([errors, storage]))
"""


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=180, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.strip().splitlines()[-1]


def test_a_dag_parse_loads_only_what_the_constructors_need() -> None:
    loaded = set(json.loads(_run(DAG_FILE)))
    ours = {name for name in loaded if name.startswith(f"{PACKAGE}.")}
    assert ours == PARSE_MODULES, (
        f"added: {sorted(ours - PARSE_MODULES)}, gone: {sorted(PARSE_MODULES - ours)}"
    )
    assert [name for name in TASK_ONLY if name in loaded] == []


def test_bad_download_arguments_fail_at_parse_with_only_the_storage_value_types_loaded() -> None:
    errors, storage = json.loads(_run(BAD_ARGUMENTS))
    assert len(errors) == 3
    assert "overwrite='sometimes' is not a known policy" in errors[0]
    assert "ZipLimits.max_members must be > 0" in errors[1]
    assert "max_member" in errors[2]
    assert storage == [f"{PACKAGE}.storage.model"]


def test_the_default_connection_is_the_hooks() -> None:
    """The operators name the hook's default connection without importing the hook at parse."""
    from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
    from airflow_provider_canvas_reports.operators.reports import (
        DownloadReportOperator,
        StartAccountReportOperator,
    )
    from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor

    built = [
        StartAccountReportOperator(task_id="start", report="provisioning_csv"),
        ReportCompleteSensor(task_id="wait", report="provisioning_csv", report_id="1"),
        DownloadReportOperator(
            task_id="land", report="provisioning_csv", report_id="1", destination="file:///x/"
        ),
    ]
    assert [op.canvas_conn_id for op in built] == [CanvasHook.default_conn_name] * 3
