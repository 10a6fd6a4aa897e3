"""Canvas's error answers, over the wire, as typed errors with actionable messages."""

from __future__ import annotations

import traceback
from collections.abc import Callable

import pytest

from airflow_provider_canvas_reports.canvas.errors import (
    AbortNotPossibleError,
    CanvasConfigError,
    CanvasError,
    CanvasNotFoundError,
    CanvasResponseError,
    InsufficientScopesError,
    InvalidEnrollmentTermError,
    InvalidParametersError,
    InvalidTokenError,
    PermissionDeniedError,
    ReportNotFoundError,
    UnknownReportError,
)

from .helpers import ALL_TOKENS, BAD_TOKEN, NO_PERMISSION_TOKEN, NO_SCOPE_TOKEN, Canvas, Client

pytestmark = pytest.mark.usefixtures("close_sessions")


def assert_no_token(exc: BaseException) -> None:
    """Neither the message, the repr, the args nor the formatted traceback carry a token."""
    texts = [str(exc), repr(exc), *map(str, exc.args), "".join(traceback.format_exception(exc))]
    for text in texts:
        for token in ALL_TOKENS:
            assert token not in text
            assert token[4:20] not in text  # not even a recognisable part of it


async def test_invalid_token(canvas: Canvas, make_client: Callable[..., Client]) -> None:
    client = make_client(canvas.hook(token=BAD_TOKEN))

    with pytest.raises(InvalidTokenError) as info:
        await client.list_available_reports()

    message = str(info.value)
    assert info.value.status == 401
    assert "token is missing, invalid or expired" in message
    assert "Invalid access token." in message  # what Canvas said
    assert "password field" in message  # and where to fix it
    assert_no_token(info.value)
    # A rejected token is final: not retried.
    assert canvas.counters.requests["available"] == 1


async def test_token_without_permission(canvas: Canvas, make_client: Callable[..., Client]) -> None:
    client = make_client(canvas.hook(token=NO_PERMISSION_TOKEN))

    with pytest.raises(PermissionDeniedError) as info:
        await client.start_report("grade_export_csv")

    message = str(info.value)
    assert "'read_reports' permission" in message
    assert "user not authorized to perform that action" in message
    assert "account self" in message
    assert canvas.counters.starts == {}
    assert_no_token(info.value)


async def test_token_with_insufficient_scopes(canvas: Canvas, make_client: Callable[..., Client]) -> None:
    client = make_client(canvas.hook(token=NO_SCOPE_TOKEN))

    with pytest.raises(InsufficientScopesError) as info:
        await client.get_report("grade_export_csv", 101)

    assert "Insufficient scopes on access token." in str(info.value)
    assert "developer key" in str(info.value)
    assert_no_token(info.value)


async def test_unknown_report_name(canvas: Canvas, client: Client) -> None:
    with pytest.raises(UnknownReportError) as info:
        await client.start_report("no_such_report_csv")

    assert "does not know report 'no_such_report_csv' on account self" in str(info.value)
    assert info.value.status == 404
    assert canvas.counters.starts == {}


async def test_unknown_report_id(canvas: Canvas, client: Client) -> None:
    with pytest.raises(ReportNotFoundError) as info:
        await client.get_report("grade_export_csv", 987654)

    assert "no report grade_export_csv #987654 on account self" in str(info.value)


async def test_wrong_report_type_in_the_path(canvas: Canvas, client: Client) -> None:
    started = await client.start_report("grade_export_csv")

    with pytest.raises(ReportNotFoundError, match="report type in the path"):
        await client.get_report("outcome_export_csv", started.id)


async def test_unknown_account(canvas: Canvas, client: Client) -> None:
    with pytest.raises(CanvasNotFoundError, match="Check account_id") as info:
        await client.list_available_reports(account_id=999)

    assert type(info.value) is CanvasNotFoundError


async def test_abort_of_a_report_that_is_not_running(canvas: Canvas, client: Client) -> None:
    canvas.sim.script_report("grade_export_csv", "stuck_created")
    started = await client.start_report("grade_export_csv")

    with pytest.raises(AbortNotPossibleError) as info:
        await client.abort_report("grade_export_csv", started.id)

    assert f"did not abort report grade_export_csv #{started.id}" in str(info.value)
    assert "can be deleted instead" in str(info.value)


async def test_invalid_enrollment_term(canvas: Canvas, client: Client) -> None:
    with pytest.raises(InvalidEnrollmentTermError) as info:
        await client.start_report("grade_export_csv", {"enrollment_term_id": "fall_of_rome"})

    message = str(info.value)
    assert info.value.status == 400
    assert "invalid enrollment_term_id 'fall_of_rome'" in message
    assert "'active_terms'" in message
    assert canvas.counters.starts == {}
    assert canvas.sim.reports == {}


async def test_html_page_instead_of_json(canvas: Canvas, client: Client) -> None:
    started = await client.start_report("grade_export_csv")
    canvas.fault("status", "html")

    with pytest.raises(CanvasResponseError) as info:
        await client.get_report("grade_export_csv", started.id)

    message = str(info.value)
    assert "an HTML page instead of JSON" in message
    assert "Log In to Canvas" in message  # the page's words, so the user recognises it
    assert "<" not in message
    assert "\n" not in message
    assert len(message) < 600  # a short excerpt, not the page
    assert_no_token(info.value)


async def test_json_with_the_while1_prefix_is_accepted(canvas: Canvas, client: Client) -> None:
    started = await client.start_report("grade_export_csv")
    canvas.fault("status", "while1")

    report = await client.get_report("grade_export_csv", started.id)

    assert report.id == started.id
    assert canvas.counters.faults["while1"] == 1


async def test_no_error_carries_the_token(canvas: Canvas, make_client: Callable[..., Client]) -> None:
    """A sweep over every error kind the hook can raise from an answer."""
    good = make_client(canvas.hook())
    started = await good.start_report("grade_export_csv")
    canvas.fault("status", "html")
    caught: list[CanvasError] = []
    attempts = [
        lambda: good.get_report("grade_export_csv", started.id),  # html
        lambda: good.get_report("grade_export_csv", 55555),
        lambda: good.start_report("nope_csv"),
        lambda: good.start_report("grade_export_csv", {"enrollment_term_id": "bogus"}),
        lambda: make_client(canvas.hook(token=BAD_TOKEN)).get_report("grade_export_csv", started.id),
        lambda: make_client(canvas.hook(token=NO_PERMISSION_TOKEN)).list_reports("grade_export_csv"),
        lambda: make_client(canvas.hook(token=NO_SCOPE_TOKEN)).delete_report("grade_export_csv", started.id),
    ]
    for attempt in attempts:
        with pytest.raises(CanvasError) as info:
            await attempt()
        caught.append(info.value)

    assert len({type(exc) for exc in caught}) == len(caught)
    for exc in caught:
        assert_no_token(exc)


async def test_api_redirect_to_the_login_page_is_not_followed(canvas: Canvas, client: Client) -> None:
    """An SSO or proxy redirect on an API call is reported, not followed with the token."""
    started = await client.start_report("grade_export_csv")
    canvas.fault("status", "auth_redirect")

    with pytest.raises(CanvasResponseError, match="HTTP 302") as info:
        await client.get_report("grade_export_csv", started.id)

    assert canvas.counters.requests["login"] == 0
    assert canvas.counters.requests["status"] == 1
    assert_no_token(info.value)


async def test_token_revoked_mid_run_is_not_retried(canvas: Canvas, client: Client) -> None:
    started = await client.start_report("grade_export_csv")
    canvas.fault("status", "401", times=None)

    with pytest.raises(InvalidTokenError):
        await client.get_report("grade_export_csv", started.id)

    assert canvas.counters.requests["status"] == 1


async def test_invalid_names_and_ids_are_refused_before_any_request(canvas: Canvas, client: Client) -> None:
    with pytest.raises(CanvasConfigError, match="Invalid Canvas report name"):
        await client.start_report("Grade Export")
    with pytest.raises(CanvasConfigError, match="Invalid Canvas report id"):
        await client.get_report("grade_export_csv", "12; DROP")
    with pytest.raises(CanvasConfigError, match="Invalid Canvas account_id"):
        await client.list_reports("grade_export_csv", account_id="../../users")

    assert canvas.counters.total_requests == 0


def test_validate_parameters_against_the_live_catalogue(canvas: Canvas) -> None:
    hook = canvas.hook()

    assert hook.validate_parameters("provisioning_csv", {"users": True, "enrollment_term_id": "2"}) == {
        "users": True,
        "enrollment_term_id": "2",
    }
    with pytest.raises(UnknownReportError, match=r"It offers: .*grade_export_csv"):
        hook.validate_parameters("no_such_report_csv", {})
    with pytest.raises(InvalidParametersError, match="requires parameter"):
        hook.validate_parameters("mgp_grade_export_csv", {})
    with pytest.raises(InvalidParametersError, match="at least one table flag"):
        hook.validate_parameters("provisioning_csv", {"include_deleted": True})
    with pytest.raises(InvalidParametersError, match="has no parameter"):
        hook.validate_parameters("grade_export_csv", {"users": True})
    assert canvas.counters.starts == {}
