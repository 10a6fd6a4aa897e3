"""Bad inputs from the DAG author: the connection, the report, its parameters, ids and durations.

Each case runs the real task against the simulator and asserts the exact error text, and that
Canvas saw no start (the simulator's start counter stays at 0).
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from airflow.sdk import DAG, TaskGroup
from canvas_harness import HANG_GUARD, REPORT, Sim, env_name, run_task, simulator

from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.hooks.canvas import CanvasHook
from airflow_provider_canvas_reports.operators.download import DownloadReportOperator
from airflow_provider_canvas_reports.operators.reports import StartAccountReportOperator
from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor

POLICY = RetryPolicy(max_attempts=2, base_delay=0.05, max_delay=0.1, max_elapsed=10, connect_timeout=2)
TABLE_FLAGS = (
    "users, accounts, terms, courses, sections, enrollments, groups, group_categories, group_membership, "
    "xlist, user_observers, admins"
)


def start(**kwargs: Any) -> StartAccountReportOperator:
    kwargs.setdefault("report", REPORT)
    kwargs.setdefault("parameters", {"users": True})
    kwargs.setdefault("canvas_retry_policy", POLICY)
    return StartAccountReportOperator(task_id="start", **kwargs)


def download(**kwargs: Any) -> DownloadReportOperator:
    """A download task with one argument under test; the others as a DAG would give them."""
    return DownloadReportOperator(task_id="d", report=REPORT, report_id=1, destination="/x", **kwargs)


@pytest.fixture
def canvas() -> Iterator[Sim]:
    with simulator() as sim:
        yield sim


def set_connection(monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any]) -> None:
    monkeypatch.setenv(env_name("canvas_default"), json.dumps({"conn_type": "canvas", **conn}))


def refused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- the connection ------------------------------------------------------------------------------

NO_TOKEN = (
    "The Canvas connection 'canvas_default' has no API token. Put the token in the connection's password "
    "field (Account > Settings > New Access Token in Canvas)."
)


@pytest.mark.parametrize(
    ("conn", "message"),
    [
        pytest.param({}, NO_TOKEN, id="missing-token"),
        pytest.param({"password": ""}, NO_TOKEN, id="empty-token"),
        pytest.param({"password": "  \t "}, NO_TOKEN, id="blank-token"),
        pytest.param(
            {"host": "http://canvas.school.example", "password": "t"},
            "Refusing plain http:// to canvas.school.example: the API token would travel unencrypted. Use "
            "https://, or set the connection extra allow_http=true if this is a trusted network.",
            id="http-to-a-remote-host",
        ),
        pytest.param(
            {"host": "http://10.1.2.3:8080", "password": "t", "extra": {"allow_http": "yes"}},
            "Refusing plain http:// to 10.1.2.3: the API token would travel unencrypted. Use https://, or set "
            "the connection extra allow_http=true if this is a trusted network.",
            id="http-allow_http-not-a-boolean",
        ),
        pytest.param(
            {"host": "", "password": "t"},
            "The Canvas connection has no host. Set it to your Canvas URL, e.g. https://school.instructure.com",
            id="empty-host",
        ),
        pytest.param(
            {"host": "ftp://canvas.school.example", "password": "t"},
            "The Canvas connection host uses the scheme 'ftp'. Use https://<your canvas host>.",
            id="other-scheme",
        ),
        pytest.param(
            {"host": "https://admin:hunter2@canvas.school.example", "password": "t"},
            "The Canvas connection host contains credentials. Put the API token in the password field only.",
            id="credentials-in-host",
        ),
        pytest.param(
            {"host": "https://canvas.school.example:99999", "password": "t"},
            "The Canvas connection host is not a valid URL (Port out of range 0-65535). Use "
            "https://<your canvas host>.",
            id="port-out-of-range",
        ),
        pytest.param(
            {"host": "https://canvas.school.example", "password": "t", "extra": {"account_id": "1 OR 1=1"}},
            "Invalid Canvas account_id '1 OR 1=1'. Use 'self', a numeric account id, or 'sis_account_id:<id>'.",
            id="junk-account-in-extra",
        ),
    ],
)
def test_bad_connection_fails_before_any_request(
    canvas: Sim, monkeypatch: pytest.MonkeyPatch, conn: dict[str, Any], message: str
) -> None:
    conn.setdefault("host", canvas.url)
    set_connection(monkeypatch, conn)
    run = run_task(start())
    assert run.message == message
    assert canvas.counters.total_requests == 0
    assert canvas.starts == 0


@pytest.mark.parametrize(
    ("host", "base"),
    [
        ("school.instructure.com", "https://school.instructure.com"),
        ("School.Instructure.com/", "https://school.instructure.com"),
        ("school.instructure.com/api/v1/", "https://school.instructure.com"),
        ("  https://school.instructure.com/api  ", "https://school.instructure.com"),
        ("canvas.school.example:8443/lms", "https://canvas.school.example:8443/lms"),
    ],
)
def test_host_without_scheme_means_https(monkeypatch: pytest.MonkeyPatch, host: str, base: str) -> None:
    """Not an error: a bare host name (or a pasted API URL) becomes the https base URL."""
    set_connection(monkeypatch, {"host": host, "password": "t"})
    hook = CanvasHook()
    assert hook.base_url == base
    assert hook.reports_page_url() == f"{base}/accounts/self/settings#tab-reports"


@pytest.mark.parametrize("blank", ["", "   ", None])
def test_a_blank_account_id_in_the_extra_is_the_root_account(
    monkeypatch: pytest.MonkeyPatch, blank: Any
) -> None:
    """The form's account field left empty (or holding only spaces) names no account: 'self'."""
    set_connection(
        monkeypatch,
        {"host": "https://school.instructure.com", "password": "t", "extra": {"account_id": blank}},
    )
    hook = CanvasHook()
    assert hook.default_account_id == "self"
    assert hook.reports_page_url() == "https://school.instructure.com/accounts/self/settings#tab-reports"


def test_unreachable_host_fails_within_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    port = refused_port()
    set_connection(monkeypatch, {"host": f"http://127.0.0.1:{port}", "password": "t"})
    run = run_task(start())
    assert run.elapsed < HANG_GUARD
    assert run.message == (
        "Could not list the available reports on account self: could not connect to Canvas after 2 attempts. "
        f"Check that the Canvas host (http://127.0.0.1:{port}) is reachable from the worker; the task can be "
        "retried."
    )


def test_unreachable_host_while_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    port = refused_port()
    set_connection(monkeypatch, {"host": f"http://127.0.0.1:{port}", "password": "t"})
    task = ReportCompleteSensor(task_id="wait", report=REPORT, report_id=5, poke_interval=0.05, timeout=20,
                                max_consecutive_errors=2, canvas_retry_policy=POLICY)  # fmt: skip
    run = run_task(task)
    assert run.elapsed < HANG_GUARD
    assert run.message == (
        "Gave up waiting for Canvas report provisioning_csv #5 after 2 consecutive failed polls (each one "
        "already retried by the client). Last error: CanvasRetryExhaustedError: Could not read the report "
        "status on account self (report provisioning_csv #5): could not connect to Canvas after 2 attempts. "
        f"Check that the Canvas host (http://127.0.0.1:{port}) is reachable from the worker; the task can be "
        "retried. Canvas report provisioning_csv #5 was not cancelled and may still be running: "
        f"http://127.0.0.1:{port}/accounts/self/settings#tab-reports. Retrying or clearing this task waits for "
        "it again."
    )


def test_token_canvas_rejects(canvas: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    set_connection(monkeypatch, {"host": canvas.url, "password": "not-a-token"})
    run = run_task(start())
    assert run.message == (
        "Canvas refused to list the available reports on account self: the API token is missing, invalid or "
        "expired (Canvas said: Invalid access token.). Put a current token in the connection's password field."
    )
    assert canvas.starts == 0


# -- the report and its parameters --------------------------------------------------------------

OFFERED = (
    "course_storage_csv, developer_key_report_csv, eportfolio_report_csv, grade_export_csv, "
    "last_enrollment_activity_csv, last_user_access_csv, lti_report_csv, mgp_grade_export_csv, "
    "outcome_export_csv, outcome_results_csv, provisioning_csv, public_courses_csv, "
    "recently_deleted_courses_csv, sis_export_csv, student_assignment_outcome_map_csv, "
    "students_with_no_submissions_csv, unpublished_courses_csv, unused_courses_csv, user_access_tokens_csv, "
    "zero_activity_csv"
)
PROVISIONING_PARAMETERS = (
    "accounts, admins, courses, created_by_sis, enrollment_filter, enrollment_states, enrollment_term_id, "
    "enrollments, group_categories, group_membership, groups, include_deleted, sections, terms, "
    "user_observers, users, xlist"
)

START_CASES = [
    pytest.param(
        {"report": "no_such_csv"},
        f"Canvas does not offer report 'no_such_csv' on account self. It offers: {OFFERED}.",
        id="unknown-report",
    ),
    pytest.param(
        {"report": "../../users"},
        f"Canvas does not offer report '../../users' on account self. It offers: {OFFERED}.",
        id="report-name-with-path-characters",
    ),
    pytest.param(
        {"report": "../../users", "validate_parameters": False},
        "Invalid Canvas report name '../../users'. Use the report's type, such as 'provisioning_csv' "
        "(CanvasHook.list_available_reports() lists them).",
        id="report-name-with-path-characters-unvalidated",
    ),
    pytest.param(
        {"report": "provisioning_csv\n", "validate_parameters": False},
        "Invalid Canvas report name 'provisioning_csv\\n'. Use the report's type, such as 'provisioning_csv' "
        "(CanvasHook.list_available_reports() lists them).",
        id="report-name-with-newline",
    ),
    pytest.param(
        {"report": "mgp_grade_export_csv", "parameters": {}},
        "Report 'mgp_grade_export_csv' requires parameter(s): enrollment_term_id.",
        id="missing-required-parameter",
    ),
    pytest.param(
        # Canvas would take it and export no term: grade_reports.rb looks the term up by id.
        {"report": "mgp_grade_export_csv", "parameters": {"enrollment_term_id": "sis_term_id:2026SP"}},
        "Report 'mgp_grade_export_csv' takes enrollment_term_id as one Canvas term id, a number such as 42, "
        "not 'sis_term_id:2026SP': it looks the term up by id alone, so Canvas would accept this and then "
        "export no term (an empty file) or only the first. Use the term's id (GET "
        "/api/v1/accounts/self/terms lists them); for several terms, start one report for each.",
        id="mgp-term-not-an-id",
    ),
    pytest.param(
        {"parameters": {"users": True, "colour": "blue"}},
        f"Report 'provisioning_csv' has no parameter(s) colour. Its parameters are: {PROVISIONING_PARAMETERS}. "
        "(The list is the account's own; if your Canvas takes the name anyway, as an older or customised one "
        "may, pass validate_parameters=False.)",
        id="unknown-parameter",
    ),
    pytest.param(
        {"parameters": ["users"]},
        "Report parameters must be a mapping of name to value, got list. Pass e.g. {'users': True, "
        "'enrollment_term_id': 'sis_term_id:2026FA'}.",
        id="parameters-not-a-mapping",
    ),
    pytest.param(
        {"parameters": '{"users": true}'},
        "Report parameters must be a mapping of name to value, got str. Pass e.g. {'users': True, "
        "'enrollment_term_id': 'sis_term_id:2026FA'}.",
        id="parameters-a-json-string",
    ),
    pytest.param(
        {"parameters": {"users[]": True}},
        "Invalid report parameter name 'users[]': use the bare name.",
        id="parameter-name-with-brackets",
    ),
    pytest.param(
        {"parameters": {"users": {"nested": True}}, "validate_parameters": False},
        "Report parameter 'users' is a mapping; Canvas takes flat values.",
        id="parameter-value-a-mapping",
    ),
    pytest.param(
        {"parameters": {"users": True, "enrollment_term_id": {2026}}},
        "Report parameter 'enrollment_term_id' has a set value; use a string, number, boolean, date or a list "
        "of those.",
        id="parameter-value-a-set",
    ),
    pytest.param(
        {"parameters": {"include_deleted": True}},
        f"Report 'provisioning_csv' needs at least one table flag set to true ({TABLE_FLAGS}); without one "
        "Canvas ends the report in error.",
        id="provisioning-without-a-table",
    ),
    pytest.param(
        {"parameters": {"users": "off"}},
        f"Report 'provisioning_csv' needs at least one table flag set to true ({TABLE_FLAGS}); without one "
        "Canvas ends the report in error.",
        id="table-flag-canvas-reads-as-false",
    ),
    pytest.param(
        {
            "report": "students_with_no_submissions_csv",
            "parameters": {"start_at": "2026-10-01", "end_at": "2026-11-01"},
        },
        "Report 'students_with_no_submissions_csv' covers at most 14 days, and start_at 2026-10-01 to end_at "
        "2026-11-01 is 31 days. Canvas would not refuse it: it would quietly move start_at to 14 days before "
        "end_at, and the file would miss the start of the period. Start one report for each part of 14 days or "
        "less.",
        id="period-longer-than-canvas-covers",
    ),
    pytest.param(
        {
            "report": "students_with_no_submissions_csv",
            "parameters": {"start_at": "last week", "end_at": "2026-11-01"},
        },
        "Report parameter 'start_at' is 'last week', which is not a date or date-time. Use ISO 8601, e.g. "
        "'2026-11-12' (what '{{ ds }}' renders) or '2026-11-12T00:00:00Z'.",
        id="period-bound-not-a-date",
    ),
    pytest.param(
        {"parameters": {"users": True, "enrollment_term_id": "fall"}},
        "Canvas rejected the parameters to start a report on account self: invalid enrollment_term_id 'fall'. "
        "Use 'active_terms', a term id, 'sis_term_id:<id>' or a comma-separated list of those.",
        id="enrollment-term-canvas-refuses",
    ),
    pytest.param(
        {"account_id": "1; DROP TABLE reports"},
        "Invalid Canvas account_id '1; DROP TABLE reports'. Use 'self', a numeric account id, or "
        "'sis_account_id:<id>'.",
        id="account-id-junk",
    ),
    pytest.param(
        {"account_id": "../../users/self"},
        "Invalid Canvas account_id '../../users/self'. Use 'self', a numeric account id, or "
        "'sis_account_id:<id>'.",
        id="account-id-path",
    ),
    pytest.param(
        {"account_id": "99999"},
        "Canvas answered 404 to list the available reports on account 99999: the account does not exist or the "
        "token cannot see it (Canvas said: The specified resource does not exist.). Check account_id.",
        id="account-id-unknown",
    ),
]


@pytest.mark.parametrize(("kwargs", "message"), START_CASES)
def test_bad_start_arguments_start_nothing(canvas: Sim, kwargs: dict[str, Any], message: str) -> None:
    run = run_task(start(**kwargs))
    assert run.message == message
    assert canvas.starts == 0
    assert canvas.counters.requests["start"] <= (1 if "enrollment_term_id" in str(kwargs) else 0)


# -- report ids -----------------------------------------------------------------------------------


def invalid_id(shown: str) -> str:
    return (
        f"Invalid Canvas report id {shown}: it must be a positive integer, such as the 'id' in the start task's "
        "XCom."
    )


BAD_REPORT_IDS = [
    pytest.param("abc", invalid_id("'abc'"), id="string"),
    pytest.param(0, invalid_id("'0'"), id="zero"),
    pytest.param(-5, invalid_id("'-5'"), id="negative"),
    pytest.param(True, invalid_id("'True'"), id="bool"),
    pytest.param("None", invalid_id("'None'"), id="template-rendered-None"),
    pytest.param("", invalid_id("''"), id="template-rendered-empty"),
    pytest.param("12.5", invalid_id("'12.5'"), id="float-string"),
    pytest.param("١٢", invalid_id("'١٢'"), id="non-ascii-digits"),
    pytest.param("²", invalid_id("'²'"), id="superscript-digit"),
]


@pytest.mark.parametrize(("report_id", "message"), BAD_REPORT_IDS)
def test_bad_report_id_for_the_sensor(canvas: Sim, report_id: Any, message: str) -> None:
    run = run_task(
        ReportCompleteSensor(task_id="wait", report=REPORT, report_id=report_id, poke_interval=0.1)
    )
    assert type(run.error).__name__ == "AirflowFailException"  # a retry cannot fix it
    assert run.message == message
    assert canvas.counters.total_requests == 0


@pytest.mark.parametrize(("report_id", "message"), BAD_REPORT_IDS)
def test_bad_report_id_for_the_download(canvas: Sim, lake: Any, report_id: Any, message: str) -> None:
    task = DownloadReportOperator(
        task_id="land", report=REPORT, report_id=report_id, destination=lake.as_uri()
    )
    run = run_task(task)
    assert type(run.error).__name__ == "AirflowFailException"
    assert run.message == message
    assert canvas.counters.total_requests == 0
    assert not lake.exists()


# -- durations and other arguments, refused when the DAG is parsed ------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        pytest.param(
            lambda: start(wait_for_completion=True, poll_interval=-1),
            "poll_interval must be a positive duration, not -1",
            id="negative-poll-interval",
        ),
        pytest.param(
            lambda: start(wait_for_completion=True, timeout=0),
            "timeout must be a positive duration, not 0",
            id="zero-timeout",
        ),
        pytest.param(
            lambda: start(poll_interval=float("nan")),
            "poll_interval must be a positive duration, not nan",
            id="nan-poll-interval",
        ),
        pytest.param(
            lambda: download(download_attempts=0),
            "download_attempts must be at least 1, not 0",
            id="zero-download-attempts",
        ),
        pytest.param(
            lambda: download(overwrite="sometimes"),
            "overwrite='sometimes' is not a known policy: use one of 'replace', 'fail', 'skip_identical'",
            id="unknown-overwrite-policy",
        ),
        pytest.param(
            lambda: RetryPolicy(max_attempts=0),
            "RetryPolicy.max_attempts must be at least 1",
            id="retry-policy-zero-attempts",
        ),
        # Each of these used to pass the parse and fail in the task, some after the report started.
        pytest.param(
            lambda: StartAccountReportOperator(task_id="s", report=REPORT, params={"users": True}),
            "StartAccountReportOperator takes the report's parameters as parameters={...}; params= (users) is "
            "Airflow's template values. Rename it, or pass parameters={} beside params if the report takes none.",
            id="params-for-parameters",
        ),
        pytest.param(
            lambda: start(wait_for_completion=True, max_consecutive_errors=0),
            "max_consecutive_errors must be at least 1, not 0",
            id="zero-max-consecutive-errors",
        ),
        pytest.param(
            lambda: start(wait_for_completion=True, max_consecutive_errors="three"),
            "max_consecutive_errors must be a whole number, 1 or more, not 'three'",
            id="string-max-consecutive-errors",
        ),
        pytest.param(
            lambda: ReportCompleteSensor(task_id="w", report=REPORT, report_id=1, max_consecutive_errors=-1),
            "max_consecutive_errors must be at least 1, not -1",
            id="sensor-negative-max-consecutive-errors",
        ),
        pytest.param(
            lambda: ReportCompleteSensor(task_id="w", report=REPORT, report_id=1, timeout=0),
            "timeout must be a positive duration, not 0",
            id="sensor-zero-timeout",
        ),
        pytest.param(
            lambda: start(wait_for_completion=True, timeout="1h"),
            "timeout must be a duration, seconds (a number) or a datetime.timedelta, not '1h'",
            id="string-timeout",
        ),
        pytest.param(
            lambda: start(start_spacing=[1]),
            "start_spacing must be a duration, seconds (a number) or a datetime.timedelta, not [1]",
            id="list-start-spacing",
        ),
        pytest.param(
            lambda: start(wait_for_completion="no"),
            "wait_for_completion must be True or False, not 'no'",
            id="string-wait-for-completion",
        ),
        pytest.param(
            lambda: download(extract_zip="no"),
            "extract_zip must be True or False, not 'no'",
            id="string-extract-zip",
        ),
        pytest.param(
            lambda: download(download_attempts=1.5),
            "download_attempts must be a whole number, 1 or more, not 1.5",
            id="float-download-attempts",
        ),
        pytest.param(
            lambda: download(download_retry_delay="5s"),
            "download_retry_delay must be a duration, seconds (a number) or a datetime.timedelta, not '5s'",
            id="string-download-retry-delay",
        ),
        pytest.param(
            lambda: download(spool_dir=5),
            "spool_dir must be a local folder path or None, not 5",
            id="number-spool-dir",
        ),
        pytest.param(
            lambda: start(canvas_retry_policy={"max_attempt": 2}),
            "canvas_retry_policy has unknown field(s) 'max_attempt'; RetryPolicy's fields are: max_attempts, "
            "max_elapsed, base_delay, max_delay, max_retry_after, connect_timeout, read_timeout, low_remaining, "
            "pace_delay, throttle_jitter",
            id="retry-policy-dict-typo",
        ),
        pytest.param(
            lambda: ReportCompleteSensor(task_id="w", report=REPORT, report_id=1, canvas_retry_policy={"max_attempts": "2"}),
            "canvas_retry_policy: max_attempts='2': RetryPolicy's fields are numbers",
            id="retry-policy-dict-string",
        ),
        pytest.param(
            lambda: start(canvas_retry_policy=3),
            "canvas_retry_policy must be a RetryPolicy or a dict of its fields, not 3",
            id="retry-policy-number",
        ),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_at_parse_time(build: Any, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=f"^{re.escape(message)}$"):
        build()


def test_the_dags_own_params_are_no_sign_of_a_misnamed_parameters() -> None:
    # Airflow merges the DAG's params into every task's: only the task's own count.
    with (
        DAG(
            "params_dag", schedule=None, params={"region": "north"}, default_args={"params": {"env": "prod"}}
        ),
        TaskGroup("north", default_args={"params": {"campus": "main"}}),
    ):
        task = StartAccountReportOperator(task_id="s", report="last_user_access_csv")
        mapped = StartAccountReportOperator.partial(task_id="m", report="last_user_access_csv").expand(
            account_id=["1", "2"]
        )
        shared = StartAccountReportOperator(
            task_id="t",
            report="last_user_access_csv",
            default_args={"retries": 2, "params": {"tier": "gold"}},
        )
    assert task.parameters is None
    assert dict(task.params) == {"region": "north", "env": "prod", "campus": "main"}
    assert shared.params["tier"] == "gold"
    unmapped = mapped.unmap({"account_id": "1"})  # as a worker builds each mapped instance
    assert unmapped.account_id == "1"
    assert dict(unmapped.params) == {"region": "north", "env": "prod", "campus": "main"}
    with (
        pytest.raises(ValueError, match=re.escape("params= (course_id) is Airflow's template values")),
        DAG("params_dag_2", schedule=None, params={"region": "north"}),
    ):
        StartAccountReportOperator(task_id="s", report="last_user_access_csv", params={"course_id": 5})


def test_a_retry_policy_may_be_given_as_a_dict(canvas: Sim) -> None:
    task = start(canvas_retry_policy={"max_attempts": 2, "read_timeout": 5})
    assert task.canvas_retry_policy == RetryPolicy(max_attempts=2, read_timeout=5)
    run = run_task(task)
    assert run.error is None
    assert task.hook.retry_policy == RetryPolicy(max_attempts=2, read_timeout=5)
