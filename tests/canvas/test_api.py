"""Endpoint calls as pure descriptions, and the pager that walks Link headers."""

from __future__ import annotations

import pytest

from airflow_provider_canvas_reports.canvas import api
from airflow_provider_canvas_reports.canvas.errors import (
    AbortNotPossibleError,
    CanvasError,
    CanvasResponseError,
    CanvasRetryExhaustedError,
    ReportNotFoundError,
    error_from_response,
)
from airflow_provider_canvas_reports.canvas.exchange import ApiResponse
from airflow_provider_canvas_reports.canvas.report import Report


def page(data, next_url=None):
    headers = {"link": f'<{next_url}>; rel="next"'} if next_url else {}
    return ApiResponse(200, headers, data)


def report(i):
    return {"id": i, "report": "provisioning_csv", "status": "complete"}


def test_pager_follows_next_links_until_the_last_page():
    pager = api.Pager(api.index("self", "provisioning_csv"))
    first = pager.current
    assert first is not None
    assert first.request.query == (("per_page", "100"),)
    pager.advance(page([report(2)], "https://c.test/api/v1/accounts/self/reports/provisioning_csv?page=2"))
    assert pager.current is not None
    assert pager.current.request.path.endswith("page=2")
    pager.advance(page([report(1)]))
    assert pager.current is None


def test_pager_stops_on_an_empty_page_even_with_a_next_link():
    pager = api.Pager(api.index("self", "provisioning_csv"))
    pager.advance(page([], "https://c.test/api/v1/accounts/self/reports/provisioning_csv?page=9"))
    assert pager.current is None


def test_pager_refuses_a_link_that_loops_back():
    pager = api.Pager(api.index("self", "provisioning_csv"))
    url = "https://c.test/api/v1/accounts/self/reports/provisioning_csv?page=2"
    pager.advance(page([report(2)], url))
    with pytest.raises(CanvasResponseError, match="looped back"):
        pager.advance(page([report(1)], url))


def test_start_is_not_idempotent_and_status_is():
    assert api.start("self", "provisioning_csv", {"users": True}).request.idempotent is False
    assert api.status("self", "provisioning_csv", 5).request.idempotent is True
    assert api.start("self", "provisioning_csv", {"users": True}).request.form == (
        ("parameters[users]", "true"),
    )


def test_list_answer_that_is_not_a_list_is_a_response_error():
    call = api.index("self", "provisioning_csv")
    with pytest.raises(CanvasResponseError, match="list of reports"):
        call.parse(ApiResponse(200, {}, {"id": 1}))


def test_pager_refuses_a_link_back_to_the_first_page():
    pager = api.Pager(api.index("self", "provisioning_csv"))
    first = pager.current
    assert first is not None
    with pytest.raises(CanvasResponseError, match="looped back"):
        pager.advance(page([report(1)], first.request.path))


def test_the_available_list_asks_for_the_largest_page():
    assert api.available("self").request.query == (("per_page", "100"),)


def test_an_empty_account_id_is_the_token_users_account():
    assert api.status("", "provisioning_csv", 5).request.context.account_id == "self"
    assert (
        api.status("", "provisioning_csv", 5).request.path
        == "/api/v1/accounts/self/reports/provisioning_csv/5"
    )


def test_a_404_to_an_abort_means_the_report_is_not_running():
    call = api.abort("self", "provisioning_csv", 5)
    assert call.request.method == "PUT"
    error = error_from_response(404, {}, b"{}", call.request.context)
    assert isinstance(error, AbortNotPossibleError)
    assert isinstance(
        error_from_response(404, {}, b"{}", api.delete("self", "provisioning_csv", 5).request.context),
        ReportNotFoundError,
    )


# -- the cancel plan: which calls, in which order, for each answer ----------------------------------


def state(status: str) -> Report:
    return Report.from_json({"id": 5, "report": "provisioning_csv", "status": status})


NOT_FOUND = ReportNotFoundError("gone", status=404)
NOT_RUNNING = AbortNotPossibleError("not running", status=404)
FAILING = CanvasRetryExhaustedError("Canvas answered HTTP 503 beyond the retry budget", status=503)


def run_cancel(*answers: Report | CanvasError) -> tuple[list[str], Report | None]:
    """Drive `api.cancel` with these answers in turn: the calls it made and what it returned."""
    plan = api.cancel("self", "provisioning_csv", 5)
    made: list[str] = []
    pending = list(answers)
    try:
        call = next(plan)
        while True:
            made.append(call.request.method)
            answer = pending.pop(0)
            call = plan.throw(answer) if isinstance(answer, CanvasError) else plan.send(answer)
    except StopIteration as stop:
        assert not pending, "answers left over"
        return made, stop.value


@pytest.mark.parametrize(
    ("answers", "calls", "result"),
    [
        ((state("running"), state("aborted")), ["GET", "PUT"], "aborted"),
        # Queued: left as it is (a delete would not stop it), and returned as read.
        ((state("created"),), ["GET"], "created"),
        ((state("compiling"), state("deleted")), ["GET", "DELETE"], "deleted"),
        ((state("paused"), state("deleted")), ["GET", "DELETE"], "deleted"),  # a status not known
        ((state("complete"),), ["GET"], None),  # finished: nothing to stop, its file kept
        ((NOT_FOUND,), ["GET"], None),
        # The status cannot be read: abort, as if running.
        ((FAILING, state("aborted")), ["GET", "PUT"], "aborted"),
        # Not running after all: what it is decides between delete, leaving it, and nothing.
        (
            (state("running"), NOT_RUNNING, state("compiling"), state("deleted")),
            ["GET", "PUT", "GET", "DELETE"],
            "deleted",
        ),
        ((FAILING, NOT_RUNNING, state("created")), ["GET", "PUT", "GET"], "created"),
        ((FAILING, NOT_RUNNING, state("complete")), ["GET", "PUT", "GET"], None),
        ((state("running"), NOT_RUNNING, NOT_FOUND), ["GET", "PUT", "GET"], None),
        ((state("compiling"), NOT_FOUND), ["GET", "DELETE"], None),  # deleted meanwhile
    ],
)
def test_cancel_aborts_a_running_report_leaves_a_queued_one_and_deletes_a_compiling_one(
    answers, calls, result
):
    made, returned = run_cancel(*answers)
    assert made == calls
    assert (returned.status if returned is not None else None) == result


def test_cancel_does_not_delete_when_the_abort_fails_otherwise():
    # Only "not running" (404) sends it on to delete; a Canvas that keeps failing is said so.
    with pytest.raises(CanvasRetryExhaustedError):
        run_cancel(state("running"), FAILING)


def test_cancel_does_not_delete_a_report_whose_state_cannot_be_read_again():
    # Deleting a report that completed meanwhile would throw its file away.
    with pytest.raises(CanvasRetryExhaustedError):
        run_cancel(FAILING, NOT_RUNNING, FAILING)
