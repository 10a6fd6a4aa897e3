"""Report parameters: shape checks, form encoding, validation against the catalogue, index matching."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal

import pytest

from airflow_provider_canvas_reports.canvas.errors import InvalidParametersError, UnknownReportError
from airflow_provider_canvas_reports.canvas.parameters import (
    TABLE_FLAGS,
    TABLE_REPORTS,
    UNIVERSAL,
    encode,
    find_report,
    prepare,
    same_parameters,
    truthy,
    validate,
)
from airflow_provider_canvas_reports.canvas.report import AvailableReport, Report


def spec(required: bool = False) -> dict:
    return {"required": required, "description": "..."}


# As Canvas lists them (trimmed). sis_export_csv is listed *without* its table flags on purpose:
# the flags must be accepted for the table reports whatever the catalogue says.
CATALOGUE = [
    AvailableReport.from_json(entry)
    for entry in [
        {
            "title": "Provisioning",
            "report": "provisioning_csv",
            "parameters": {
                "enrollment_term_id": spec(),
                "users": spec(),
                "courses": spec(),
                "include_deleted": spec(),
                "enrollment_filter": spec(),
                "enrollment_states": spec(),
            },
        },
        {"title": "SIS Export", "report": "sis_export_csv", "parameters": {"enrollment_term_id": spec()}},
        {"title": "Grade Export", "report": "grade_export_csv", "parameters": {"enrollment_term_id": spec()}},
        {
            "title": "MGP Grade Export",
            "report": "mgp_grade_export_csv",
            "parameters": {"enrollment_term_id": spec(True)},
        },
        {"title": "Outcome Export", "report": "outcome_export_csv", "parameters": None},
        {
            "title": "Students with no submissions",
            "report": "students_with_no_submissions_csv",
            "parameters": {
                "enrollment_term_id": spec(),
                "course_id": spec(),
                "start_at": spec(True),
                "end_at": spec(True),
            },
        },
    ]
]

# --------------------------------------------------------------------------- truthy


# As Canvas::Plugin.value_to_boolean reads them: yes/y/true/t/on/1 in any case, else the leading integer.
@pytest.mark.parametrize(
    "value", [True, "true", "TRUE", "True", "t", "yes", "Y", "on", "1", "2", " 7 days", "-1", 1, 1.0, 2, -3]
)
def test_truthy(value):
    assert truthy(value) is True


@pytest.mark.parametrize(
    "value",
    [
        False,
        "false",
        "F",
        "no",
        "n",
        "off",
        "0",
        "",
        " true",
        "enabled",
        "none",
        0,
        0.5,
        float("nan"),
        None,
        [],
        ["true"],
        {},
    ],
)
def test_not_truthy(value):
    assert truthy(value) is False


# --------------------------------------------------------------------------- prepare


def test_prepare_none_is_just_skip_message():
    assert prepare(None) == {"skip_message": True}


def test_prepare_adds_skip_message_by_default():
    assert prepare({"users": True}) == {"users": True, "skip_message": True}


def test_prepare_skip_message_overridable():
    assert prepare({"users": True}, skip_message=False) == {"users": True, "skip_message": False}
    assert prepare({"users": True}, skip_message=None) == {"users": True}
    # an explicit parameter wins over the default
    assert prepare({"skip_message": False}) == {"skip_message": False}
    assert prepare({"skip_message": "false"}, skip_message=True) == {"skip_message": "false"}


def test_prepare_drops_none_values_and_keeps_falsy_ones():
    prepared = prepare({"users": None, "courses": False, "enrollment_term_id": 0, "x": "", "y": []})
    assert prepared == {"courses": False, "enrollment_term_id": 0, "x": "", "y": [], "skip_message": True}


def test_prepare_does_not_mutate_its_input():
    original = {"users": True, "gone": None}
    prepare(original)
    assert original == {"users": True, "gone": None}


def test_prepare_stringifies_keys():
    assert prepare({5: "x"}, skip_message=None) == {"5": "x"}


@pytest.mark.parametrize(
    ("parameters", "type_name"),
    [
        ([("users", True)], "list"),
        ("users=true", "str"),
        (5, "int"),
        ({"users"}, "set"),
        (("users",), "tuple"),
    ],
)
def test_prepare_non_mapping_names_the_type(parameters, type_name):
    with pytest.raises(InvalidParametersError, match=f"got {type_name}\\.") as info:
        prepare(parameters)
    assert "mapping" in str(info.value)


@pytest.mark.parametrize("name", ["", "parameters[users]", "users[]", "a]b"])
def test_prepare_refuses_bracketed_or_empty_names(name):
    with pytest.raises(InvalidParametersError, match="bare name"):
        prepare({name: True})


# --------------------------------------------------------------------------- encode


def test_encode_scalars():
    assert encode({"users": True, "enrollment_term_id": 12, "x": "sis_term_id:F"}) == [
        ("parameters[users]", "true"),
        ("parameters[enrollment_term_id]", "12"),
        ("parameters[x]", "sis_term_id:F"),
    ]


@pytest.mark.parametrize("false", [False, "false", "False", "0", "off", "no", "", 0, None])
def test_a_value_that_means_false_is_not_sent(false):
    # Canvas's sis_exporter reads created_by_sis as set whenever it is present ("false" is a
    # true value in Ruby), and account_reports.rb skips the e-mail on any skip_message value.
    assert encode({"users": True, "created_by_sis": false, "skip_message": false}) == [
        ("parameters[users]", "true")
    ]


def test_encode_float():
    assert encode({"x": 1.5}) == [("parameters[x]", "1.5")]


def test_encode_lists_and_tuples():
    assert encode({"enrollment_states": ["active", "completed"], "flags": (True, False)}) == [
        ("parameters[enrollment_states][]", "active"),
        ("parameters[enrollment_states][]", "completed"),
        ("parameters[flags][]", "true"),
        ("parameters[flags][]", "false"),
    ]
    assert encode({"empty": []}) == []


def test_encode_datetimes_and_dates_isoformat():
    start = dt.datetime(2026, 1, 5, 8, 30, tzinfo=dt.timezone.utc)
    assert encode({"start_at": start, "end_at": dt.date(2026, 1, 19)}) == [
        ("parameters[start_at]", "2026-01-05T08:30:00+00:00"),
        ("parameters[end_at]", "2026-01-19"),
    ]
    assert encode({"days": [dt.date(2026, 1, 1)]}) == [("parameters[days][]", "2026-01-01")]


@pytest.mark.parametrize("value", [{"a": 1}, {}])
def test_encode_refuses_mappings(value):
    with pytest.raises(InvalidParametersError, match="'nested' is a mapping"):
        encode({"nested": value})


@pytest.mark.parametrize(
    ("value", "type_name"),
    [
        (b"bytes", "bytes"),
        ({1, 2}, "set"),
        (Decimal("1.5"), "Decimal"),
        (object(), "object"),
    ],
)
def test_encode_refuses_other_types_naming_them(value, type_name):
    with pytest.raises(InvalidParametersError, match=f"'odd' has a {type_name} value"):
        encode({"odd": value})


def test_encode_refuses_nested_lists_and_mappings_in_lists():
    with pytest.raises(InvalidParametersError):
        encode({"x": [["a"]]})
    with pytest.raises(InvalidParametersError):
        encode({"x": [{"a": 1}]})


def test_prepare_then_encode():
    assert encode(prepare({"users": True, "courses": None})) == [
        ("parameters[users]", "true"),
        ("parameters[skip_message]", "true"),
    ]


# --------------------------------------------------------------------------- find_report / validate


def test_find_report():
    assert find_report("grade_export_csv", CATALOGUE, "1").title == "Grade Export"


def test_unknown_report_lists_offered_names_sorted():
    with pytest.raises(UnknownReportError) as info:
        validate("provisoning_csv", {}, CATALOGUE, "1")
    message = str(info.value)
    assert "'provisoning_csv'" in message
    assert "account 1" in message
    assert (
        "grade_export_csv, mgp_grade_export_csv, outcome_export_csv, provisioning_csv, sis_export_csv, "
        "students_with_no_submissions_csv" in message
    )


def test_unknown_report_with_empty_catalogue_hints_at_the_plugin():
    with pytest.raises(UnknownReportError, match="account_reports plugin"):
        find_report("provisioning_csv", [], "self")


def test_valid_parameters_pass():
    validate(
        "provisioning_csv", prepare({"users": True, "enrollment_term_id": "sis_term_id:F"}), CATALOGUE, "1"
    )
    validate("grade_export_csv", prepare(None), CATALOGUE, "1")
    validate("outcome_export_csv", prepare({}), CATALOGUE, "1")


def test_unknown_parameter_lists_known_ones():
    with pytest.raises(InvalidParametersError) as info:
        validate("grade_export_csv", {"enrolment_term_id": 5, "zzz": 1}, CATALOGUE, "1")
    message = str(info.value)
    assert "enrolment_term_id, zzz" in message
    assert "Its parameters are: enrollment_term_id." in message


def test_unknown_parameter_on_a_report_without_parameters():
    with pytest.raises(InvalidParametersError, match="Its parameters are: none"):
        validate("outcome_export_csv", {"users": True}, CATALOGUE, "1")


def test_missing_required_parameters():
    with pytest.raises(InvalidParametersError, match="requires parameter\\(s\\): enrollment_term_id"):
        validate("mgp_grade_export_csv", prepare(None), CATALOGUE, "1")
    with pytest.raises(InvalidParametersError, match="requires parameter\\(s\\): end_at, start_at"):
        validate("students_with_no_submissions_csv", {"course_id": 5}, CATALOGUE, "1")
    with pytest.raises(InvalidParametersError, match="requires parameter\\(s\\): end_at\\."):
        validate("students_with_no_submissions_csv", {"start_at": "2026-01-01"}, CATALOGUE, "1")
    validate(
        "students_with_no_submissions_csv",
        {"start_at": "2026-01-01", "end_at": "2026-01-14"},
        CATALOGUE,
        "1",
    )


@pytest.mark.parametrize("report", sorted(TABLE_REPORTS))
@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"enrollment_term_id": 5},
        {"users": False},
        {"users": "false", "courses": "0"},
        {"skip_message": True},
    ],
)
def test_table_reports_need_a_table_flag(report, parameters):
    with pytest.raises(InvalidParametersError, match="at least one table flag") as info:
        validate(report, parameters, CATALOGUE, "1")
    assert "users" in str(info.value)
    assert "error" in str(info.value)


@pytest.mark.parametrize("report", sorted(TABLE_REPORTS))
@pytest.mark.parametrize("flag", TABLE_FLAGS)
def test_every_table_flag_is_accepted_for_table_reports(report, flag):
    validate(report, {flag: True}, CATALOGUE, "1")
    validate(report, {flag: "true"}, CATALOGUE, "1")
    validate(report, {flag: "1"}, CATALOGUE, "1")


def test_table_flags_are_not_accepted_for_other_reports():
    with pytest.raises(InvalidParametersError, match="has no parameter\\(s\\) users"):
        validate("grade_export_csv", {"users": True}, CATALOGUE, "1")


def test_several_table_flags():
    validate("provisioning_csv", {"users": True, "courses": True, "xlist": True}, CATALOGUE, "1")


@pytest.mark.parametrize("report", [entry.report for entry in CATALOGUE])
def test_skip_message_and_locale_are_always_allowed(report):
    parameters = {"skip_message": True, "locale": "fr"}
    if report in TABLE_REPORTS:
        parameters["users"] = True
    if report == "mgp_grade_export_csv":
        parameters["enrollment_term_id"] = 1
    if report == "students_with_no_submissions_csv":
        parameters.update(start_at="2026-01-01", end_at="2026-01-02")
    validate(report, parameters, CATALOGUE, "1")
    assert {"skip_message", "locale"} == UNIVERSAL


def test_table_flag_list_matches_the_behaviour_file():
    assert set(TABLE_FLAGS) == {
        "users",
        "accounts",
        "terms",
        "courses",
        "sections",
        "enrollments",
        "groups",
        "group_categories",
        "group_membership",
        "xlist",
        "user_observers",
        "admins",
    }
    assert {"provisioning_csv", "sis_export_csv"} == TABLE_REPORTS


# --------------------------------------------------------------------------- same_parameters


def echoed(parameters: dict) -> Report:
    return Report.from_json(
        {"id": 1, "report": "provisioning_csv", "status": "running", "parameters": parameters}
    )


CANVAS_ADDS = {"locale": "en", "extra_text": "Term: All Terms; Reports: users"}


def test_same_parameters_when_canvas_echoes_strings_and_adds_locale_and_extra_text():
    sent = prepare({"users": True, "enrollment_term_id": 12})
    report = echoed({"users": "true", "enrollment_term_id": "12", "skip_message": "true", **CANVAS_ADDS})
    assert same_parameters(report, sent)


def test_same_parameters_json_echo():
    sent = prepare({"users": True, "enrollment_term_id": 12})
    assert same_parameters(echoed({"users": True, "enrollment_term_id": 12, "skip_message": True}), sent)


@pytest.mark.parametrize("value", ["1", "True", True])
def test_same_parameters_loose_booleans(value):
    assert same_parameters(echoed({"users": value}), {"users": True})


def test_same_parameters_false_flag_equals_absent():
    assert same_parameters(echoed({"users": "true"}), {"users": True, "courses": False})
    assert same_parameters(echoed({"users": "true", "courses": "off"}), {"users": True})
    assert not same_parameters(echoed({"users": "true", "courses": "on"}), {"users": True})
    assert same_parameters(echoed({"users": "true", "courses": "false"}), {"users": True, "courses": False})
    assert same_parameters(echoed({"users": "true"}), {"users": True, "states": []})
    # Values that mean false are never sent (encode), so the echo has none of them.
    assert same_parameters(echoed({"users": "true"}), {"users": True, "created_by_sis": "false", "x": "0"})


def test_same_parameters_skip_message_may_be_missing_from_the_echo():
    assert same_parameters(echoed({"users": "true", **CANVAS_ADDS}), prepare({"users": True}))


def test_different_values_do_not_match():
    assert not same_parameters(
        echoed({"users": "true", "enrollment_term_id": "13"}), {"users": True, "enrollment_term_id": 12}
    )
    assert not same_parameters(echoed({"users": "false"}), {"users": True})
    assert not same_parameters(echoed({"courses": "true"}), {"users": True})
    assert not same_parameters(echoed({}), {"enrollment_term_id": 12})


def test_extra_parameters_in_the_echo_do_not_match():
    # Someone else's provisioning run with users AND courses (a ZIP) is not our users-only run (a CSV).
    report = echoed({"users": "true", "courses": "true", "skip_message": "true", **CANVAS_ADDS})
    assert not same_parameters(report, prepare({"users": True}))
    report = echoed({"users": "true", "enrollment_term_id": "12", **CANVAS_ADDS})
    assert not same_parameters(report, prepare({"users": True}))


def test_extra_false_or_empty_parameters_in_the_echo_still_match():
    report = echoed({"users": "true", "courses": "false", "include_deleted": False, "x": "", **CANVAS_ADDS})
    assert same_parameters(report, prepare({"users": True}))


def test_same_parameters_lists():
    sent = {"enrollment_states": ["active", "completed"]}
    assert same_parameters(echoed({"enrollment_states": ["active", "completed"]}), sent)
    assert not same_parameters(echoed({"enrollment_states": ["completed", "active"]}), sent)
    assert not same_parameters(echoed({"enrollment_states": ["active"]}), sent)
    assert not same_parameters(echoed({"enrollment_states": "active,completed"}), sent)
    assert same_parameters(echoed({"ids": ["1", "2"]}), {"ids": [1, 2]})


def test_same_parameters_datetimes():
    start = dt.datetime(2026, 1, 5, tzinfo=dt.timezone.utc)
    assert same_parameters(echoed({"start_at": "2026-01-05T00:00:00+00:00"}), {"start_at": start})
    assert not same_parameters(echoed({"start_at": "2026-01-06T00:00:00+00:00"}), {"start_at": start})


def test_same_parameters_no_echo_at_all():
    report = Report.from_json({"id": 1, "status": "created"})
    assert same_parameters(report, prepare(None))
    assert not same_parameters(report, prepare({"users": True}))


# --------------------------------------------------------------------------- the period Canvas caps

NO_SUBMISSIONS = "students_with_no_submissions_csv"
UTC = dt.timezone.utc


@pytest.mark.parametrize(
    ("start_at", "end_at"),
    [
        ("2026-01-01", "2026-01-15"),  # two weeks exactly: Canvas keeps it
        ("2026-01-01T00:00:00Z", "2026-01-15T00:00:00+00:00"),
        ("2026-01-01T06:00:00+06:00", "2026-01-15T00:00:00Z"),
        (
            "2026-01-01 00:00:00+00:00",
            "2026-01-02",
        ),  # str() of an Airflow date, a date; compared as wall clocks
        (dt.date(2026, 1, 1), dt.datetime(2026, 1, 15, tzinfo=UTC)),
        (dt.datetime(2026, 1, 1, tzinfo=UTC), "2026-01-01T00:00:00Z"),  # an empty period is still a period
    ],
)
def test_a_period_of_two_weeks_or_less_is_accepted(start_at, end_at):
    validate(NO_SUBMISSIONS, {"start_at": start_at, "end_at": end_at}, CATALOGUE, "1")


@pytest.mark.parametrize(
    ("start_at", "end_at", "days"),
    [
        ("2026-10-01", "2026-11-01", "31"),
        ("2026-01-01T00:00:00Z", "2026-01-15T01:00:00", "14.0417"),
        ("2026-01-01T00:00:00+01:00", "2026-01-15T00:00:00Z", "14.0417"),
        (dt.date(2026, 1, 1), dt.date(2026, 3, 1), "59"),
    ],
)
def test_a_longer_period_is_refused_before_canvas_cuts_it(start_at, end_at, days):
    with pytest.raises(InvalidParametersError) as info:
        validate(NO_SUBMISSIONS, {"start_at": start_at, "end_at": end_at}, CATALOGUE, "1")
    message = str(info.value)
    assert f"covers at most 14 days, and start_at {start_at} to end_at {end_at} is {days} days." in message
    assert "quietly move start_at to 14 days before end_at" in message
    assert "Start one report for each part of 14 days or less." in message


def test_a_period_that_ends_before_it_starts_is_refused():
    with pytest.raises(InvalidParametersError) as info:
        validate(NO_SUBMISSIONS, {"start_at": "2026-01-10", "end_at": "2026-01-01"}, CATALOGUE, "1")
    assert str(info.value) == (
        "Report 'students_with_no_submissions_csv': end_at is before start_at (start_at 2026-01-10 to end_at "
        "2026-01-01). Swap them."
    )


@pytest.mark.parametrize("bad", ["last week", "01/02/2026", "2026-13-01", 20260101, ["2026-01-01"]])
def test_a_bound_that_is_not_a_date_is_refused(bad):
    with pytest.raises(InvalidParametersError) as info:
        validate(NO_SUBMISSIONS, {"start_at": "2026-01-01", "end_at": bad}, CATALOGUE, "1")
    assert str(info.value) == (
        f"Report parameter 'end_at' is {bad!r}, which is not a date or date-time. Use ISO 8601, e.g. "
        "'2026-11-12' (what '{{ ds }}' renders) or '2026-11-12T00:00:00Z'."
    )


@pytest.mark.parametrize("given", [{"start_at": "2026-01-01"}, {"end_at": "2026-01-15"}, {}])
def test_a_missing_bound_is_left_to_canvas(given):
    # Where the catalogue does not require both bounds, Canvas fills in a missing one: nothing here
    # can tell the span, so nothing is refused.
    optional = [
        replace(entry, parameters={"start_at": spec(), "end_at": spec()})
        if entry.report == NO_SUBMISSIONS
        else entry
        for entry in CATALOGUE
    ]
    assert validate(NO_SUBMISSIONS, given, optional, "1").report == NO_SUBMISSIONS


@pytest.mark.parametrize(
    ("start_at", "end_at"),
    [
        # Datetimes keep their time and offset: 14 days and 6 hours is more than two weeks.
        (dt.datetime(2026, 11, 1, 12, tzinfo=UTC), dt.datetime(2026, 11, 15, 18, tzinfo=UTC)),
        ("2026-11-01T12:00:00z", "2026-11-15T18:00:00z"),  # a lowercase z is UTC too
    ],
)
def test_the_time_of_day_of_a_bound_counts(start_at, end_at):
    with pytest.raises(InvalidParametersError, match=r"covers at most 14 days, .* is 14\.25 days"):
        validate(NO_SUBMISSIONS, {"start_at": start_at, "end_at": end_at}, CATALOGUE, "1")


def test_an_end_hours_before_the_start_is_refused():
    with pytest.raises(InvalidParametersError, match="end_at is before start_at"):
        validate(
            NO_SUBMISSIONS,
            {"start_at": "2026-11-12T12:00:00Z", "end_at": "2026-11-12T06:00:00Z"},
            CATALOGUE,
            "1",
        )


# --------------------------------------------------------------------------- the term mgp reads by id

MGP = "mgp_grade_export_csv"


@pytest.mark.parametrize("term", [42, "42", " 7 "])
def test_mgp_takes_a_term_id(term):
    validate(MGP, {"enrollment_term_id": term}, CATALOGUE, "1")


@pytest.mark.parametrize("term", ["sis_term_id:2026FA", "active_terms", "3,4", ["3", "4"], "", True, 4.0])
def test_mgp_refuses_a_term_it_would_not_find(term):
    # grade_reports.rb: enrollment_terms.where(id: value). Canvas accepts these at the start, then
    # exports no term (a file of one empty line) or only the first.
    with pytest.raises(InvalidParametersError) as info:
        validate(MGP, {"enrollment_term_id": term}, CATALOGUE, "1")
    assert str(info.value) == (
        f"Report 'mgp_grade_export_csv' takes enrollment_term_id as one Canvas term id, a number such as 42, "
        f"not {term!r}: it looks the term up by id alone, so Canvas would accept this and then export no term "
        "(an empty file) or only the first. Use the term's id (GET /api/v1/accounts/self/terms lists them); "
        "for several terms, start one report for each."
    )


def test_other_reports_take_any_term_form():
    validate("grade_export_csv", {"enrollment_term_id": "sis_term_id:2026FA"}, CATALOGUE, "1")
