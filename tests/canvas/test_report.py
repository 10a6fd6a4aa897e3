"""Report model: tolerant parsing, phases that never trust `progress`, raw JSON kept exactly."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_canvas_reports.canvas.errors import CanvasResponseError
from airflow_provider_canvas_reports.canvas.report import (
    FAILURE_STATES,
    KNOWN_STATES,
    SUCCESS_STATES,
    WAITING_STATES,
    Attachment,
    AvailableReport,
    Phase,
    Report,
    classify,
    parse_timestamp,
)
from tests.fixtures.canvas_objects import REPORT_KEYS

# A complete Report as current hosted Canvas returns it.
COMPLETE = {
    "id": 1234,
    "report": "provisioning_csv",
    "file_url": "https://school.instructure.com/accounts/1/files/987/download",
    "attachment": {
        "id": 987,
        "uuid": "Zk3qW8vN2pL5xR7tY1mB4cF6hJ9dG0sA3eU2iO5n",
        "folder_id": 5,
        "display_name": "provisioning_csv_01_Dec_2013_1234.zip",
        "filename": "provisioning_csv_01_Dec_2013_1234.zip",
        "content-type": "application/zip",
        "size": 4096,
        "url": "https://school.instructure.com/files/987/download?download_frd=1&verifier=Zk3qW8vN2pL5xR7tY1mB4cF6hJ9dG0sA3eU2iO5n",
        "created_at": "2013-12-01T23:59:00-06:00",
        "updated_at": "2013-12-01T23:59:00-06:00",
        "mime_class": "zip",
    },
    "status": "complete",
    "created_at": "2013-12-01T23:50:00-06:00",
    "started_at": "2013-12-01T23:51:00-06:00",
    "ended_at": "2013-12-01T23:59:00-06:00",
    "run_time": 480.25,
    "parameters": {
        "users": "true",
        "courses": "true",
        "enrollment_term_id": "",
        "locale": "en",
        "extra_text": "Term: All Terms; Reports: users courses",
    },
    "progress": 100,
    "current_line": 12000,
    "user": {"id": 7, "name": "Admin", "display_name": "Admin"},
}

# An older server: no run_time, no user, no attachment key at all.
OLD_RUNNING = {
    "id": 55,
    "report": "sis_export_csv",
    "file_url": None,
    "status": "running",
    "created_at": "2013-12-01T23:50:00Z",
    "started_at": "2013-12-01T23:51:00Z",
    "ended_at": None,
    "parameters": {"users": "true"},
    "progress": 42,
    "current_line": 3000,
}


def with_(base: dict, **changes) -> dict:
    data = copy.deepcopy(base)
    data.update(changes)
    return data


# --------------------------------------------------------------------------- classify / states


@pytest.mark.parametrize("status", sorted(WAITING_STATES))
def test_waiting_states(status):
    assert classify(status) is Phase.WAITING


@pytest.mark.parametrize("status", sorted(FAILURE_STATES))
def test_failure_states(status):
    assert classify(status) is Phase.FAILURE


def test_complete_is_the_only_success():
    assert {"complete"} == SUCCESS_STATES
    assert classify("complete") is Phase.SUCCESS


def test_state_sets_match_the_behaviour_file():
    assert {"created", "running", "compiling"} == WAITING_STATES
    assert {"error", "aborted", "deleted"} == FAILURE_STATES
    assert KNOWN_STATES == WAITING_STATES | SUCCESS_STATES | FAILURE_STATES
    assert not (WAITING_STATES & FAILURE_STATES)


@pytest.mark.parametrize(
    "status", [None, "", "queued", "COMPLETE", "Complete", "completed", "failed", "unknown"]
)
def test_unknown_status_keeps_waiting(status):
    assert classify(status) is Phase.WAITING


# --------------------------------------------------------------------------- parse_timestamp


def test_timestamp_with_offset():
    parsed = parse_timestamp("2013-12-01T23:59:00-06:00")
    assert parsed == datetime(2013, 12, 1, 23, 59, tzinfo=timezone(timedelta(hours=-6)))
    assert parsed.utcoffset() == timedelta(hours=-6)


def test_timestamp_with_z_suffix_is_utc():
    assert parse_timestamp("2013-12-02T05:59:00Z") == datetime(2013, 12, 2, 5, 59, tzinfo=timezone.utc)


def test_timestamp_with_fraction_and_whitespace():
    parsed = parse_timestamp("  2024-03-04T05:06:07.123456+00:00 ")
    assert parsed == datetime(2024, 3, 4, 5, 6, 7, 123456, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "value",
    [None, "", "not a date", "2013-13-45T99:99:99Z", "yesterday", 1700000000, 17.5, True, [], {}, "Z"],
)
def test_unparseable_or_non_string_timestamps_are_none(value):
    assert parse_timestamp(value) is None


def test_unparseable_timestamp_is_logged_not_raised(caplog):
    with caplog.at_level(logging.WARNING):
        assert parse_timestamp("garbage-date") is None
    assert "garbage-date" in caplog.text


# --------------------------------------------------------------------------- Report.from_json


def test_complete_report_parses_every_field():
    report = Report.from_json(COMPLETE)
    assert report.id == 1234
    assert report.report == "provisioning_csv"
    assert report.status == "complete"
    assert report.phase is Phase.SUCCESS
    assert report.progress == 100
    assert report.current_line == 12000
    assert report.file_url == COMPLETE["file_url"]
    assert report.run_time == 480.25
    assert report.created_at == datetime(2013, 12, 1, 23, 50, tzinfo=timezone(timedelta(hours=-6)))
    assert report.ended_at == datetime(2013, 12, 1, 23, 59, tzinfo=timezone(timedelta(hours=-6)))
    assert report.parameters["users"] == "true"
    assert report.is_known_status
    attachment = report.attachment
    assert attachment == Attachment(
        id=987,
        filename="provisioning_csv_01_Dec_2013_1234.zip",
        display_name="provisioning_csv_01_Dec_2013_1234.zip",
        content_type="application/zip",
        size=4096,
    )


def test_old_server_without_attachment_run_time_or_user():
    report = Report.from_json(OLD_RUNNING)
    assert report.attachment is None
    assert report.run_time is None
    assert report.file_url is None
    assert report.ended_at is None
    assert report.started_at == datetime(2013, 12, 1, 23, 51, tzinfo=timezone.utc)
    assert report.phase is Phase.WAITING
    assert report.progress == 42


def test_minimal_report_only_id():
    report = Report.from_json({"id": 9})
    assert report.id == 9
    assert report.report == ""
    assert report.status == "unknown"
    assert report.phase is Phase.WAITING
    assert not report.is_known_status
    assert report.progress is None
    assert report.current_line is None
    assert report.attachment is None
    assert report.created_at is None
    assert report.parameters == {}
    assert report.extra_text is None


def test_report_type_fills_in_a_missing_report_name():
    assert Report.from_json({"id": 9}, report_type="grade_export_csv").report == "grade_export_csv"
    # Canvas's own value wins over the hint
    assert Report.from_json({"id": 9, "report": "x_csv"}, report_type="y_csv").report == "x_csv"


def test_extra_unknown_fields_are_ignored_but_kept_in_raw():
    data = with_(COMPLETE, brand_new_field={"nested": [1, 2]}, another="x")
    report = Report.from_json(data)
    assert report.id == 1234
    assert report.raw["brand_new_field"] == {"nested": [1, 2]}
    assert report.raw["another"] == "x"


@pytest.mark.parametrize("data", [COMPLETE, OLD_RUNNING, {"id": 1, "weird": [None, 1.5, "x"]}])
def test_raw_is_kept_exactly_and_survives_a_json_round_trip(data):
    original = copy.deepcopy(data)
    report = Report.from_json(data)
    assert report.raw == original
    assert json.loads(json.dumps(report.raw)) == original
    # no key added by parsing (e.g. no attachment=None, no defaulted status)
    assert set(report.raw) == set(original)
    assert "attachment" not in Report.from_json(OLD_RUNNING).raw


def test_raw_is_a_copy_of_the_top_level():
    data = copy.deepcopy(COMPLETE)
    report = Report.from_json(data)
    data["status"] = "error"
    data.pop("id")
    assert report.raw["status"] == "complete"
    assert report.raw["id"] == 1234


def test_raw_is_not_part_of_equality():
    a = Report.from_json(with_(COMPLETE, x=1))
    b = Report.from_json(with_(COMPLETE, x=2))
    assert a == b
    assert "raw" not in repr(a)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (0, 0),
        (42, 42),
        (100, 100),
        ("42", 42),
        (" 7 ", 7),
        ("55.9", 55),
        (33.7, 33),
        (150, 100),
        (101, 100),
        (10**30, 100),
        (-5, 0),
        ("-20", 0),
        (None, None),
        ("", None),
        ("abc", None),
        ("nan", None),
        (float("nan"), None),
        (True, None),
        (False, None),
        ([50], None),
        ({"value": 50}, None),
    ],
)
def test_odd_progress_values_are_tolerated(value, expected):
    assert Report.from_json({"id": 1, "status": "running", "progress": value}).progress == expected


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), "inf", "-Infinity", "1e400"])
def test_infinite_numbers_are_tolerated(value):
    # json.loads accepts Infinity and 1e400; a bad number must never crash parsing
    report = Report.from_json({"id": 1, "status": "running", "progress": value, "current_line": value})
    assert report.progress in (None, 0, 100)
    assert report.current_line is None or isinstance(report.current_line, int)


def test_huge_integers_are_tolerated():
    data = json.loads('{"id": 3, "status": "running", "run_time": 1' + "0" * 400 + ', "progress": 1e999}')
    report = Report.from_json(data)
    assert report.id == 3
    assert report.run_time is None or report.run_time > 0
    assert report.progress in (None, 100)


@pytest.mark.parametrize(
    ("value", "expected"), [(12, 12.0), (0.5, 0.5), ("12", None), (True, None), (None, None)]
)
def test_run_time_parsing(value, expected):
    assert Report.from_json({"id": 1, "run_time": value}).run_time == expected


@pytest.mark.parametrize("field", ["created_at", "started_at", "ended_at"])
@pytest.mark.parametrize("value", ["not-a-date", "2013-02-30T00:00:00Z", 12345, {"date": "x"}])
def test_unparseable_dates_become_none(field, value):
    report = Report.from_json(with_(COMPLETE, **{field: value}))
    assert getattr(report, field) is None
    assert report.phase is Phase.SUCCESS
    assert report.raw[field] == value


@pytest.mark.parametrize("status", ["queued", "paused", "", "COMPLETE", None, 5, ["complete"]])
def test_unknown_status_is_waiting(status):
    report = Report.from_json({"id": 1, "status": status, "progress": 100})
    assert report.phase is Phase.WAITING
    assert not report.is_known_status


def test_non_string_status_becomes_unknown():
    assert Report.from_json({"id": 1, "status": 3}).status == "unknown"


@pytest.mark.parametrize("status", ["error", "aborted", "deleted"])
def test_progress_100_with_failure_status_is_failure_never_success(status):
    report = Report.from_json(
        with_(COMPLETE, status=status, progress=100, parameters={"extra_text": "Report has been aborted"})
    )
    assert report.progress == 100
    assert report.phase is Phase.FAILURE
    assert report.phase is not Phase.SUCCESS


@pytest.mark.parametrize("status", ["created", "running", "compiling"])
def test_progress_100_while_running_is_still_waiting(status):
    assert Report.from_json({"id": 1, "status": status, "progress": 100}).phase is Phase.WAITING


def test_complete_with_low_progress_is_still_success():
    assert Report.from_json({"id": 1, "status": "complete", "progress": 0}).phase is Phase.SUCCESS


def test_failure_message_includes_extra_text():
    text = "Failed, please report the following error code to your system administrator: ErrorReport:1234;"
    report = Report.from_json(
        {"id": 77, "report": "grade_export_csv", "status": "error", "parameters": {"extra_text": text}}
    )
    assert report.extra_text == text
    message = report.failure_message()
    assert text in message
    assert "grade_export_csv" in message
    assert "77" in message
    assert "'error'" in message


def test_failure_message_does_not_take_the_run_settings_for_a_reason():
    # A job that died (mark_as_errored) or a failed parallel part sets only the state: extra_text
    # still holds the run's settings.
    report = Report.from_json(
        {"id": 77, "report": "x_csv", "status": "error", "parameters": {"extra_text": "Term: All Terms;"}}
    )
    assert report.failure_message() == (
        "Canvas report x_csv #77 ended with status 'error': Canvas gave no reason (its notes on the run: "
        "Term: All Terms;)"
    )
    aborted = Report.from_json(
        {
            "id": 78,
            "report": "x_csv",
            "status": "aborted",
            "parameters": {"extra_text": "Report has been aborted"},
        }
    )
    assert (
        aborted.failure_message()
        == "Canvas report x_csv #78 ended with status 'aborted': Report has been aborted"
    )


def test_failure_message_without_extra_text_says_so():
    report = Report.from_json({"id": 77, "report": "x_csv", "status": "aborted", "parameters": None})
    assert report.extra_text is None
    assert "no reason" in report.failure_message()
    assert "'aborted'" in report.failure_message()


@pytest.mark.parametrize("extra", [None, "", 5, ["a"], {"a": 1}])
def test_non_string_or_empty_extra_text_is_none(extra):
    assert Report.from_json({"id": 1, "parameters": {"extra_text": extra}}).extra_text is None


@pytest.mark.parametrize("params", [None, [], "users=true", 5])
def test_non_mapping_parameters_become_empty(params):
    assert Report.from_json({"id": 1, "parameters": params}).parameters == {}


@pytest.mark.parametrize("attachment", [None, [], "file.csv", 12, True])
def test_non_mapping_attachment_is_none(attachment):
    assert Report.from_json({"id": 1, "attachment": attachment}).attachment is None


@pytest.mark.parametrize("file_url", [None, 5, ["x"], {"url": "x"}])
def test_non_string_file_url_is_none(file_url):
    assert Report.from_json({"id": 1, "file_url": file_url}).file_url is None


@pytest.mark.parametrize(
    ("value", "expected"), [(5, 5), ("5", 5), (" 12 ", 12), (7.0, 7), ("7.0", 7), (True, None), (None, None)]
)
def test_id_and_current_line_coercion(value, expected):
    if expected is None:
        with pytest.raises(CanvasResponseError):
            Report.from_json({"id": value})
    else:
        assert Report.from_json({"id": value}).id == expected
    assert Report.from_json({"id": 1, "current_line": value}).current_line == expected


@pytest.mark.parametrize("data", [None, [], [COMPLETE], "report", 5, 5.5, True, b"{}"])
def test_non_mapping_input_is_a_response_error(data):
    with pytest.raises(CanvasResponseError, match="where a Report object was expected"):
        Report.from_json(data)


@pytest.mark.parametrize(
    "data", [{}, {"status": "complete"}, {"id": None}, {"id": "abc"}, {"id": ""}, {"id": [1]}, {"id": True}]
)
def test_id_less_input_is_a_response_error(data):
    with pytest.raises(CanvasResponseError, match="no id"):
        Report.from_json(data)


def test_summary():
    report = Report.from_json(OLD_RUNNING)
    assert report.summary() == "sis_export_csv #55 status=running progress=42% current_line=3000"
    assert Report.from_json({"id": 1, "report": "x", "status": "created"}).summary() == "x #1 status=created"


# --------------------------------------------------------------------------- Attachment


def test_attachment_name_prefers_filename():
    assert Attachment.from_json({"filename": "a.csv", "display_name": "b.csv"}).name == "a.csv"
    assert Attachment.from_json({"display_name": "b.csv"}).name == "b.csv"
    assert Attachment.from_json({}).name is None


def test_attachment_tolerates_odd_values():
    attachment = Attachment.from_json(
        {"id": "12", "filename": 5, "display_name": None, "content-type": ["text/csv"], "size": "2048"}
    )
    assert attachment == Attachment(id=12, filename=None, display_name=None, content_type=None, size=2048)


def test_attachment_content_type_uses_canvas_hyphenated_key():
    assert Attachment.from_json({"content-type": "text/csv"}).content_type == "text/csv"
    assert Attachment.from_json({"content_type": "text/csv"}).content_type is None


# --------------------------------------------------------------------------- AvailableReport

AVAILABLE = {
    "title": "Provisioning",
    "report": "provisioning_csv",
    "parameters": {
        "enrollment_term_id": {"required": False, "description": "The canvas id of the term"},
        "users": {"required": False, "description": "Get the Provisioning file for users"},
        "include_deleted": {"required": False, "description": "Include deleted objects"},
    },
    "last_run": COMPLETE,
}


def test_available_report_parses():
    entry = AvailableReport.from_json(AVAILABLE)
    assert entry.report == "provisioning_csv"
    assert entry.title == "Provisioning"
    assert set(entry.parameters) == {"enrollment_term_id", "users", "include_deleted"}
    assert entry.parameters["users"]["description"].startswith("Get the")
    assert entry.required_parameters == frozenset()
    assert entry.last_run is not None
    assert entry.last_run.id == 1234
    assert entry.last_run.phase is Phase.SUCCESS


def test_available_report_null_parameters_and_no_last_run():
    entry = AvailableReport.from_json(
        {"title": "Outcome Export", "report": "outcome_export_csv", "parameters": None, "last_run": None}
    )
    assert entry.parameters == {}
    assert entry.required_parameters == frozenset()
    assert entry.last_run is None


def test_available_report_missing_keys():
    entry = AvailableReport.from_json({"report": "lti_report_csv"})
    assert entry.title == "lti_report_csv"
    assert entry.parameters == {}
    assert entry.last_run is None


def test_available_report_required_flags():
    entry = AvailableReport.from_json(
        {
            "title": "Students with no submissions",
            "report": "students_with_no_submissions_csv",
            "parameters": {
                "enrollment_term_id": {"required": False, "description": "term"},
                "course_id": {"description": "no required key"},
                "start_at": {"required": True, "description": "start"},
                "end_at": {"required": True, "description": "end"},
                "include_enrollment_state": {"required": "true", "description": "loose, not true"},
                "enrollment_state": None,
            },
        }
    )
    assert entry.required_parameters == frozenset({"start_at", "end_at"})
    assert entry.parameters["enrollment_state"] == {}


def test_available_report_last_run_takes_the_entry_report_type():
    entry = AvailableReport.from_json(
        {"report": "grade_export_csv", "last_run": {"id": 4, "status": "error", "progress": 100}}
    )
    assert entry.last_run is not None
    assert entry.last_run.report == "grade_export_csv"
    assert entry.last_run.phase is Phase.FAILURE


@pytest.mark.parametrize("last_run", [{}, {"id": None}, [], "x", 5])
def test_available_report_odd_last_run_is_none(last_run):
    assert AvailableReport.from_json({"report": "x_csv", "last_run": last_run}).last_run is None


@pytest.mark.parametrize(
    "data", [None, [], "provisioning_csv", {}, {"title": "x"}, {"report": 5}, {"report": None}]
)
def test_available_report_without_name_is_a_response_error(data):
    with pytest.raises(CanvasResponseError, match="no report name"):
        AvailableReport.from_json(data)


# --------------------------------------------------------------------------- properties

FIELDS = [*REPORT_KEYS, "attachment"]
ODD_STRINGS = st.sampled_from(
    [
        *("inf", "-inf", "nan", "1e400", "-1e400", "12", "100", "-3", "1.5", " 7 ", ""),
        *sorted(KNOWN_STATES),
        *("2013-12-01T23:59:00-06:00", "2013-12-01T23:59:00Z", "2013-99-01"),
    ]
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**63, float("inf"), float("-inf")]),
    st.floats(),
    st.text(max_size=20),
    ODD_STRINGS,
)
JSONISH = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)), children, max_size=4),
    ),
    max_leaves=6,
)
REPORT_DICTS = st.builds(
    lambda known, extra: {**extra, **known},
    st.fixed_dictionaries(
        {"id": st.one_of(st.integers(min_value=1, max_value=10**9), SCALARS)},
        optional={name: JSONISH for name in FIELDS if name != "id"},
    ),
    st.dictionaries(st.text(max_size=8), JSONISH, max_size=3),
)


@settings(max_examples=100, deadline=None, database=None)
@given(REPORT_DICTS)
def test_from_json_raises_only_response_errors_and_phase_is_one_of_three(data):
    try:
        report = Report.from_json(data)
    except CanvasResponseError:
        return
    assert report.phase in (Phase.WAITING, Phase.SUCCESS, Phase.FAILURE)
    assert report.progress is None or 0 <= report.progress <= 100
    assert isinstance(report.id, int)
    assert report.raw == data
    report.summary()
    report.failure_message()


@settings(max_examples=50, deadline=None, database=None)
@given(st.integers(min_value=1, max_value=10**12), st.sampled_from(sorted(KNOWN_STATES)), JSONISH)
def test_from_json_phase_follows_status_whatever_the_progress(report_id, status, progress):
    report = Report.from_json({"id": report_id, "status": status, "progress": progress})
    assert report.phase is classify(status)


@settings(max_examples=60, deadline=None, database=None)
@given(JSONISH)
def test_from_json_on_any_jsonish_value_raises_only_response_errors(data):
    with contextlib.suppress(CanvasResponseError):
        Report.from_json(data)


@settings(max_examples=60, deadline=None, database=None)
@given(st.dictionaries(st.sampled_from(["report", "title", "parameters", "last_run"]), JSONISH))
def test_available_report_raises_only_response_errors(data):
    try:
        entry = AvailableReport.from_json(data)
    except CanvasResponseError:
        return
    assert isinstance(entry.report, str)
    assert entry.required_parameters <= set(entry.parameters)


def test_as_json_keeps_canvas_fields_but_drops_the_download_verifier():
    # Canvas's verifier is the attachment's uuid (lib/api/v1/attachment.rb), which its
    # thumbnail_url carries too.
    uuid = "QmSxTf4rGkE2b9dWv0cZa7yL3nH8jP1uR6oI5eKs"
    raw = {
        "id": 7,
        "report": "sis_export_csv",
        "status": "complete",
        "progress": 100,
        "file_url": "https://school.instructure.com/accounts/1/files/9/download",
        "attachment": {
            "id": 9,
            "uuid": uuid,
            "size": 10,
            "display_name": "sis_export.csv",
            "url": f"https://school.instructure.com/files/9/download?download_frd=1&verifier={uuid}",
            "thumbnail_url": f"https://school.instructure.com/images/thumbnails/9/{uuid}",
            "mime_class": "file",
        },
        "parameters": {"users": "true"},
        "unknown_new_field": [1, 2],
    }
    out = Report.from_json(raw).as_json()
    assert out["attachment"] == {
        "id": 9,
        "size": 10,
        "display_name": "sis_export.csv",
        "url": "https://school.instructure.com/files/9/download",
        "mime_class": "file",
    }
    assert uuid not in repr(out)
    assert {k: v for k, v in out.items() if k != "attachment"} == {
        k: v for k, v in raw.items() if k != "attachment"
    }
    assert raw["attachment"]["url"].endswith(f"verifier={uuid}")  # the parsed input is not changed
    assert raw["attachment"]["uuid"] == uuid
