"""Typed Canvas errors, and the mapping from a Canvas answer to one of them.

Every message names the problem and the fix. No message ever carries the token, a request
header or a full download URL (presigned URLs are credentials too).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_canvas_reports.canvas.headers import header

EXCERPT_CHARS = 200


class CanvasError(Exception):
    """Base class of everything this provider raises about Canvas."""

    status: int | None = None

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class CanvasConfigError(CanvasError, ValueError):
    """The connection or the arguments are wrong; nothing was sent to Canvas."""


class InvalidParametersError(CanvasConfigError):
    """Report parameters that Canvas would ignore or reject; nothing was started."""


class CanvasAuthError(CanvasError):
    status = 401


class InvalidTokenError(CanvasAuthError):
    """Missing, invalid or expired token."""


class PermissionDeniedError(CanvasAuthError):
    """A valid token whose user lacks the permission on this account."""


class InsufficientScopesError(CanvasAuthError):
    """A scoped developer key that does not include the endpoint."""


class CanvasNotFoundError(CanvasError):
    status = 404


class UnknownReportError(CanvasNotFoundError):
    """The report name is not offered by the account."""


class ReportNotFoundError(CanvasNotFoundError):
    """No report run with that id (and type) on the account."""


class AbortNotPossibleError(CanvasNotFoundError):
    """Canvas aborts only running reports; it answers 404 in every other state."""


class CanvasBadRequestError(CanvasError):
    status = 400


class InvalidEnrollmentTermError(CanvasBadRequestError):
    """The one parameter Canvas validates itself."""


class CanvasResponseError(CanvasError):
    """Canvas answered with something that is not the JSON it should have been."""


class CanvasRetryExhaustedError(CanvasError):
    """Throttling, server errors or network failures outlasted the retry budget."""


class StartOutcomeUnknownError(CanvasError):
    """A start request may have reached Canvas but its answer was lost.

    It is not repeated blindly: the caller reconciles through the report index first.
    """


class DownloadError(CanvasError):
    """The report file could not be fetched or failed verification."""


class ReportFailedError(CanvasError):
    """The report ended in error, aborted or deleted."""


@dataclass(frozen=True)
class RequestContext:
    """What the client was doing, so an error can say it in Canvas's terms."""

    action: str
    account_id: str
    report: str | None = None
    report_id: int | str | None = None
    # A 404 to an abort means "not running" (AbortNotPossibleError), not "no such report".
    abort: bool = False

    @property
    def doing(self) -> str:
        """The request in words, naming the report when there is one: what a log reader needs to
        tell one task's retries from another's."""
        about = f" (report {self.report} #{self.report_id})" if self.report_id is not None else ""
        return f"{self.action} on account {self.account_id}{about}"


_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_SCRIPT = re.compile(r"<(script|style)[^>]*>.*?</\1>", re.IGNORECASE | re.DOTALL)


def sanitise_excerpt(body: bytes | str, *, secrets: Iterable[str] = (), limit: int = EXCERPT_CHARS) -> str:
    """A short, single-line, printable excerpt of a body, with tags and secrets removed."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    secrets = [secret for secret in secrets if secret]
    for secret in secrets:  # before the cut, which could split a secret and leave its prefix
        text = text.replace(secret, "***")
    cut = len(text) > limit * 20
    text = text[: limit * 20]
    text = _SCRIPT.sub(" ", text)
    pieces = _without_repeats(html.unescape(piece) for piece in _TAG.split(text))
    if cut and len(pieces) > 1:
        pieces.pop()  # the cut may have split it mid-word
    text = " ".join(pieces)
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _SPACE.sub(" ", text).strip()
    return text[:limit] + ("..." if cut or len(text) > limit else "")


def _without_repeats(pieces: Iterable[str]) -> list[str]:
    """The text between tags, each piece once where it repeats the one before: an error page's
    title and heading are usually the same words (nginx: `503 Service Temporarily Unavailable`)."""
    kept: list[str] = []
    for piece in pieces:
        words = _SPACE.sub(" ", piece).strip()
        if words and (not kept or words != kept[-1]):
            kept.append(words)
    return kept


def _messages(payload: Any) -> list[str]:
    """Canvas's error texts: `errors: [{message}]`, `errors: {..}`, or the singular `error`."""
    found: list[str] = []
    if not isinstance(payload, Mapping):
        return found
    errors = payload.get("errors")
    if isinstance(errors, list):
        for item in errors:
            if isinstance(item, Mapping) and isinstance(item.get("message"), str):
                found.append(item["message"])
            elif isinstance(item, str):
                found.append(item)
    elif isinstance(errors, Mapping):
        for value in errors.values():
            if isinstance(value, list):
                found.extend(
                    v["message"]
                    for v in value
                    if isinstance(v, Mapping) and isinstance(v.get("message"), str)
                )
    if isinstance(payload.get("error"), str):
        found.append(payload["error"])
    if isinstance(payload.get("message"), str):
        found.append(payload["message"])
    return found


def is_rate_limited(status: int, body_excerpt: str) -> bool:
    """Hosted Canvas throttles with 429; legacy and self-hosted Canvas with a 403 saying so."""
    return status == 429 or (status == 403 and "rate limit exceeded" in body_excerpt.lower())


def error_from_response(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    context: RequestContext,
    *,
    secrets: Iterable[str] = (),
) -> CanvasError:
    """Map a non-success Canvas answer to a typed error with an actionable message."""
    excerpt = sanitise_excerpt(body, secrets=secrets)
    try:
        payload = json.loads(body.decode("utf-8", "replace").removeprefix("while(1);"))
    except ValueError:
        payload = None
    messages = [sanitise_excerpt(m, secrets=secrets) for m in _messages(payload)[:10]]
    said = "; ".join(messages)
    if len(said) > EXCERPT_CHARS:  # many messages must not make a huge error message
        said = said[:EXCERPT_CHARS] + "..."
    said = said or excerpt or "(empty body)"
    where = f"account {context.account_id}"
    what = context.action
    doing = context.doing  # names the report too; the 404s below name it themselves

    if status == 401:
        lowered = said.lower()
        if "insufficient scopes" in lowered:
            return InsufficientScopesError(
                f"Canvas refused to {doing}: the token's developer key lacks the scope for this "
                "endpoint (Canvas said: "
                f"{said}). Add the account-reports scopes (url:GET|/api/v1/accounts/:account_id/reports ...) "
                "to the developer key, or use an unscoped token.",
                status=status,
            )
        if header(headers, "www-authenticate") is None and "not authorized" in lowered:
            return PermissionDeniedError(
                f"Canvas refused to {doing}: the token is valid but its user lacks the "
                f"'read_reports' permission there (Canvas said: {said}). Give the user an admin role "
                "with 'Reports - manage' on that account, or use another account_id.",
                status=status,
            )
        return InvalidTokenError(
            f"Canvas refused to {doing}: the API token is missing, invalid or expired "
            f"(Canvas said: {said}). Put a current token in the connection's password field.",
            status=status,
        )
    if status == 404:
        if context.abort and context.report_id is not None:
            return AbortNotPossibleError(
                f"Canvas did not abort report {context.report} #{context.report_id} on {where}: Canvas "
                "aborts only reports that are 'running' (queued reports can be deleted instead), "
                "or the report does not exist.",
                status=status,
            )
        if context.report_id is not None:
            return ReportNotFoundError(
                f"Canvas has no report {context.report} #{context.report_id} on {where} "
                "(it was deleted, the id is wrong, or the report type in the path is not this report's "
                "type). Check report and report_id.",
                status=status,
            )
        if context.report is not None:
            return UnknownReportError(
                f"Canvas does not know report '{context.report}' on {where}. List them with "
                "CanvasHook.list_available_reports().",
                status=status,
            )
        return CanvasNotFoundError(
            f"Canvas answered 404 to {what} on {where}: the account does not exist or the token cannot "
            f"see it (Canvas said: {said}). Check account_id.",
            status=status,
        )
    if status == 400:
        if "enrollment_term_id" in said:
            return InvalidEnrollmentTermError(
                f"Canvas rejected the parameters to {doing}: {said}. Use 'active_terms', a "
                "term id, 'sis_term_id:<id>' or a comma-separated list of those.",
                status=status,
            )
        return CanvasBadRequestError(
            f"Canvas rejected the request to {doing} with 400: {said}. Check the report parameters.",
            status=status,
        )
    if is_rate_limited(status, excerpt):
        return CanvasRetryExhaustedError(
            f"Canvas kept throttling the request to {doing} (HTTP {status}) beyond the retry "
            "budget. Lower the number of concurrent tasks sharing this token, or raise the retry budget.",
            status=status,
        )
    if status >= 500:
        return CanvasRetryExhaustedError(
            f"Canvas answered HTTP {status} to {doing} beyond the retry budget: {said}. "
            "Canvas may be deploying or overloaded; the task can be retried later.",
            status=status,
        )
    if 300 <= status < 400:
        return redirected_error(context, status, header(headers, "location"))
    return CanvasResponseError(f"Canvas answered HTTP {status} to {doing}: {said}.", status=status)


def redirected_error(
    context: RequestContext, status: int | None, location: str | None
) -> CanvasResponseError:
    """An API call answered with a redirect (the status is None when the client would not even
    parse its Location); API answers never redirect, so the host is not Canvas's API."""
    from airflow_provider_canvas_reports.canvas.endpoints import redact_url

    if status is None:
        how = " to a malformed URL"
    else:
        how = f" (HTTP {status})" + (f" to {redact_url(location)}" if location and "://" in location else "")
    return CanvasResponseError(
        f"Canvas redirected the request to {context.doing}{how} instead "
        "of answering: the connection host is not the Canvas API host (a vanity domain, http instead "
        "of https, or an SSO page). Set the connection host to the Canvas URL itself.",
        status=status,
    )


def not_json_error(
    status: int, content_type: str | None, body: bytes, context: RequestContext, *, secrets: Iterable[str]
) -> CanvasResponseError:
    """Canvas answered 2xx but not with JSON: a proxy page, a login page or a broken body."""
    kind = (
        "an HTML page"
        if content_type and "html" in content_type.lower()
        else f"'{content_type or 'no content type'}'"
    )
    return CanvasResponseError(
        f"Canvas answered HTTP {status} with {kind} instead of JSON to {context.doing}: "
        f"{sanitise_excerpt(body, secrets=secrets) or '(empty body)'}. Check the connection "
        "host is the Canvas URL (not an SSO or proxy page).",
        status=status,
    )
