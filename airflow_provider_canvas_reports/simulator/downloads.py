"""The download chain: Canvas host -> files domain -> store.

The Canvas host wants the token and answers 302 to a token-free signed link on the
files domain, which answers 302 to a presigned-looking store URL that serves the
bytes. Only the first hop may see the token. A file Canvas could show inline (a CSV) takes one
hop more on the files domain, as in Canvas's files_controller: the signed link sets a session
cookie and answers 302 to the file's URL without the link, where only that cookie is let in.
"""

from __future__ import annotations

import secrets
from urllib.parse import quote

from aiohttp import web

from . import responses
from .auth import bearer_token, token_spec
from .context import CTX, SimContext
from .inject import PENDING, send_body
from .state import Attachment
from .world import resolve_account


def store_key(attachment: Attachment) -> str:
    return f"account_reports/{attachment.id}/{attachment.display_name}"


def _attachment(ctx: SimContext, attachment_id: str) -> Attachment | None:
    if not attachment_id.isdigit():
        return None
    attachment = ctx.jobs.attachments.get(int(attachment_id))
    if attachment is None:
        return None
    report = ctx.reports.reports.get(attachment.report_id)
    if report is None or report.is_deleted():
        return None
    return attachment


async def serve_file(request: web.Request, attachment: Attachment) -> web.StreamResponse:
    """The bytes, with Content-Length and the right type; sendfile unless a fault says otherwise."""
    ctx = request.app[CTX]
    filename = quote(attachment.display_name)
    headers = {
        "content-type": attachment.content_type,
        "content-disposition": f"attachment; filename=\"{attachment.display_name}\"; filename*=UTF-8''{filename}",
    }
    pending = PENDING.get()
    if pending is not None and pending.fault.kind in ("truncate", "wrong_length", "stall"):
        pending.applied = True
        return await send_body(request, 200, headers, attachment.file.path, attachment.size, pending.fault)
    if request.method != "HEAD":
        ctx.counters.bytes_served += attachment.size
    return web.FileResponse(attachment.file.path, headers=headers)


async def canvas_download(request: web.Request) -> web.StreamResponse:
    """``/accounts/:id/files/:attachment_id/download`` and ``/files/:attachment_id/download``."""
    ctx = request.app[CTX]
    if bearer_token(request) is None:
        # A web route: without credentials Canvas sends the browser to its login page.
        return responses.redirect(f"{ctx.canvas_url}/login/canvas")
    found = token_spec(request)
    if found is None:
        return responses.invalid_token()
    _token, spec = found
    if not spec.scopes_ok:
        return responses.insufficient_scopes()
    if not spec.permissions:
        return responses.unauthorized()
    attachment = _attachment(ctx, request.match_info["attachment_id"])
    if attachment is None:
        return responses.not_found()
    if "account_id" in request.match_info:
        account = resolve_account(request.match_info["account_id"])
        if account is None or account.id != attachment.account_id:
            return responses.not_found()
    if ctx.config.direct_download:
        # Self-hosted installs may serve the file themselves.
        return await serve_file(request, attachment)
    expires = ctx.clock.now() + ctx.config.link_ttl_seconds
    return responses.redirect(ctx.files_url + ctx.signer.files_path(attachment.id, expires))


#: The files domain's session cookie (Canvas's Rails session, holding `file_access_user_id`).
SESSION_COOKIE = "_files_session"
SESSION_SECONDS = 3600.0  # check_file_access_flags: 1.hour.from_now


async def files_host(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    attachment_id = request.match_info["attachment_id"]
    verdict = ctx.signer.check_files(attachment_id, request.match_info["ticket"], ctx.clock.now())
    if verdict == "expired":
        # Expired links end on the login page, which naive clients save as the file.
        return responses.redirect(f"{ctx.canvas_url}/login/canvas")
    attachment = _attachment(ctx, attachment_id) if verdict == "ok" else None
    if attachment is None:
        return web.Response(text="Forbidden\n", status=403, headers={"content-type": "text/plain"})
    if attachment.content_type.startswith("text"):
        # files_controller#show: `inline_content? && params[:sf_verifier]` -> the same file
        # without the verifier, let in by the session its verifier opened.
        session = secrets.token_urlsafe(24)
        ctx.file_sessions[session] = (attachment.id, ctx.clock.now() + SESSION_SECONDS)
        response = responses.redirect(f"{ctx.files_url}/files/{attachment.id}/download")
        response.set_cookie(SESSION_COOKIE, session, path="/", httponly=True)
        return response
    return _to_store(ctx, attachment)


async def files_session(request: web.Request) -> web.StreamResponse:
    """The files domain's own URL of a file: only a session from its signed link gets in."""
    ctx = request.app[CTX]
    attachment = _attachment(ctx, request.match_info["attachment_id"])
    opened = ctx.file_sessions.get(request.cookies.get(SESSION_COOKIE, ""))
    if attachment is None or opened is None or opened[0] != attachment.id or opened[1] < ctx.clock.now():
        # No session: Canvas sends the browser to its login page (redirect_to_login).
        return responses.redirect(f"{ctx.canvas_url}/login/canvas")
    return _to_store(ctx, attachment)


def _to_store(ctx: SimContext, attachment: Attachment) -> web.StreamResponse:
    path = ctx.signer.store_path(store_key(attachment), ctx.clock.now(), ctx.config.link_ttl_seconds)
    return responses.redirect(ctx.store_url + path)


async def store_object(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    key = request.match_info["key"]  # aiohttp has already percent-decoded it
    verdict = ctx.signer.check_store(key, request.query, ctx.clock.now())
    if verdict == "bad":
        return responses.s3_error(
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        )
    if verdict == "expired":
        return responses.s3_error(403, "AccessDenied", "Request has expired")
    parts = key.split("/")
    attachment = _attachment(ctx, parts[1]) if len(parts) > 2 else None
    if attachment is None or store_key(attachment) != key:
        return responses.s3_error(404, "NoSuchKey", "The specified key does not exist.")
    return await serve_file(request, attachment)
