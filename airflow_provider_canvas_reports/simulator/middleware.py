"""What happens around every request: counting, faults, throttling, foreign tokens."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from . import responses
from .auth import token_spec
from .context import CTX, ENDPOINT_NAMES, SimContext
from .faults import DELAY_KINDS, PRE_KINDS, Fault
from .inject import PENDING, PendingFault, answer_instead, spoil

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def endpoint_of(request: web.Request) -> str:
    names = request.app.get(ENDPOINT_NAMES) or {}
    return names.get(request.match_info.handler, "other")


def report_id_of(request: web.Request, ctx: SimContext) -> int | None:
    """The report a request is about: its id in the path, or its file's attachment."""
    info = request.match_info
    if info.get("report_id", "").isdigit():
        return int(info["report_id"])
    attachment_id = info.get("attachment_id", "")
    if not attachment_id and "key" in info:
        # Store keys look like account_reports/<attachment id>/<file name>.
        parts = info["key"].split("/")
        attachment_id = parts[1] if len(parts) > 2 else ""
    if attachment_id.isdigit():
        attachment = ctx.jobs.attachments.get(int(attachment_id))
        return attachment.report_id if attachment is not None else None
    return None


async def _faulted(
    request: web.Request, ctx: SimContext, endpoint: str
) -> tuple[Fault | None, web.StreamResponse | None]:
    """The fault for this request and, if it replaces the answer, that answer."""
    # Keep-alive requests may share a task (and so a context): start clean.
    PENDING.set(None)
    fault = ctx.faults.take(endpoint, report_id_of(request, ctx))
    if fault is None:
        return None, None
    ctx.counters.faults[fault.kind] += 1
    if fault.kind in DELAY_KINDS:
        await asyncio.sleep(fault.delay)
        return None, None
    if fault.kind in PRE_KINDS:
        if fault.kind == "throttle":
            ctx.counters.throttled += 1
        return fault, answer_instead(request, ctx, fault)
    PENDING.set(PendingFault(fault))
    return fault, None


def _as_canvas_error(exc: web.HTTPException) -> web.StreamResponse:
    if exc.status == 404:
        return responses.not_found()
    return responses.json_response({"errors": [{"message": exc.reason}]}, exc.status)


@web.middleware
async def canvas_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.app[CTX]
    endpoint = endpoint_of(request)
    ctx.counters.requests[endpoint] += 1
    if endpoint == "status":
        report_id = report_id_of(request, ctx)
        if report_id is not None:
            ctx.counters.status_polls[report_id] += 1
    fault, answer = await _faulted(request, ctx, endpoint)
    if answer is not None:
        return answer
    found = token_spec(request)
    # Throttling is per token; requests without a valid one are turned away anyway.
    ticket = ctx.throttle.reserve(found[0]) if found is not None else None
    try:
        if ticket is not None and ticket.throttled:
            ctx.counters.throttled += 1
            # Its X-Rate-Limit-Remaining is set below, once the up-front cost is refunded.
            response: web.StreamResponse = responses.throttled(ctx.config.throttle, ticket.retry_after, 0.0)
        else:
            if ctx.config.latency > 0:
                await asyncio.sleep(ctx.config.latency)
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                response = _as_canvas_error(exc)
    finally:
        settled = ctx.throttle.settle(ticket) if ticket is not None else None
    if settled is not None and ticket is not None and not response.prepared:
        cost, remaining = settled
        if not ticket.throttled:
            response.headers["x-request-cost"] = f"{cost:.4f}".rstrip("0").rstrip(".") or "0"
        response.headers["x-rate-limit-remaining"] = f"{remaining:.1f}"
    return await _spoil_unless_applied(request, fault, response)


async def _spoil_unless_applied(
    request: web.Request, fault: Fault | None, response: web.StreamResponse
) -> web.StreamResponse:
    pending = PENDING.get()
    if fault is None or (pending is not None and pending.applied):
        return response
    return await spoil(request, fault, response)


def foreign_host_middleware(default_endpoint: str) -> Middleware:
    """The files domain and the store: no tokens wanted, ever. Requests count (and take faults)
    as the host's endpoint, but for the files domain's session hop, which has its own."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        ctx = request.app[CTX]
        route = request.match_info.route.name
        endpoint = route if route == "files_session" else default_endpoint
        ctx.counters.requests[endpoint] += 1
        if "Authorization" in request.headers:
            # S3 refuses a presigned URL that also carries an Authorization header.
            ctx.counters.files_auth_headers += 1
            if endpoint == "store":
                return responses.s3_error(
                    400,
                    "InvalidArgument",
                    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                    "Signature query string parameter or the Authorization header should be specified",
                )
            return web.Response(
                text="400 Bad Request: Authorization header not accepted on this host\n",
                status=400,
                headers={"content-type": "text/plain; charset=utf-8"},
            )
        fault, answer = await _faulted(request, ctx, endpoint)
        if answer is not None:
            return answer
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status != 404:
                raise
            response = web.Response(text="Not Found\n", status=404, headers={"content-type": "text/plain"})
        return await _spoil_unless_applied(request, fault, response)

    return middleware
