"""Report files: CSV or ZIP, member and display names, determinism, padding, cache."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import pytest
from sim_helpers import finish

from airflow_provider_canvas_reports.simulator.data import TABLES, GenContext, GenParams, write_table
from airflow_provider_canvas_reports.simulator.reportfiles import FileFactory, FileRequest, display_name

CSV_NAME = re.compile(r"^provisioning_csv_\d\d_[A-Z][a-z]{2}_\d{4}_(\d+)_[0-9a-z-]+\.csv$")


def _download(sim, client, report: str, **params) -> tuple[dict, bytes]:
    started = client.start(report, **params)
    finish(sim)
    body = client.status(report, started["id"]).json()
    assert body["status"] == "complete", body
    return body, client.http.get(body["file_url"], timeout=10).content


def test_one_table_is_a_csv(sim_env):
    sim, _running, client = sim_env
    body, content = _download(sim, client, "provisioning_csv", users="true")
    attachment = body["attachment"]
    assert attachment["content-type"] == "text/csv"
    assert attachment["mime_class"] == "file"
    match = CSV_NAME.match(attachment["display_name"])
    assert match is not None, attachment["display_name"]
    assert int(match.group(1)) == body["id"]
    assert set(attachment) >= {"id", "display_name", "filename", "content-type", "size", "url"}
    assert {"created_at", "updated_at", "mime_class"} <= set(attachment)
    rows = list(csv.reader(io.StringIO(content.decode())))
    assert rows[0] == [
        "canvas_user_id",
        "user_id",
        "integration_id",
        "authentication_provider_id",
        "login_id",
        "first_name",
        "last_name",
        "full_name",
        "sortable_name",
        "short_name",
        "email",
        "status",
        "created_by_sis",
    ]
    assert all(len(row) == len(rows[0]) for row in rows)
    assert len(rows) > 50


def test_two_tables_are_a_zip_of_table_csvs(sim_env):
    sim, _running, client = sim_env
    body, content = _download(sim, client, "provisioning_csv", enrollments="1", users="true", xlist="true")
    attachment = body["attachment"]
    assert attachment["content-type"] == "application/zip"
    assert attachment["mime_class"] == "zip"
    assert re.fullmatch(
        rf"provisioning_csv_\d\d_[A-Z][a-z]{{2}}_\d{{4}}_{body['id']}\.zip", attachment["display_name"]
    )
    archive = zipfile.ZipFile(io.BytesIO(content))
    # Canvas's table order, not the order of the parameters.
    assert archive.namelist() == ["users.csv", "enrollments.csv", "xlist.csv"]
    enrollments = archive.read("enrollments.csv").decode().splitlines()
    assert enrollments[0] == (
        "canvas_course_id,course_id,canvas_user_id,user_id,role,role_id,canvas_section_id,section_id,status,"
        "canvas_associated_user_id,associated_user_id,created_by_sis,base_role_type,limit_section_privileges"
    )
    # About five enrollments per user.
    assert 4 * 60 < len(enrollments) < 6 * 60 + 20


def test_mgp_is_a_zip_with_one_csv_per_term(sim_env):
    sim, _running, client = sim_env
    _body, content = _download(sim, client, "mgp_grade_export_csv")
    archive = zipfile.ZipFile(io.BytesIO(content))
    assert archive.namelist() == [
        "Default Term.csv",
        "Fall 2025.csv",
        "Spring 2026.csv",
        "Summer 2025/26.csv",
        "Fall 2026.csv",
        "Spring 2027.csv",
    ]
    for name in archive.namelist():
        lines = archive.read(name).decode().splitlines()
        term = name.removesuffix(".csv")
        assert all(f",{term}," in line for line in lines[1:])


def test_other_reports_are_one_csv(sim_env):
    sim, _running, client = sim_env
    body, content = _download(sim, client, "grade_export_csv")
    assert body["attachment"]["content-type"] == "text/csv"
    assert content.splitlines()[0].startswith(b"student name,student id,student sis,course")


def test_sis_export_uses_import_headers_and_skips_manual_rows(sim_env):
    sim, _running, client = sim_env
    _body, sis = _download(sim, client, "sis_export_csv", users="true")
    _body, prov = _download(sim, client, "provisioning_csv", users="true")
    assert sis.splitlines()[0].startswith(
        b"user_id,integration_id,authentication_provider_id,login_id,password"
    )
    assert len(sis.splitlines()) < len(prov.splitlines())


def test_term_filter_narrows_courses(sim_env):
    sim, _running, client = sim_env
    _b, everything = _download(sim, client, "provisioning_csv", courses="true")
    _b, fall = _download(
        sim, client, "provisioning_csv", courses="true", enrollment_term_id="sis_term_id:2025FA"
    )
    rows = list(csv.DictReader(io.StringIO(fall.decode())))
    assert rows
    assert {row["term_id"] for row in rows} == {"2025FA"}
    assert len(rows) < len(everything.splitlines()) - 1


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path):
    def build(seed: int, where: str) -> bytes:
        factory = FileFactory(tmp_path / where)
        request = FileRequest(
            "provisioning_csv", "sis", ("users", "enrollments"), GenParams(users=300, seed=seed)
        )
        return factory.build(request).path.read_bytes()

    assert build(7, "a") == build(7, "b")
    assert build(7, "a") != build(8, "c")


def test_files_are_cached_by_content_key(tmp_path: Path):
    factory = FileFactory(tmp_path)
    request = FileRequest("grade_export_csv", "single", ("grade_export",), GenParams(users=100, seed=1))
    first = factory.build(request)
    mtime = first.path.stat().st_mtime_ns
    second = FileFactory(tmp_path).build(request)
    assert second == first
    assert second.path.stat().st_mtime_ns == mtime
    other = factory.build(
        FileRequest("grade_export_csv", "single", ("grade_export",), GenParams(users=101, seed=1))
    )
    assert other.path != first.path


def test_pad_to_bytes_reaches_the_target(tmp_path: Path):
    factory = FileFactory(tmp_path)
    target = 3_000_000
    built = factory.build(
        FileRequest("provisioning_csv", "sis", ("users",), GenParams(users=50, seed=1), pad_to_bytes=target)
    )
    assert target <= built.size < target + 1_000_000
    lines = built.path.read_bytes().splitlines()
    assert len(set(lines)) == len(lines)  # padding rows are new rows, not copies


def test_every_table_writes_rows_of_its_header_width():
    ctx = GenContext(GenParams(users=120, seed=3, include_deleted=True))
    sis_ctx = GenContext(GenParams(users=120, seed=3, sis_format=True))
    for table in TABLES.values():
        for context in (ctx, sis_ctx):
            out = io.BytesIO()
            written = write_table(out, table, context)
            rows = list(csv.reader(io.StringIO(out.getvalue().decode())))
            assert written.rows == len(rows) - 1, table.name
            assert all(len(row) == len(rows[0]) for row in rows), table.name


def test_sub_account_scopes_courses():
    out_root, out_sci = io.BytesIO(), io.BytesIO()
    write_table(out_root, TABLES["courses"], GenContext(GenParams(users=240, seed=1)))
    write_table(out_sci, TABLES["courses"], GenContext(GenParams(users=240, seed=1, account_id=3)))
    sci = list(csv.DictReader(io.StringIO(out_sci.getvalue().decode())))
    assert sci
    assert {row["account_id"] for row in sci} <= {"SCI", "PHYS"}
    assert len(sci) < len(out_root.getvalue().splitlines()) - 1


def _table(name: str, **params: object) -> list[dict[str, str]]:
    out = io.BytesIO()
    # 2,000 users: with fewer, there are so few courses that every user studies in every college.
    write_table(out, TABLES[name], GenContext(GenParams(users=2000, seed=1, **params)))  # type: ignore[arg-type]
    return list(csv.DictReader(io.StringIO(out.getvalue().decode())))


@pytest.mark.parametrize("table", ["users", "last_user_access"])
def test_a_sub_account_lists_the_users_enrolled_in_its_courses(table):
    # As Canvas's user sub-account scope: users associated with the account through enrollments.
    everyone = {row["canvas_user_id"] if table == "users" else row["user id"] for row in _table(table)}
    enrolled_by_account = {}
    for account in (2, 3):
        enrolled_by_account[account] = {
            row["canvas_user_id"] for row in _table("enrollments", account_id=account)
        }
        listed = {
            row["canvas_user_id"] if table == "users" else row["user id"]
            for row in _table(table, account_id=account)
        }
        assert listed, account
        assert listed <= everyone, account
        # Everyone enrolled there is listed (deleted users are in neither report).
        assert enrolled_by_account[account] & everyone <= listed, account
    # Two colleges, two different lists; the one with a third of the courses leaves users out.
    assert _table(table, account_id=2) != _table(table, account_id=3)
    assert len(_table(table, account_id=2)) < len(everyone)


@pytest.mark.parametrize(("is_zip", "suffix"), [(True, ".zip"), (False, ".csv")])
def test_display_names(is_zip: bool, suffix: str):
    name = display_name("sis_export_csv", 42, "05_Mar_2026", is_zip, seed=1)
    assert name.startswith("sis_export_csv_05_Mar_2026_42")
    assert name.endswith(suffix)


@pytest.mark.parametrize(
    ("term", "members"),
    [
        ("3", ["Spring 2026.csv"]),
        # grade_reports.rb looks terms up with where(id: value), which casts as Ruby's to_i: the
        # controller accepts these forms, and the report then selects one term or none.
        ("3,4", ["Spring 2026.csv"]),
        ("sis_term_id:2026SP", None),
        ("active_terms", None),
    ],
)
def test_mgp_reads_the_term_as_a_term_id_only(sim_env, term, members):
    sim, _running, client = sim_env
    body, content = _download(sim, client, "mgp_grade_export_csv", enrollment_term_id=term)
    if members is None:  # no runners: Canvas writes a CSV without headers
        assert body["attachment"]["content-type"] == "text/csv"
        assert content == b"\n"
    else:
        assert zipfile.ZipFile(io.BytesIO(content)).namelist() == members
