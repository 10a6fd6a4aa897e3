"""Every account-reports endpoint and the download, through CanvasHook, sync and async."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_canvas_reports.canvas.errors import (
    AbortNotPossibleError,
    CanvasRetryExhaustedError,
    DownloadError,
    ReportNotFoundError,
)
from airflow_provider_canvas_reports.canvas.report import Phase, Report
from airflow_provider_canvas_reports.simulator.catalogue import available

from .helpers import RUN_SECONDS, Canvas, Client, MakeClient

pytestmark = pytest.mark.usefixtures("close_sessions")


# --- available reports ----------------------------------------------------------------------


async def test_list_available_reports_whole_catalogue_sorted_by_title(canvas: Canvas, client: Client) -> None:
    found = await client.list_available_reports()

    assert [entry.report for entry in found] == [spec.report for spec in available()]
    titles = [entry.title for entry in found]
    assert titles == sorted(titles)
    # Canvas answers the whole list in one response: one request, no pagination walk.
    assert canvas.counters.requests["available"] == 1
    by_name = {entry.report: entry for entry in found}
    assert by_name["mgp_grade_export_csv"].required_parameters == {"enrollment_term_id"}
    assert by_name["students_with_no_submissions_csv"].required_parameters == {"start_at", "end_at"}
    assert "users" in by_name["provisioning_csv"].parameters
    # `parameters: null` (reports without parameters) parses as no parameters.
    assert by_name["outcome_export_csv"].parameters == {}
    assert all(entry.last_run is None for entry in found)


async def test_list_available_reports_carries_the_last_run(canvas: Canvas, client: Client) -> None:
    started = await client.start_report("grade_export_csv")

    found = {entry.report: entry for entry in await client.list_available_reports()}

    last = found["grade_export_csv"].last_run
    assert last is not None
    assert last.id == started.id
    assert last.report == "grade_export_csv"


async def test_list_available_reports_empty_when_the_plugin_offers_none(
    make_canvas: Callable[..., Canvas], make_client: Callable[..., Client]
) -> None:
    canvas = make_canvas(reports=[])
    client = make_client(canvas.hook())

    assert await client.list_available_reports() == []


async def test_list_available_reports_for_another_account(canvas: Canvas, client: Client) -> None:
    found = await client.list_available_reports(account_id="sis_account_id:SCI")

    assert len(found) == len(available())


# --- start ------------------------------------------------------------------------------------


async def test_start_sends_form_encoded_parameters_as_canvas_reads_them(
    canvas: Canvas, client: Client
) -> None:
    report = await client.start_report(
        "provisioning_csv",
        {
            "users": True,
            "courses": False,
            "enrollment_states": ["active", "invited"],
            "enrollment_term_id": "sis_term_id:2026FA",
            "ignored_none": None,
        },
    )

    assert report.report == "provisioning_csv"
    assert report.status in ("created", "running")
    assert report.phase is Phase.WAITING
    assert report.attachment is None
    assert report.file_url is None
    assert canvas.counters.starts == {"provisioning_csv": 1}
    # What Canvas stored, exactly as its Rails form parser read the body: courses=False is not
    # sent (absent is false to every report; some read any value as set).
    assert canvas.stored_parameters(report.id) == {
        "users": "true",
        "enrollment_states": ["active", "invited"],
        "enrollment_term_id": "sis_term_id:2026FA",
        "skip_message": "true",
    }
    # The Report echoes them back (as strings); Canvas's additions come once its job has run.
    assert report.parameters["users"] == "true"
    assert report.parameters["enrollment_states"] == ["active", "invited"]
    assert "extra_text" not in report.parameters


async def test_start_skip_message_can_be_turned_off(canvas: Canvas, client: Client) -> None:
    report = await client.start_report("grade_export_csv", skip_message=False)

    # Canvas skips the e-mail when skip_message has any value, "false" included
    # (account_reports.rb, message_recipient): turned off, it is not sent at all.
    assert "skip_message" not in canvas.stored_parameters(report.id)


async def test_start_explicit_skip_message_parameter_wins(canvas: Canvas, client: Client) -> None:
    report = await client.start_report("grade_export_csv", {"skip_message": False})

    assert canvas.stored_parameters(report.id) == {}


async def test_start_sends_no_value_that_means_false(canvas: Canvas, client: Client) -> None:
    # sis_exporter.rb filters to SIS-created rows whenever created_by_sis is present, whatever
    # its value: sending "false" would drop every manually created user from the export.
    report = await client.start_report(
        "provisioning_csv", {"users": True, "created_by_sis": False, "include_deleted": "false"}
    )

    assert canvas.stored_parameters(report.id) == {"users": "true", "skip_message": "true"}


async def test_start_on_a_numeric_account(canvas: Canvas, client: Client) -> None:
    report = await client.start_report("grade_export_csv", account_id=3)

    assert canvas.sim.reports[report.id].account_id == 3
    # The same id under another account is not visible.
    with pytest.raises(ReportNotFoundError):
        await client.get_report("grade_export_csv", report.id)
    assert (await client.get_report("grade_export_csv", report.id, account_id="3")).id == report.id


# --- index --------------------------------------------------------------------------------------


async def test_index_walks_lowercase_link_pages_of_100(canvas: Canvas, client: Client) -> None:
    setup = canvas.hook()
    ids = [setup.start_report("grade_export_csv").id for _ in range(105)]
    setup.start_report("outcome_export_csv")  # another type: not in this index
    setup.delete_report("grade_export_csv", ids[50])
    canvas.counters.reset()

    runs = await client.list_reports("grade_export_csv")

    expected = sorted(set(ids) - {ids[50]}, reverse=True)
    assert [run.id for run in runs] == expected  # newest first, deleted excluded, no duplicates
    assert all(run.report == "grade_export_csv" for run in runs)
    # per_page=100: two pages, the second reached through the lowercase `link` header.
    assert canvas.counters.requests["index"] == 2


async def test_index_of_a_type_never_run_is_empty(canvas: Canvas, client: Client) -> None:
    assert await client.list_reports("lti_report_csv") == []
    assert canvas.counters.requests["index"] == 1


async def test_previous_run_is_the_last_complete_run_with_the_same_parameters(
    canvas: Canvas, client: Client
) -> None:
    setup = canvas.hook()
    earlier = setup.start_report("provisioning_csv", {"users": True})
    canvas.finish()
    last = setup.start_report("provisioning_csv", {"users": True})
    canvas.finish()
    setup.start_report("provisioning_csv", {"users": True, "courses": True})  # another export
    canvas.finish()
    setup.start_report("provisioning_csv", {"users": True})  # running: not finished
    canvas.sim.wait_idle(30)
    canvas.sim.advance(5)
    ours = setup.start_report("provisioning_csv", {"users": True})
    canvas.counters.reset()

    found = await client.previous_run("provisioning_csv", ours.id)

    assert found is not None
    assert found.report_id == last.id != earlier.id
    assert found.run_time == pytest.approx(RUN_SECONDS, abs=1)
    assert canvas.counters.requests["index"] == 1  # the first page, never a walk


async def test_previous_run_without_run_time_uses_started_and_ended(
    make_canvas: Callable[..., Canvas], make_client: MakeClient
) -> None:
    canvas = make_canvas(legacy_fields=True)  # an older Canvas: no run_time field
    client = make_client(canvas.hook())
    setup = canvas.hook()
    done = setup.start_report("grade_export_csv")
    canvas.finish()
    ours = setup.start_report("grade_export_csv")

    found = await client.previous_run("grade_export_csv", ours.id)

    assert found is not None
    assert found.report_id == done.id
    assert found.run_time == pytest.approx(RUN_SECONDS, abs=1)


async def test_previous_run_of_a_report_never_completed_is_none(canvas: Canvas, client: Client) -> None:
    ours = await client.start_report("grade_export_csv")
    assert await client.previous_run("grade_export_csv", ours.id) is None


def test_validate_report_gives_the_catalogue_entry_with_the_newest_run(canvas: Canvas) -> None:
    hook = canvas.hook()
    prepared, entry = hook.validate_report("provisioning_csv", {"users": True})
    assert prepared == {"users": True}
    assert entry.report == "provisioning_csv"
    assert entry.last_run is None  # never run
    hook.start_report("provisioning_csv", {"users": True})
    canvas.finish()
    newest = hook.start_report("provisioning_csv", {"courses": True})
    canvas.counters.reset()

    _, entry = hook.validate_report("provisioning_csv", {"users": True})

    # The newest run, whatever its status and parameters; one request for both jobs.
    assert entry.last_run is not None
    assert entry.last_run.id == newest.id
    assert entry.last_run.status != "complete"
    assert canvas.counters.requests == {"available": 1}


# --- status and report parsing over the wire --------------------------------------------------


async def test_status_progresses_to_complete_with_attachment(canvas: Canvas, client: Client) -> None:
    started = await client.start_report("grade_export_csv")

    canvas.sim.advance(10)
    running = await client.get_report("grade_export_csv", started.id)
    assert running.status == "running"
    assert running.phase is Phase.WAITING
    assert running.progress is not None
    assert 0 < running.progress < 100
    assert running.started_at is not None
    assert running.ended_at is None
    assert running.attachment is None
    assert running.file_url is None
    assert "attachment" not in running.raw

    canvas.finish()
    done = await client.get_report("grade_export_csv", started.id)
    assert done.status == "complete"
    assert done.phase is Phase.SUCCESS
    assert done.progress == 100
    assert done.ended_at is not None
    assert done.created_at is not None
    assert done.created_at.utcoffset() is not None  # Canvas sends offsets; they survive parsing
    assert done.attachment is not None
    assert done.attachment.size == len(canvas.file_bytes(started.id))
    assert done.attachment.name
    assert done.attachment.name.endswith(".csv")
    assert done.file_url
    assert done.file_url.endswith(f"/files/{done.attachment.id}/download")


async def test_status_created_while_queued(canvas: Canvas, client: Client) -> None:
    canvas.sim.script_report("grade_export_csv", "stuck_created")
    started = await client.start_report("grade_export_csv")
    canvas.sim.advance(100)

    report = await client.get_report("grade_export_csv", started.id)

    assert report.status == "created"
    assert report.progress == 0
    assert report.started_at is None
    assert report.phase is Phase.WAITING


async def test_error_with_progress_100_is_a_failure(canvas: Canvas, client: Client) -> None:
    canvas.sim.script_report("grade_export_csv", "error")
    started = await client.start_report("grade_export_csv")
    canvas.finish()

    report = await client.get_report("grade_export_csv", started.id)

    assert report.status == "error"
    assert report.progress == 100
    assert report.phase is Phase.FAILURE
    assert report.attachment is None
    assert report.file_url is None
    assert report.extra_text == "Failed, the report failed to generate a file. Please try again."
    assert "failed to generate a file" in report.failure_message()


async def test_aborted_by_someone_else_is_a_failure(canvas: Canvas, client: Client) -> None:
    canvas.sim.script_report("grade_export_csv", "aborted_by_other")
    started = await client.start_report("grade_export_csv")
    canvas.finish()

    report = await client.get_report("grade_export_csv", started.id)

    assert (report.status, report.progress, report.phase) == ("aborted", 100, Phase.FAILURE)
    assert report.extra_text == "Report has been aborted"


async def test_provisioning_without_a_table_ends_in_error_with_an_error_code(
    canvas: Canvas, client: Client
) -> None:
    started = await client.start_report("provisioning_csv", {"include_deleted": True})
    canvas.finish()

    report = await client.get_report("provisioning_csv", started.id)

    assert report.phase is Phase.FAILURE
    assert report.extra_text is not None
    assert "ErrorReport:" in report.extra_text


# --- delete, abort, cancel -------------------------------------------------------------------------


async def test_delete_then_status_is_not_found(canvas: Canvas, client: Client) -> None:
    started = await client.start_report("grade_export_csv")

    deleted = await client.delete_report("grade_export_csv", started.id)

    assert deleted.id == started.id
    assert deleted.status == "deleted"
    assert deleted.phase is Phase.FAILURE
    with pytest.raises(ReportNotFoundError, match=rf"grade_export_csv #{started.id}"):
        await client.get_report("grade_export_csv", started.id)
    with pytest.raises(ReportNotFoundError):
        await client.delete_report("grade_export_csv", started.id)


async def test_abort_running_report(canvas: Canvas, client: Client) -> None:
    started = await client.start_report("grade_export_csv")
    canvas.sim.advance(5)

    aborted = await client.abort_report("grade_export_csv", started.id)

    assert aborted.status == "aborted"
    assert aborted.progress == 100
    assert aborted.phase is Phase.FAILURE
    assert aborted.extra_text == "Report has been aborted"
    assert (await client.get_report("grade_export_csv", started.id)).status == "aborted"


async def test_abort_created_report_is_not_possible(canvas: Canvas, client: Client) -> None:
    canvas.sim.script_report("grade_export_csv", "stuck_created")
    started = await client.start_report("grade_export_csv")

    with pytest.raises(AbortNotPossibleError, match="aborts only reports that are 'running'") as info:
        await client.abort_report("grade_export_csv", started.id)

    assert info.value.status == 404
    assert canvas.sim.reports[started.id].status == "created"


async def test_abort_complete_report_is_not_possible(canvas: Canvas, client: Client) -> None:
    started = await client.start_report("grade_export_csv")
    canvas.finish()

    with pytest.raises(AbortNotPossibleError):
        await client.abort_report("grade_export_csv", started.id)


async def test_cancel_running_report_aborts_it(canvas: Canvas, client: Client) -> None:
    started = await client.start_report("grade_export_csv")
    canvas.sim.advance(5)

    result = await client.cancel_report("grade_export_csv", started.id)

    assert result is not None
    assert result.status == "aborted"
    assert canvas.counters.requests["abort"] == 1
    assert canvas.counters.requests["delete"] == 0


async def test_cancel_created_report_leaves_it(canvas: Canvas, client: Client) -> None:
    # Canvas cannot stop a queued report: a delete only hides it until its job runs it anyway.
    canvas.sim.script_report("grade_export_csv", "stuck_created")
    started = await client.start_report("grade_export_csv")

    result = await client.cancel_report("grade_export_csv", started.id)

    assert result is not None
    assert result.status == "created"  # as read: untouched
    assert canvas.counters.requests["abort"] == 0
    assert canvas.counters.requests["delete"] == 0
    assert (await client.get_report("grade_export_csv", started.id)).status == "created"


async def test_cancel_finished_report_does_nothing(canvas: Canvas, client: Client) -> None:
    started = await client.start_report("grade_export_csv")
    canvas.finish()

    assert await client.cancel_report("grade_export_csv", started.id) is None
    assert canvas.counters.requests["abort"] == 0
    assert canvas.counters.requests["delete"] == 0
    assert (await client.get_report("grade_export_csv", started.id)).status == "complete"


async def test_cancel_deleted_report_has_nothing_to_cancel(canvas: Canvas, client: Client) -> None:
    started = await client.start_report("grade_export_csv")
    await client.delete_report("grade_export_csv", started.id)

    assert await client.cancel_report("grade_export_csv", started.id) is None
    assert canvas.counters.requests["abort"] == 0


async def test_cancel_running_report_whose_status_cannot_be_read_still_aborts_it(
    canvas: Canvas, client: Client
) -> None:
    started = await client.start_report("grade_export_csv")
    canvas.sim.advance(5)
    canvas.fault("status", "503", times=None)

    result = await client.cancel_report("grade_export_csv", started.id)

    assert result is not None
    assert result.status == "aborted"
    assert canvas.sim.reports[started.id].status == "aborted"


@pytest.mark.parametrize("fate", ["stuck_created", None], ids=["queued", "completed"])
async def test_cancel_of_a_report_not_running_whose_status_cannot_be_read_deletes_nothing(
    canvas: Canvas, client: Client, fate: str | None
) -> None:
    # Abort says "not running": queued (left as it is), compiling (delete stops it) or done (delete
    # would throw its file away). Without its status they cannot be told apart: nothing is deleted.
    if fate:
        canvas.sim.script_report("grade_export_csv", fate)
    started = await client.start_report("grade_export_csv")
    if fate is None:
        canvas.finish()
    before = canvas.sim.reports[started.id].status
    canvas.fault("status", "503", times=None)

    with pytest.raises(CanvasRetryExhaustedError, match="to read the report status"):
        await client.cancel_report("grade_export_csv", started.id)

    assert canvas.sim.reports[started.id].status == before == ("created" if fate else "complete")
    assert canvas.counters.requests["abort"] == 1  # tried first: the state was unknown
    assert canvas.counters.requests["delete"] == 0


# --- download ------------------------------------------------------------------------------------


async def _complete(
    canvas: Canvas, client: Client, report: str = "grade_export_csv", params: dict[str, Any] | None = None
) -> Report:
    started = await client.start_report(report, params)
    canvas.finish()
    done = await client.get_report(report, started.id)
    assert done.status == "complete", done.summary()
    return done


async def test_download_follows_the_cross_host_chain_byte_for_byte(canvas: Canvas, client: Client) -> None:
    report = await _complete(canvas, client)
    canvas.counters.reset()

    body = await client.download(report)

    assert body == canvas.file_bytes(report.id)
    assert report.attachment is not None
    assert len(body) == report.attachment.size
    # Canvas host -> files host -> store, one request each; the token went to the first only.
    assert canvas.counters.requests["download"] == 1
    assert canvas.counters.requests["files"] == 1
    assert canvas.counters.requests["store"] == 1
    assert canvas.counters.files_auth_headers == 0
    assert canvas.counters.bytes_served == len(body)


async def test_download_zip_of_several_tables(canvas: Canvas, client: Client) -> None:
    report = await _complete(canvas, client, "provisioning_csv", {"users": True, "courses": True})

    body = await client.download(report)

    assert body == canvas.file_bytes(report.id)
    assert report.attachment is not None
    assert (report.attachment.name or "").endswith(".zip")
    assert sorted(zipfile.ZipFile(io.BytesIO(body)).namelist()) == ["courses.csv", "users.csv"]
    assert canvas.counters.files_auth_headers == 0


async def test_download_served_directly_by_canvas(
    make_canvas: Callable[..., Canvas], make_client: Callable[..., Client]
) -> None:
    canvas = make_canvas(direct_download=True)
    client = make_client(canvas.hook())
    report = await _complete(canvas, client)

    assert await client.download(report) == canvas.file_bytes(report.id)
    assert canvas.counters.requests["files"] == canvas.counters.requests["store"] == 0


async def test_download_of_an_unfinished_report_is_refused_without_a_request(
    canvas: Canvas, client: Client
) -> None:
    started = await client.start_report("grade_export_csv")
    canvas.counters.reset()

    with pytest.raises(DownloadError, match="not 'complete'"):
        await client.download(started)
    assert canvas.counters.total_requests == 0


async def test_download_of_a_failed_report_says_why(canvas: Canvas, client: Client) -> None:
    canvas.sim.script_report("grade_export_csv", "error")
    started = await client.start_report("grade_export_csv")
    canvas.finish()
    failed = await client.get_report("grade_export_csv", started.id)

    with pytest.raises(DownloadError, match="failed to generate a file"):
        await client.download(failed)


async def test_download_of_a_deleted_report_file_fails(canvas: Canvas, client: Client) -> None:
    report = await _complete(canvas, client)
    await client.delete_report("grade_export_csv", report.id)

    with pytest.raises(DownloadError, match="HTTP 404"):
        await client.download(report)
