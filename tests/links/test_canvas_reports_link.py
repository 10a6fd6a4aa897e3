"""CanvasReportsLink: where it points, and that it never carries a credential.

Its value in a real run (the XCom the worker stores at the end of a try) is checked end to
end in tests/e2e/test_start_and_wait.py.
"""

from __future__ import annotations

import pytest

from airflow_provider_canvas_reports.get_provider_info import get_provider_info
from airflow_provider_canvas_reports.links.canvas import XCOM_KEY, CanvasReportsLink, safe_link
from airflow_provider_canvas_reports.operators.reports import StartAccountReportOperator
from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://school.instructure.com/accounts/self/settings#tab-reports",
            "https://school.instructure.com/accounts/self/settings#tab-reports",
        ),
        (
            "http://127.0.0.1:8900/accounts/3/settings#tab-reports",
            "http://127.0.0.1:8900/accounts/3/settings#tab-reports",
        ),
        (
            "https://me:secret-token@canvas.test/accounts/1/settings",
            "https://canvas.test/accounts/1/settings",
        ),
        (
            "https://canvas.test/accounts/1/settings?access_token=secret-token#x",
            "https://canvas.test/accounts/1/settings#x",
        ),
        ("javascript:alert(1)", ""),
        ("file:///etc/passwd", ""),
        ("", ""),
        (None, ""),
        (42, ""),
    ],
)
def test_safe_link(url, expected):
    assert safe_link(url) == expected
    assert "secret-token" not in safe_link(url)


def test_both_tasks_carry_the_link_and_push_its_key():
    assert XCOM_KEY == "canvas_reports_url"
    for cls in (StartAccountReportOperator, ReportCompleteSensor):
        assert [type(link) for link in cls.operator_extra_links] == [CanvasReportsLink]
    assert CanvasReportsLink().name == "Canvas reports"
    assert CanvasReportsLink().xcom_key == "_link_CanvasReportsLink"


def test_registered_in_provider_info():
    assert (
        "airflow_provider_canvas_reports.links.canvas.CanvasReportsLink" in get_provider_info()["extra-links"]
    )


def test_no_xcom_gives_no_link_rather_than_an_error():
    class Key:
        dag_id, task_id, run_id, map_index, try_number = "d", "t", "r", -1, 1

    operator = StartAccountReportOperator(task_id="start", report="provisioning_csv")
    assert CanvasReportsLink().get_link(operator, ti_key=Key()) == ""
