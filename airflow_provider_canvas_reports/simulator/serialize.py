"""Reports, attachments and users as the Canvas API writes them."""

from __future__ import annotations

import hashlib
from typing import Any

from .context import SimContext
from .periods import settled_period
from .state import Attachment, ReportState


def file_url(ctx: SimContext, attachment: Attachment) -> str:
    # A web route on the Canvas host, not under /api.
    return f"{ctx.canvas_url}/accounts/{attachment.account_id}/files/{attachment.id}/download"


def attachment_json(ctx: SimContext, attachment: Attachment) -> dict[str, Any]:
    stamp = ctx.times.iso(attachment.created_at)
    digest = hashlib.sha256(f"{ctx.config.seed}:{attachment.id}".encode()).hexdigest()
    return {
        "id": attachment.id,
        "uuid": digest[:40],
        "folder_id": None,
        "display_name": attachment.display_name,
        "filename": attachment.display_name,
        "upload_status": "success",
        "content-type": attachment.content_type,
        # Carries a verifier like today's Canvas: the attachment's uuid (lib/api/v1/attachment.rb).
        # The simulator ignores it (verifiers go away in 2026), so only the token opens the file.
        "url": f"{ctx.canvas_url}/files/{attachment.id}/download?download_frd=1&verifier={digest[:40]}",
        "size": attachment.size,
        "created_at": stamp,
        "updated_at": stamp,
        "unlock_at": None,
        "locked": False,
        "hidden": False,
        "lock_at": None,
        "hidden_for_user": False,
        "thumbnail_url": None,
        "modified_at": stamp,
        "mime_class": attachment.mime_class,
        "media_entry_id": None,
        "category": "uncategorized",
        "locked_for_user": False,
    }


def user_json(ctx: SimContext, state: ReportState) -> dict[str, Any]:
    return {
        "id": state.user_id,
        "anonymous_id": format(state.user_id, "x"),
        "display_name": state.user_name,
        "avatar_image_url": f"{ctx.canvas_url}/images/messages/avatar-50.png",
        "html_url": f"{ctx.canvas_url}/accounts/{state.account_id}/users/{state.user_id}",
        "pronouns": None,
    }


def report_json(ctx: SimContext, state: ReportState, now: float | None = None) -> dict[str, Any]:
    now = ctx.clock.now() if now is None else now
    snap = state.snapshot(now)
    complete = snap.status == "complete" and state.attachment is not None
    data: dict[str, Any] = {
        "id": state.id,
        "report": state.report,
        "file_url": file_url(ctx, state.attachment) if complete and state.attachment else None,
    }
    if complete and state.attachment is not None:
        # Absent (not null) until the report has a file.
        data["attachment"] = attachment_json(ctx, state.attachment)
    data.update(
        {
            "status": snap.status,
            "created_at": ctx.times.iso(state.created_at),
            "started_at": ctx.times.iso(snap.started_at),
            "ended_at": ctx.times.iso(snap.ended_at),
        }
    )
    if not ctx.config.legacy_fields:
        data["run_time"] = state.run_time(snap, now)
    # Once its job has run, a report's parameters hold what the job filled in or moved: the
    # start's answer and a queued report echo only what was sent (run_report is asynchronous).
    settled = (
        {
            **settled_period(state.report, state.parameters, snap.started_at, ctx.times.tz),
            "locale": "en",
            "extra_text": snap.extra_text,
        }
        if snap.started_at is not None
        else {}
    )
    data["parameters"] = {**state.parameters, **settled}
    data["progress"] = snap.progress
    data["current_line"] = snap.current_line
    if not ctx.config.legacy_fields:
        data["user"] = user_json(ctx, state)
    return data
