"""The account-reports endpoints as pure request descriptions with their result parsers.

Each function returns a `Call`: the request to make and how to read the answer. The sync and
async clients execute calls; they know nothing about individual endpoints.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from airflow_provider_canvas_reports.canvas import endpoints
from airflow_provider_canvas_reports.canvas.errors import (
    AbortNotPossibleError,
    CanvasError,
    CanvasResponseError,
    ReportNotFoundError,
    RequestContext,
)
from airflow_provider_canvas_reports.canvas.exchange import ApiRequest, ApiResponse
from airflow_provider_canvas_reports.canvas.pagination import PER_PAGE, next_page
from airflow_provider_canvas_reports.canvas.parameters import encode
from airflow_provider_canvas_reports.canvas.report import AvailableReport, Report, cancel_action

T = TypeVar("T")


@dataclass(frozen=True)
class Call(Generic[T]):
    request: ApiRequest
    parse: Callable[[ApiResponse], T]


def _account(account_id: str | int | None) -> str:
    return "self" if account_id in (None, "") else str(account_id)


def _report(data: Any, report_type: str | None = None) -> Report:
    return Report.from_json(data, report_type=report_type)


def _list_of(data: Any, what: str) -> list[Any]:
    if not isinstance(data, list):
        raise CanvasResponseError(
            f"Canvas answered with {type(data).__name__} where a list of {what} was expected"
        )
    return data


def available(account_id: str | int | None) -> Call[list[AvailableReport]]:
    """Available reports: hosted Canvas sends the whole list; follow a Link header if one comes."""
    path = endpoints.available_path(account_id)
    ctx = RequestContext("list the available reports", _account(account_id))
    return Call(
        ApiRequest("GET", path, ctx, query=(("per_page", str(PER_PAGE)),)),
        lambda resp: [AvailableReport.from_json(item) for item in _list_of(resp.data, "available reports")],
    )


def start(account_id: str | int | None, report: str, parameters: Mapping[str, Any]) -> Call[Report]:
    path = endpoints.reports_path(account_id, report)
    ctx = RequestContext("start a report", _account(account_id), report=report)
    # A start is not idempotent: the exchange never repeats it once it may have reached Canvas.
    return Call(
        ApiRequest("POST", path, ctx, form=tuple(encode(parameters)), idempotent=False),
        lambda resp: _report(resp.data, report),
    )


def index(account_id: str | int | None, report: str) -> Call[list[Report]]:
    path = endpoints.reports_path(account_id, report)
    ctx = RequestContext("list report runs", _account(account_id), report=report)
    return Call(
        ApiRequest("GET", path, ctx, query=(("per_page", str(PER_PAGE)),)),
        lambda resp: [_report(item, report) for item in _list_of(resp.data, "reports")],
    )


def status(account_id: str | int | None, report: str, report_id: int | str) -> Call[Report]:
    path = endpoints.report_path(account_id, report, report_id)
    ctx = RequestContext("read the report status", _account(account_id), report=report, report_id=report_id)
    return Call(ApiRequest("GET", path, ctx), lambda resp: _report(resp.data, report))


def delete(account_id: str | int | None, report: str, report_id: int | str) -> Call[Report]:
    path = endpoints.report_path(account_id, report, report_id)
    ctx = RequestContext("delete a report", _account(account_id), report=report, report_id=report_id)
    return Call(ApiRequest("DELETE", path, ctx), lambda resp: _report(resp.data, report))


def abort(account_id: str | int | None, report: str, report_id: int | str) -> Call[Report]:
    path = endpoints.abort_path(account_id, report, report_id)
    ctx = RequestContext(
        "abort a report", _account(account_id), report=report, report_id=report_id, abort=True
    )
    return Call(ApiRequest("PUT", path, ctx), lambda resp: _report(resp.data, report))


class Pager(Generic[T]):
    """Walks a paginated list: the current call, then the next from each answer's Link header.

    A Link header that points back at a page already read ends the walk with an error rather
    than looping forever.
    """

    def __init__(self, call: Call[list[T]]) -> None:
        self.current: Call[list[T]] | None = call
        self._seen: set[str] = {call.request.path}

    def advance(self, response: ApiResponse) -> None:
        nxt = next_call(self.current, response) if self.current is not None else None
        if nxt is not None:
            if nxt.request.path in self._seen:
                ctx = nxt.request.context
                raise CanvasResponseError(
                    f"Canvas's pagination looped back to a page already read while trying to {ctx.action} "
                    f"on account {ctx.account_id}. Retry later; report it to your Canvas admin if it persists."
                )
            self._seen.add(nxt.request.path)
        self.current = nxt


def next_call(call: Call[list[T]], response: ApiResponse) -> Call[list[T]] | None:
    """The call for the next page, from the Link header; None on the last page or an empty one."""
    url = next_page(response.headers)
    if not url or (isinstance(response.data, list) and not response.data):
        return None
    return Call(ApiRequest(call.request.method, url, call.request.context), call.parse)


CallPlan = Generator[Call[Any], Any, T]


def cancel(account_id: str | int | None, report: str, report_id: int | str) -> CallPlan[Report | None]:
    """Stop a run that is not finished: abort it while running, delete it once it compiles.

    A plan of calls: it yields each call, receives its result (or has its CanvasError thrown in),
    and returns the report as Canvas left it, or None when there was nothing to stop. A report
    still queued is returned as read, untouched: Canvas cannot stop it (`cancel_action`). The
    sync and async transports both run it (`run_plan`), so the decisions exist once.
    """
    current: Report | None = None
    try:
        current = yield status(account_id, report, report_id)
        action = cancel_action(current.status)
    except ReportNotFoundError:
        return None
    except CanvasError:
        # The status cannot be read (Canvas keeps failing): stopping the report matters more
        # than knowing its state, so try abort (running) and fall back to what its status says.
        action = "abort"
    if action == "abort":
        try:
            return (yield abort(account_id, report, report_id))
        except AbortNotPossibleError:
            # Not running (queued, compiling, or done): which one must be known: deleting a report
            # that completed meanwhile would throw away the file it made, so a status that still
            # cannot be read ends the cancel (its error says why).
            try:
                current = yield status(account_id, report, report_id)
                action = cancel_action(current.status)
            except ReportNotFoundError:
                return None
    if action == "leave":
        return current
    if action is None:
        return None
    try:
        return (yield delete(account_id, report, report_id))
    except ReportNotFoundError:
        return None
