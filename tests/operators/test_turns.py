"""Tasks of one DAG released together take turns: a task's rank among them, from the DAG itself."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_provider_canvas_reports.operators._turns import pause_seconds, release_rank
from airflow_provider_canvas_reports.operators.download import DownloadReportOperator
from airflow_provider_canvas_reports.operators.reports import StartAccountReportOperator
from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor

REPORT = "provisioning_csv"


class NightlyStart(StartAccountReportOperator):
    pass


def start(task_id: str) -> StartAccountReportOperator:
    return StartAccountReportOperator(task_id=task_id, report=REPORT, parameters={"users": True})


def download(task_id: str, **kwargs: object) -> DownloadReportOperator:
    return DownloadReportOperator(
        task_id=task_id, report=REPORT, report_id=1, destination="file:///tmp/x/", **kwargs
    )


def test_rank_among_the_tasks_of_a_kind_with_the_same_upstream_tasks():
    with DAG("ranks", schedule=None, start_date=datetime(2026, 1, 1)):
        sub = NightlyStart(task_id="b_sub", report=REPORT)
        plain = start("c_plain")
        StartAccountReportOperator.partial(task_id="a_mapped", report=REPORT).expand(
            parameters=[{"users": True}]
        )
        EmptyOperator(task_id="0_not_a_start_task")
        later = start("d_later")
        plain >> later
        # Downloads are their own kind: ranked among downloads only.
        first_download, second_download = download("x_download"), download("y_download")
        plain >> [first_download, second_download]
        # Sensors too: a sensor is no start task, even beside one.
        sensor = ReportCompleteSensor(task_id="w_sensor", report=REPORT, report_id=1)
        plain >> sensor
    # a_mapped (mapped), b_sub (a subclass) and c_plain have no upstream task; EmptyOperator is no start task.
    assert release_rank(sub, StartAccountReportOperator) == (1, 3)
    assert release_rank(plain, StartAccountReportOperator) == (2, 3)
    assert release_rank(later, StartAccountReportOperator) == (0, 1)  # alone behind c_plain
    assert release_rank(first_download, DownloadReportOperator) == (0, 2)
    assert release_rank(second_download, DownloadReportOperator) == (1, 2)
    assert release_rank(sensor, ReportCompleteSensor) == (0, 1)


def test_a_task_in_no_dag_is_alone():
    assert release_rank(start("alone"), StartAccountReportOperator) == (0, 1)


def test_a_mapped_download_is_ranked_behind_the_start_it_maps_over():
    with DAG("mapped", schedule=None, start_date=datetime(2026, 1, 1)) as dag:
        started = StartAccountReportOperator.partial(task_id="start", report=REPORT).expand(
            parameters=[{"users": True}, {"courses": True}]
        )
        DownloadReportOperator.partial(
            task_id="download", report=REPORT, destination="file:///tmp/x/"
        ).expand(report_id=started.output)
    mapped = dag.get_task("download")
    assert mapped.upstream_task_ids == {"start"}
    assert release_rank(mapped, DownloadReportOperator) == (0, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "expected"), [(0, 0.0), (0.2, 0.2), (timedelta(seconds=3), 3.0)])
def test_pause_seconds(value, expected):
    assert pause_seconds(value, "start_spacing") == expected


@pytest.mark.parametrize("bad", [-1, float("nan"), timedelta(seconds=-1)])
def test_pause_seconds_refuses_negative_or_nan(bad):
    with pytest.raises(ValueError, match="start_spacing must be a duration of 0 or more"):
        pause_seconds(bad, "start_spacing")
    with pytest.raises(ValueError, match="start_spacing must be a duration of 0 or more"):
        download("d", start_spacing=bad)
