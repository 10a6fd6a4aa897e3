"""Turning a fault decision into what the client sees on the wire."""

from __future__ import annotations

import asyncio
import random
import socket
import struct
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from . import responses
from .context import SimContext
from .faults import Fault

CHUNK = 256 * 1024


@dataclass
class PendingFault:
    """A post-handler fault for the request being handled; a file handler may apply it itself."""

    fault: Fault
    applied: bool = False


# Request-scoped without touching the request's own storage: the middleware sets it
# afresh at the start of every request (keep-alive requests may share one task).
PENDING: ContextVar[PendingFault | None] = ContextVar("canvas_simulator_pending_fault", default=None)


def reset_connection(request: web.Request) -> web.Response:
    """Drop the connection with a TCP reset and no answer.

    Returns a placeholder response: aiohttp has nowhere to write it, and handing it
    back (rather than raising) keeps the server log quiet.
    """
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # Linger 0: close() sends RST, as a crashed upstream or load balancer does.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return web.Response(status=599)


def answer_instead(request: web.Request, ctx: SimContext, fault: Fault) -> web.StreamResponse:
    """The answer of a fault that replaces the real handler."""
    kind = fault.kind
    if kind in ("500", "502", "503", "504"):
        return responses.server_error(int(kind), random.randint(1000, 99999))
    if kind == "404":
        return responses.not_found()
    if kind == "401":
        return responses.invalid_token()
    if kind == "reset":
        return reset_connection(request)
    if kind == "html":
        return responses.login_page()
    # A bucket that overflowed by a little: after the refund of the up-front cost, some is left.
    if kind == "throttle":
        return responses.throttled(ctx.config.throttle or "429", 1, ctx.throttle.up_front * 0.37)
    if kind == "throttle_bare":
        return responses.throttled("429", None, ctx.throttle.up_front * 0.37)
    if kind == "redirect_loop":
        return responses.redirect(str(request.url))
    if kind == "auth_redirect":
        return responses.redirect(f"{ctx.canvas_url}/login/canvas")
    if kind == "expired":
        return responses.s3_error(403, "AccessDenied", "Request has expired")
    raise ValueError(f"{kind} does not replace an answer")


async def spoil(request: web.Request, fault: Fault, response: web.StreamResponse) -> web.StreamResponse:
    """Apply a post-handler fault to a plain (in-memory body) response."""
    if fault.kind == "reset_after_send":
        return reset_connection(request)
    if (
        not isinstance(response, web.Response)
        or response.body is None
        or isinstance(response, web.FileResponse)
    ):
        return response
    body = response.body if isinstance(response.body, bytes) else bytes(response.body)  # type: ignore[arg-type]
    if fault.kind == "while1":
        response.body = b"while(1);" + body
        return response
    headers = {k: v for k, v in response.headers.items() if k.lower() not in ("content-length",)}
    return await send_body(request, response.status, headers, body, len(body), fault)


async def send_body(
    request: web.Request,
    status: int,
    headers: dict[str, str],
    source: bytes | Path,
    total: int,
    fault: Fault | None,
) -> web.StreamResponse:
    """Stream ``source`` (bytes or a file), spoiled as ``fault`` says.

    ``truncate``: announce ``total`` bytes, send a part, close. ``wrong_length``: a
    complete, well-formed answer that is shorter than the real body. ``stall``: send
    a part, wait ``fault.delay``, send the rest.
    """
    kind = fault.kind if fault is not None else None
    cut = int(total * fault.fraction) if fault is not None else total
    resp = web.StreamResponse(status=status, headers=headers)
    length = total - max(1, total // 10) if kind == "wrong_length" and total > 0 else total
    resp.content_length = length
    await resp.prepare(request)
    if kind == "truncate":
        await _copy(resp, source, 0, cut)
        if request.transport is not None:
            request.transport.close()  # graceful: the partial bytes go out, then FIN
        return resp
    if kind == "stall":
        await _copy(resp, source, 0, cut)
        await asyncio.sleep(fault.delay if fault is not None else 0)
        await _copy(resp, source, cut, total)
    else:
        await _copy(resp, source, 0, length)
    await resp.write_eof()
    return resp


async def _copy(resp: web.StreamResponse, source: bytes | Path, start: int, stop: int) -> None:
    if stop <= start:
        return
    if isinstance(source, bytes):
        await resp.write(source[start:stop])
        return
    loop = asyncio.get_running_loop()
    handle = await loop.run_in_executor(None, source.open, "rb")
    try:
        handle.seek(start)
        left = stop - start
        while left > 0:
            chunk = await loop.run_in_executor(None, handle.read, min(CHUNK, left))
            if not chunk:
                break
            await resp.write(chunk)
            left -= len(chunk)
    finally:
        handle.close()
