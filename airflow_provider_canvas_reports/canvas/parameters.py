"""Report parameters: checked against the account's catalogue, then encoded as Canvas reads them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_canvas_reports.canvas.errors import InvalidParametersError, UnknownReportError
from airflow_provider_canvas_reports.canvas.report import AvailableReport, Report

# Reports that produce one CSV per table flag, and nothing (an error) without one.
TABLE_REPORTS = frozenset({"provisioning_csv", "sis_export_csv"})
TABLE_FLAGS = (
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
)
# Reports whose period Canvas caps: (start parameter, end parameter, longest period).
CAPPED_PERIODS = {"students_with_no_submissions_csv": ("start_at", "end_at", dt.timedelta(weeks=2))}
# Reports that look their term up by id alone (grade_reports.rb: enrollment_terms.where(id: value),
# which casts the value as Ruby's to_i): Canvas's check at the start takes "sis_term_id:X",
# "active_terms" and "3,4", and the report then exports no term (a file of one empty line) or
# only the first.
TERM_BY_ID_ONLY = frozenset({"mgp_grade_export_csv"})
# Accepted by every report although catalogues do not list them.
UNIVERSAL = frozenset({"skip_message", "locale"})


# Canvas reads a boolean parameter with Canvas::Plugin.value_to_boolean: these words (any case),
# and otherwise the number the value starts with, non-zero meaning true ("2" and 2 are true).
_TRUE_WORDS = frozenset({"true", "t", "yes", "y", "on", "1"})
_FALSE_WORDS = frozenset({"false", "f", "no", "n", "off", "0"})
_LEADING_INT = re.compile(r"\s*([+-]?\d+)")


def truthy(value: Any) -> bool:
    """Whether Canvas reads ``value`` as true: true, "true", "1", "yes", "on", 2, ... all count."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value == value and abs(value) >= 1  # Ruby's to_i: 0.5 is 0; NaN is no number
    if not isinstance(value, str):
        return False
    word = value.lower()  # not stripped: Canvas reads " true" as the number it starts with, none
    if word in _TRUE_WORDS or word in _FALSE_WORDS:
        return word in _TRUE_WORDS
    number = _LEADING_INT.match(value)
    return number is not None and int(number.group(1)) != 0


def _reads_false(value: Any) -> bool:
    """A value that sets nothing: empty, False, or a word Canvas reads as false."""
    if value in (None, False, "", []):
        return True
    return isinstance(value, str) and value.strip().lower() in _FALSE_WORDS


def _scalar(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    raise InvalidParametersError(
        f"Report parameter '{name}' has a {type(value).__name__} value; use a string, number, boolean, "
        "date or a list of those."
    )


def prepare(parameters: Mapping[str, Any] | None, *, skip_message: bool | None = True) -> dict[str, Any]:
    """Check the shape and add `skip_message` (scheduled runs should not e-mail anyone)."""
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, Mapping):
        raise InvalidParametersError(
            f"Report parameters must be a mapping of name to value, got {type(parameters).__name__}. "
            "Pass e.g. {'users': True, 'enrollment_term_id': 'sis_term_id:2026FA'}."
        )
    prepared = {str(k): v for k, v in parameters.items() if v is not None}
    for name in prepared:
        if not name or "[" in name or "]" in name:
            raise InvalidParametersError(f"Invalid report parameter name {name!r}: use the bare name.")
    if skip_message is not None and "skip_message" not in prepared:
        prepared["skip_message"] = bool(skip_message)
    return prepared


def encode(parameters: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Form fields `parameters[name]=value`, lists as `parameters[name][]=item`.

    A value that means false (False, "false", "0", "") is left out: absent is false to every
    report, while some read a parameter as set whenever it is present, "false" included
    (`created_by_sis` and `skip_message` in Canvas's account_reports; older Canvas took every
    table flag by its presence).
    """
    fields: list[tuple[str, str]] = []
    for name, value in parameters.items():
        if _reads_false(value):
            continue
        if isinstance(value, Mapping):
            raise InvalidParametersError(f"Report parameter '{name}' is a mapping; Canvas takes flat values.")
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
            fields.extend((f"parameters[{name}][]", _scalar(name, item)) for item in value)
        else:
            fields.append((f"parameters[{name}]", _scalar(name, value)))
    return fields


def find_report(report: str, available: Sequence[AvailableReport], account_id: str) -> AvailableReport:
    for entry in available:
        if entry.report == report:
            return entry
    names = tuple(sorted(entry.report for entry in available))
    offered = ", ".join(names) if names else "none (is the account_reports plugin enabled?)"
    raise UnknownReportError(
        f"Canvas does not offer report '{report}' on account {account_id}. It offers: {offered}."
    )


def validate(
    report: str, parameters: Mapping[str, Any], available: Sequence[AvailableReport], account_id: str
) -> AvailableReport:
    """What Canvas does not check itself: report name, parameter names, required parameters.

    Returns the report's entry in the list.
    """
    entry = find_report(report, available, account_id)
    known = set(entry.parameters)
    if report in TABLE_REPORTS:
        known.update(TABLE_FLAGS)
    unknown = sorted(set(parameters) - known - UNIVERSAL)
    if unknown:
        listed = ", ".join(sorted(known)) or "none"
        raise InvalidParametersError(
            f"Report '{report}' has no parameter(s) {', '.join(unknown)}. Its parameters are: {listed}. "
            "(The list is the account's own; if your Canvas takes the name anyway, as an older or customised "
            "one may, pass validate_parameters=False.)"
        )
    missing = sorted(name for name in entry.required_parameters if name not in parameters)
    if missing:
        raise InvalidParametersError(f"Report '{report}' requires parameter(s): {', '.join(missing)}.")
    if report in TABLE_REPORTS and not any(truthy(parameters.get(flag)) for flag in TABLE_FLAGS):
        raise InvalidParametersError(
            f"Report '{report}' needs at least one table flag set to true ({', '.join(TABLE_FLAGS)}); "
            "without one Canvas ends the report in error."
        )
    if report in CAPPED_PERIODS:
        _check_period(report, parameters, *CAPPED_PERIODS[report])
    if report in TERM_BY_ID_ONLY and "enrollment_term_id" in parameters:
        _check_term_id(report, parameters["enrollment_term_id"])
    return entry


def _check_term_id(report: str, value: Any) -> None:
    text = str(value).strip() if isinstance(value, (int, str)) and not isinstance(value, bool) else ""
    if text.isascii() and text.isdigit():
        return
    raise InvalidParametersError(
        f"Report '{report}' takes enrollment_term_id as one Canvas term id, a number such as 42, not "
        f"{value!r}: it looks the term up by id alone, so Canvas would accept this and then export no "
        "term (an empty file) or only the first. Use the term's id (GET /api/v1/accounts/self/terms "
        "lists them); for several terms, start one report for each."
    )


def _moment(name: str, value: Any) -> dt.datetime:
    """A period bound as a datetime: a datetime, a date (its midnight) or an ISO 8601 string."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    if isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("Z", "z"):  # fromisoformat takes "Z" only from Python 3.11
            text = text[:-1] + "+00:00"
        try:
            return dt.datetime.fromisoformat(text)
        except ValueError:
            pass
    # Canvas would not refuse it: a value it cannot parse counts as absent, and it picks a period.
    raise InvalidParametersError(
        f"Report parameter '{name}' is {value!r}, which is not a date or date-time. Use ISO 8601, "
        "e.g. '2026-11-12' (what '{{ ds }}' renders) or '2026-11-12T00:00:00Z'."
    )


def _check_period(
    report: str, parameters: Mapping[str, Any], start_name: str, end_name: str, cap: dt.timedelta
) -> None:
    if start_name not in parameters or end_name not in parameters:
        return  # the catalogue's required flags speak for these; Canvas fills in a missing bound
    start = _moment(start_name, parameters[start_name])
    end = _moment(end_name, parameters[end_name])
    # Canvas reads a bound without an offset in the account's time zone, which is not known
    # here: compare such a bound in the other's offset (both naive: as wall-clock times).
    if (start.tzinfo is None) != (end.tzinfo is None):
        start, end = (
            start.replace(tzinfo=start.tzinfo or end.tzinfo),
            end.replace(tzinfo=end.tzinfo or start.tzinfo),
        )
    span = end - start
    shown = f"{start_name} {parameters[start_name]!s} to {end_name} {parameters[end_name]!s}"
    if span < dt.timedelta(0):
        raise InvalidParametersError(
            f"Report '{report}': {end_name} is before {start_name} ({shown}). Swap them."
        )
    if span > cap:
        raise InvalidParametersError(
            f"Report '{report}' covers at most {cap.days} days, and {shown} is "
            f"{span / dt.timedelta(days=1):g} days. Canvas would not refuse it: it would quietly move "
            f"{start_name} to {cap.days} days before {end_name}, and the file would miss the start of "
            f"the period. Start one report for each part of {cap.days} days or less."
        )


def same_parameters(report: Report, sent: Mapping[str, Any]) -> bool:
    """Whether a report in the index was started with these parameters.

    Canvas echoes form values as strings and adds `locale` and `extra_text`, so compare the
    encoded forms of what we sent against what it echoes, ignoring the additions.
    """
    echoed = dict(report.parameters)
    for name, value in sent.items():
        if name not in echoed:
            if _reads_false(value) or name == "skip_message":  # never sent (encode)
                continue
            return False
        theirs = echoed[name]
        if isinstance(value, bool) or isinstance(theirs, bool):
            if truthy(value) != truthy(theirs):
                return False
            continue
        if isinstance(value, Sequence) and not isinstance(value, str):
            if not isinstance(theirs, Sequence) or isinstance(theirs, str):
                return False
            if [_scalar(name, v) for v in value] != [str(v) for v in theirs]:
                return False
            continue
        if _scalar(name, value) != str(theirs):
            return False
    # A run started with more parameters than ours (say users and courses: a ZIP, not our CSV) is not ours.
    for name, theirs in echoed.items():
        if name in sent or name in _ECHO_ONLY:
            continue
        if _reads_false(theirs):
            continue
        return False
    return True


# Canvas keeps and echoes any parameter it is sent; a report reads only the names it knows. The
# start operator sends this one, naming the task instance (DAG, run, task, map index) that started
# the run, so that looking in the index for "the report this task started" (after a lost answer,
# or on a retry) never takes the report of another run of the same DAG started with the same
# parameters at about the same time (catchup, backfill, several runs at once).
STARTED_BY = "airflow_task"

# What Canvas adds to the echo, and what does not change the file.
_ECHO_ONLY = frozenset({"locale", "extra_text", "skip_message", STARTED_BY})


def started_by(report: Report) -> str | None:
    """The task instance that started `report`, as its `STARTED_BY` parameter says; None if unsaid."""
    value = report.parameters.get(STARTED_BY)
    return value if isinstance(value, str) and value else None


def as_sent(report: Report) -> dict[str, Any]:
    """The parameters a run was started with, as far as its echo tells (Canvas's additions dropped)."""
    return {name: value for name, value in report.parameters.items() if name not in _ECHO_ONLY}
