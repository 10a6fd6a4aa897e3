"""Bad inputs from "Canvas": answers a broken proxy, an odd Canvas version or a hostile host may give.

The simulator answers like Canvas; these answers come from a tiny Canvas-shaped aiohttp server
started by the test (a fake Canvas; nothing of the provider is replaced). Each case asserts the
exact error (or, for answers that must be tolerated, the outcome and the warning), and that no
report was started when none should be.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from aiohttp import web
from canvas_harness import (
    HANG_GUARD,
    REPORT,
    FakeCanvas,
    canvas_report,
    json_answer,
    make_context,
    run_task,
)

from airflow_provider_canvas_reports.canvas.retry import RetryPolicy
from airflow_provider_canvas_reports.operators.reports import StartAccountReportOperator
from airflow_provider_canvas_reports.sensors.reports import ReportCompleteSensor

POLICY = RetryPolicy(max_attempts=2, base_delay=0.05, max_delay=0.1, max_elapsed=10, read_timeout=5)


def start(**kwargs: Any) -> StartAccountReportOperator:
    kwargs.setdefault("report", REPORT)
    kwargs.setdefault("parameters", {"users": True})
    kwargs.setdefault("canvas_retry_policy", POLICY)
    return StartAccountReportOperator(task_id="start", **kwargs)


def sensor(**kwargs: Any) -> ReportCompleteSensor:
    kwargs.setdefault("poke_interval", 0.05)
    kwargs.setdefault("timeout", 20)
    kwargs.setdefault("canvas_retry_policy", POLICY)
    kwargs.setdefault("max_consecutive_errors", 2)
    return ReportCompleteSensor(task_id="wait", report=REPORT, report_id=7, **kwargs)


def answer(
    body: bytes | str, status: int = 200, content_type: str = "application/json", **headers: str
) -> Any:
    data = body.encode() if isinstance(body, str) else body

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=data, status=status, headers={"content-type": content_type, **headers})

    return handler


def sequence(*reports: dict[str, Any]) -> Any:
    """Answer the status request with each report in turn, then the last one forever."""
    seen = {"n": 0}

    async def handler(request: web.Request) -> web.Response:
        seen["n"] += 1
        return json_answer(reports[min(seen["n"], len(reports)) - 1])

    return handler


# -- answers that are not what the endpoint returns -----------------------------------------------

SSO_PAGE = "<!DOCTYPE html><html><head><title>Single Sign-On</title></head><body><h1>Sign in with your school account</h1></body></html>"

NOT_JSON_CASES = [
    pytest.param(
        "available",
        answer(SSO_PAGE, content_type="text/html; charset=utf-8"),
        "Canvas answered HTTP 200 with an HTML page instead of JSON to list the available reports on account "
        "self: Single Sign-On Sign in with your school account. Check the connection host is the Canvas URL "
        "(not an SSO or proxy page).",
        id="html-page-from-an-sso-proxy",
    ),
    pytest.param(
        "available",
        answer("Service Unavailable", content_type="text/plain"),
        "Canvas answered HTTP 200 with 'text/plain' instead of JSON to list the available reports on account "
        "self: Service Unavailable. Check the connection host is the Canvas URL (not an SSO or proxy page).",
        id="plain-text",
    ),
    pytest.param(
        "available",
        answer(b"\x89PNG\r\n\x1a\n\x00\x00", content_type="image/png"),
        "Canvas answered HTTP 200 with 'image/png' instead of JSON to list the available reports on account "
        "self: \ufffdPNG. Check the connection host is the Canvas URL (not an SSO or proxy page).",
        id="binary",
    ),
    pytest.param(
        "available",
        answer(json.dumps({"reports": []})),
        "Canvas answered with dict where a list of available reports was expected",
        id="object-where-a-list-is-expected",
    ),
    pytest.param(
        "available",
        answer(json.dumps([{"title": "No name"}])),
        "Canvas answered with an available-report entry that has no report name",
        id="available-entry-without-a-name",
    ),
    pytest.param(
        "start",
        answer(json.dumps([1, 2, 3])),
        "Canvas answered with list where a Report object was expected",
        id="start-answer-a-list",
    ),
    pytest.param(
        "start",
        answer(json.dumps({"status": "created", "report": REPORT})),
        "Canvas answered with a Report object that has no id",
        id="start-answer-without-id",
    ),
    pytest.param(
        "start",
        answer(json.dumps({"id": "seven", "status": "created"})),
        "Canvas answered with a Report object that has no id",
        id="start-answer-with-a-non-numeric-id",
    ),
]


@pytest.mark.parametrize(("endpoint", "handler", "message"), NOT_JSON_CASES)
def test_answers_that_are_not_the_expected_json(
    canvas: FakeCanvas, endpoint: str, handler: Any, message: str
) -> None:
    canvas.handlers[endpoint] = handler
    run = run_task(start())
    assert run.message == message
    if endpoint == "available":
        assert canvas.count("start") == 0  # validation failed: nothing started


@pytest.mark.parametrize(
    ("size", "said"),
    [
        # Canvas's JSON error, parsed: its message, cut to 200 characters.
        (60_000, "x" * 200 + "..."),
        # Beyond the 64 KiB read for error bodies: the JSON is cut too, so the raw excerpt is shown.
        (2_000_000, '{"errors": [{"message": "' + "x" * 175 + "..."),
    ],
    ids=["large-json", "huge-json"],
)
def test_huge_error_body_gives_a_bounded_message(canvas: FakeCanvas, size: int, said: str) -> None:
    canvas.handlers["start"] = answer(json.dumps({"errors": [{"message": "x" * size}]}), status=400)
    run = run_task(start())
    assert run.message == (
        f"Canvas rejected the request to start a report on account self with 400: {said}. Check the report "
        "parameters."
    )


def test_many_error_messages_give_a_bounded_message(canvas: FakeCanvas) -> None:
    errors = [{"message": f"problem number {n}"} for n in range(5000)]
    canvas.handlers["available"] = answer(json.dumps({"errors": errors}), status=422)
    run = run_task(start())
    assert run.message.startswith("Canvas answered HTTP 422 to list the available reports on account self: ")
    assert run.message.endswith("....")
    assert len(run.message) < 400
    assert canvas.count("start") == 0


def test_huge_html_error_page_gives_a_bounded_message(canvas: FakeCanvas) -> None:
    page = "<html><body>" + "<p>Oops, the proxy broke.</p>" * 500_000 + "</body></html>"
    canvas.handlers["available"] = answer(page, status=502, content_type="text/html")
    run = run_task(start())
    assert run.elapsed < HANG_GUARD
    said = "Oops, the proxy broke...."  # the paragraph once, and a sign that there was more
    assert run.message == (
        f"Canvas answered HTTP 502 to list the available reports on account self beyond the retry budget: {said}. "
        "Canvas may be deploying or overloaded; the task can be retried later."
    )
    assert canvas.count("start") == 0


def test_error_body_with_control_characters_is_one_printable_line(canvas: FakeCanvas) -> None:
    canvas.handlers["start"] = answer(json.dumps({"error": "bad\r\n\x1b[31mred\x00 term"}), status=400)
    run = run_task(start())
    assert run.message == (
        "Canvas rejected the request to start a report on account self with 400: bad [31mred term. Check the "
        "report parameters."
    )


# -- pagination (the report index, read when a retry reconciles) --------------------------------


def test_malformed_link_header_is_ignored(canvas: FakeCanvas) -> None:
    """A Link header that cannot be parsed ends the walk; the retry then starts its report."""
    canvas.handlers["index"] = answer("[]", link='<<<>>>; rel=, <no-closing-bracket; rel="next", junk')
    run = run_task(start(), make_context(try_number=2))
    assert run.error is None, run.message
    assert canvas.count("index") == 1
    assert canvas.count("start") == 1


def test_link_header_looping_back_is_an_error_not_a_hang(canvas: FakeCanvas) -> None:
    other = canvas_report(3, "error", created_at="2099-01-01T00:00:00Z")

    async def looping(request: web.Request) -> web.Response:
        page = request.query.get("page", "1")
        target = "2" if page == "1" else "1"
        link = f'<{canvas.url}{request.path}?page={target}&per_page=100>; rel="next"'
        return json_answer([other], headers={"link": link})

    canvas.handlers["index"] = looping
    run = run_task(start(), make_context(try_number=2))
    assert run.elapsed < HANG_GUARD
    assert run.message == (
        "Canvas's pagination looped back to a page already read while trying to list report runs on account "
        "self. Retry later; report it to your Canvas admin if it persists."
    )
    assert canvas.count("start") == 0


def test_link_header_to_another_host_keeps_the_token_home(canvas: FakeCanvas) -> None:
    """A hostile next link is followed on the Canvas origin only: the other host never sees the token."""
    other = canvas_report(3, "error", created_at="2099-01-01T00:00:00Z")

    async def elsewhere(request: web.Request) -> web.Response:
        if request.query.get("page") == "2":
            return json_answer([])
        link = f'<{canvas.files_url}{request.path}?page=2>; rel="next"'
        return json_answer([other], headers={"link": link})

    canvas.handlers["index"] = elsewhere
    run = run_task(start(), make_context(try_number=2))
    assert run.error is None, run.message
    assert canvas.count("files") == 0
    assert canvas.count("index") == 2


# -- report fields Canvas may send oddly ------------------------------------------------------


def test_unparseable_dates_are_tolerated_with_a_warning(
    canvas: FakeCanvas, caplog: pytest.LogCaptureFixture
) -> None:
    canvas.handlers["status"] = sequence(
        canvas_report(7, "running", created_at="yesterday", started_at="2026-13-45T99:00:00"),
        canvas_report(7, "complete", size=4, created_at="not a date", ended_at=12345),
    )
    with caplog.at_level(logging.WARNING):
        run = run_task(sensor())
    assert run.error is None, run.message
    assert run.result["created_at"] == "not a date"  # returned as Canvas sent it
    warnings = [r.getMessage() for r in caplog.records if "timestamp" in r.getMessage()]
    assert "Ignoring unparseable Canvas timestamp 'yesterday'" in warnings
    assert "Ignoring unparseable Canvas timestamp '2026-13-45T99:00:00'" in warnings


def test_unparseable_created_at_in_the_index_is_never_adopted(canvas: FakeCanvas) -> None:
    """A retry cannot tell when such a run started, so it starts its own rather than guess."""
    canvas.handlers["index"] = answer(json.dumps([canvas_report(3, "running", created_at="soon")]))
    run = run_task(start(), make_context(try_number=2))
    assert run.error is None
    assert run.result["id"] == 7
    assert canvas.count("start") == 1


@pytest.mark.parametrize("progress", ["abc", 250, -3, "55.5", None, [1], {"p": 1}, 1e308, "1e400"])
def test_odd_progress_values_are_tolerated(canvas: FakeCanvas, progress: Any) -> None:
    canvas.handlers["status"] = sequence(
        canvas_report(7, "running", progress=progress),
        canvas_report(7, "complete", size=4, progress=progress),
    )
    run = run_task(sensor())
    assert run.error is None, run.message
    assert run.result["progress"] == progress  # as Canvas sent it
    assert canvas.count("status") == 2


def test_progress_100_with_error_is_a_failure_not_a_success(canvas: FakeCanvas) -> None:
    failed = canvas_report(7, "error", progress=100)
    failed["parameters"]["extra_text"] = "Failed, please report the following error code: ErrorReport:42;"
    canvas.handlers["status"] = sequence(failed)
    run = run_task(sensor())
    assert run.message == (
        "Canvas report provisioning_csv #7 ended with status 'error': Failed, please report the following error "
        "code: ErrorReport:42. Waiting again cannot change that: clear the task that started it to start a new "
        "one."
    )


@pytest.mark.parametrize("deferrable", [False, True], ids=["poke", "deferrable"])
def test_unknown_status_keeps_waiting_with_a_warning_then_the_deadline(
    canvas: FakeCanvas, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], deferrable: bool
) -> None:
    canvas.handlers["status"] = sequence(canvas_report(7, "paused"))
    with caplog.at_level(logging.WARNING):
        run = run_task(sensor(timeout=1, deferrable=deferrable))
    assert run.elapsed < HANG_GUARD
    last = (
        "(the timeout); last status 'paused', progress 0%"
        if deferrable
        else "(the sensor's timeout); last status 'paused'"
    )
    assert run.message == (
        f"Canvas report provisioning_csv #7 did not finish within 1s {last}. Cancelled it in Canvas: deleted it "
        "(it was still queued)."
    )
    warning = (
        "Canvas report provisioning_csv #7 has a status this provider does not know: 'paused'. Treating it as "
        "not finished; the deadline still applies."
    )
    logged = caplog.text + capsys.readouterr().out
    assert logged.count(warning) == 1  # once per status, not on every poll
    assert canvas.count("status") >= 2
    assert canvas.count("delete") == 1


def test_missing_status_is_treated_as_unknown(canvas: FakeCanvas) -> None:
    report = canvas_report(7, "running")
    del report["status"]
    canvas.handlers["status"] = sequence(report)
    run = run_task(sensor(timeout=0.5))
    assert run.message == (
        "Canvas report provisioning_csv #7 did not finish within 0s (the sensor's timeout); last status "
        "'unknown'. Cancelled it in Canvas: deleted it (it was still queued)."
    )


def test_api_redirect_with_a_malformed_location(canvas: FakeCanvas) -> None:
    """An API answer 302 with a Location requests cannot parse (a broken proxy): no start, a clear stop."""

    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"location": "http://[::1"})

    canvas.handlers["available"] = broken
    run = run_task(start())
    assert type(run.error).__name__ == "CanvasResponseError"
    assert run.message == (
        "Canvas redirected the request to list the available reports on account self to a malformed URL "
        "instead of answering: the connection host is not the Canvas API host (a vanity domain, http "
        "instead of https, or an SSO page). Set the connection host to the Canvas URL itself."
    )
    assert canvas.count("available") == 1
    assert canvas.count("start") == 0
