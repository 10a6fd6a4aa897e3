"""The account reports Canvas offers, their parameters, and what file each produces."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# Order matters: Canvas writes the tables (and ZIP members) in this order.
TABLE_FLAGS: tuple[str, ...] = (
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

FileKind = Literal["sis", "mgp", "single"]

_TERM = ("enrollment_term_id", False, "The canvas id of the term to get data from")
_DELETED = ("include_deleted", False, "Include deleted objects")
_COURSE = ("course_id", False, "The course to report on")


@dataclass(frozen=True)
class ReportSpec:
    report: str
    title: str
    description: str
    # (name, required, description); empty means Canvas answers ``parameters: null``.
    parameters: tuple[tuple[str, bool, str], ...] = ()
    kind: FileKind = "single"
    # For "single" reports: the data table (see data.TABLES) the CSV is made of.
    table: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    def parameters_json(self) -> dict[str, dict[str, Any]] | None:
        if not self.parameters:
            return None
        return {name: {"required": req, "description": desc} for name, req, desc in self.parameters}


def _sis_params(provisioning: bool) -> tuple[tuple[str, bool, str], ...]:
    params = [_TERM]
    params += [(flag, False, f"Include the {flag.replace('_', ' ')} CSV") for flag in TABLE_FLAGS]
    params += [("created_by_sis", False, "Only objects created by SIS imports"), _DELETED]
    if provisioning:
        params += [
            ("enrollment_filter", False, "Filter enrollments by role"),
            ("enrollment_states", False, "Enrollment states to include"),
        ]
    return tuple(params)


_SPECS: tuple[ReportSpec, ...] = (
    ReportSpec(
        "provisioning_csv",
        "Provisioning",
        "Shows the current state of SIS-style data, including Canvas ids.",
        _sis_params(True),
        kind="sis",
    ),
    ReportSpec(
        "sis_export_csv",
        "SIS Export",
        "SIS-importable CSVs of the account's data.",
        _sis_params(False),
        kind="sis",
    ),
    ReportSpec(
        "grade_export_csv",
        "Grade Export",
        "Current and final scores of every student enrollment.",
        (_TERM, _DELETED),
        table="grade_export",
    ),
    ReportSpec(
        "mgp_grade_export_csv",
        "Grade Export (Multiple Grading Periods)",
        "Scores per grading period, one CSV per term.",
        (("enrollment_term_id", True, "The canvas id of the term to get grades from"),),
        kind="mgp",
    ),
    ReportSpec(
        "last_user_access_csv",
        "Last User Access",
        "When each user last accessed Canvas.",
        (_TERM, _COURSE, _DELETED),
        table="last_user_access",
    ),
    ReportSpec(
        "last_enrollment_activity_csv",
        "Last Enrollment Activity",
        "The last activity of each enrollment.",
        (_TERM, _COURSE),
        table="last_enrollment_activity",
    ),
    ReportSpec(
        "outcome_export_csv",
        "Outcome Export",
        "Learning outcomes of the account, importable.",
        table="outcome_export",
    ),
    ReportSpec(
        "outcome_results_csv",
        "Outcome Results",
        "Outcome results of every student.",
        (_TERM, ("order", False, "Sort order: users, courses or outcomes"), _DELETED),
        table="outcome_results",
    ),
    ReportSpec(
        "recently_deleted_courses_csv",
        "Recently Deleted Courses",
        "Courses deleted in the last 30 days.",
        (_TERM,),
        table="recently_deleted_courses",
    ),
    ReportSpec(
        "unpublished_courses_csv",
        "Unpublished Courses",
        "Courses that are not published.",
        (_TERM,),
        table="unpublished_courses",
    ),
    ReportSpec(
        "public_courses_csv",
        "Public Courses",
        "Courses visible to the public.",
        (_TERM,),
        table="public_courses",
    ),
    ReportSpec(
        "course_storage_csv",
        "Course Storage",
        "File storage used by each course.",
        (_TERM,),
        table="course_storage",
    ),
    ReportSpec(
        "unused_courses_csv",
        "Unused Courses",
        "Courses with no content.",
        (_TERM,),
        table="unused_courses",
    ),
    ReportSpec(
        "student_assignment_outcome_map_csv",
        "Student Competency",
        "Outcome alignment of each student's assignments.",
        (_TERM, _DELETED),
        table="student_assignment_outcome_map",
    ),
    ReportSpec(
        "students_with_no_submissions_csv",
        "Students with no submissions",
        "Students without submissions in a period of at most two weeks.",
        (
            _TERM,
            _COURSE,
            ("start_at", True, "Start of the period"),
            ("end_at", True, "End of the period (at most two weeks after start_at)"),
            ("include_enrollment_state", False, "Include the enrollment state"),
            ("enrollment_state", False, "Enrollment states to include"),
        ),
        table="students_with_no_submissions",
    ),
    ReportSpec(
        "zero_activity_csv",
        "Zero Activity",
        "Enrollments with no activity since start_at.",
        (_TERM, ("start_at", False, "Only activity after this time counts"), _COURSE),
        table="zero_activity",
    ),
    ReportSpec(
        "eportfolio_report_csv",
        "ePortfolio Report",
        "ePortfolios of the account's users.",
        (("no_enrollments", False, "Only users without enrollments"), _DELETED),
        table="eportfolio",
    ),
    ReportSpec(
        "user_access_tokens_csv",
        "User Access Tokens",
        "Access tokens of the account's users.",
        (_DELETED,),
        table="user_access_tokens",
    ),
    ReportSpec(
        "lti_report_csv",
        "LTI Report",
        "External tools installed in the account and its courses.",
        (_DELETED,),
        table="lti",
    ),
    ReportSpec(
        "developer_key_report_csv",
        "Developer Key Report",
        "Developer keys available to the account.",
        table="developer_keys",
    ),
)

CATALOGUE: dict[str, ReportSpec] = {spec.report: spec for spec in _SPECS}


def available(names: Iterable[str] | None = None) -> list[ReportSpec]:
    """The offered reports, sorted by title as Canvas does."""
    specs = list(CATALOGUE.values()) if names is None else [CATALOGUE[n] for n in names if n in CATALOGUE]
    return sorted(specs, key=lambda spec: spec.title)


_TRUE_WORDS = frozenset({"yes", "y", "true", "t", "on", "1"})
_FALSE_WORDS = frozenset({"no", "n", "false", "f", "off", "0"})


def read_bool(value: Any) -> bool:
    """Canvas::Plugin.value_to_boolean: yes/y/true/t/on/1 (any case), else Ruby's ``to_i != 0``."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value == value and abs(value) >= 1  # Float#to_i truncates
    if isinstance(value, str):
        word = value.lower()
        if word in _TRUE_WORDS or word in _FALSE_WORDS:
            return word in _TRUE_WORDS
        digits = re.match(r"\s*[+-]?\d+", value)  # String#to_i: the leading integer, else 0
        return digits is not None and int(digits.group()) != 0
    return False


def selected_tables(params: Mapping[str, Any]) -> list[str]:
    return [flag for flag in TABLE_FLAGS if read_bool(params.get(flag))]


def is_parallel(spec: ReportSpec, params: Mapping[str, Any]) -> bool:
    """Provisioning and SIS export with several tables run in parts, then compile."""
    return spec.kind == "sis" and len(selected_tables(params)) >= 2
