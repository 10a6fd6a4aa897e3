"""Endpoint calls as pure descriptions, and the pager that walks Link headers."""

from __future__ import annotations

import pytest

from airflow_provider_canvas_reports.canvas import api
from airflow_provider_canvas_reports.canvas.errors import CanvasResponseError
from airflow_provider_canvas_reports.canvas.exchange import ApiResponse


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
